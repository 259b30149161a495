"""Helpers for the tool tests: tiny versions of the shipped configs, running the tools.

A tiny config is a shipped config loaded as is, then shrunk: a 4-block backbone
(``dims=16``), thin heads, images about 64 px, two-image batches, a short iteration-based
schedule, and the synthetic data. Everything else (pipelines' structure, losses, evaluators,
hooks) stays the shipped recipe's.
"""
import os
import os.path as osp
import subprocess
import sys
from typing import List, Optional

from mmengine.config import Config

from mmspatialmamba.datasets import ade_metainfo, coco_metainfo

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TINY_ARCH = dict(dims=16, depths=[1, 1, 1, 1])
TINY_CHANNELS = [16, 32, 64, 128]


def _shrink_scales(pipeline: list, factor: int) -> None:
    """Divide every resize scale and crop size in a (nested) pipeline by ``factor``."""
    for transform in pipeline:
        if isinstance(transform, list):
            _shrink_scales(transform, factor)
            continue
        for key in ('scale', 'crop_size'):
            if isinstance(transform.get(key), (tuple, list)):
                transform[key] = tuple(max(8, s // factor) for s in transform[key])
        if 'scales' in transform:
            transform['scales'] = [tuple(max(8, s // factor) for s in scale)
                                   for scale in transform['scales']]
        if 'transforms' in transform:
            _shrink_scales(transform['transforms'], factor)


def tiny_config(name: str, data_root: str, work_dir: str, max_iters: int = 2,
                random_flip: bool = True, with_val: bool = True) -> Config:
    """Load ``configs/<name>.py`` and shrink it to run in seconds on ``data_root``.

    Args:
        name: A shipped config name, e.g. 'maskrcnn_spatialmamba_t_coco'.
        data_root: Synthetic data of the config's task (``coco_root`` or ``ade_root``).
        work_dir: The run's work dir.
        max_iters: Training iterations (one checkpoint at the end; validation then too).
        random_flip: Keep RandomFlip (drop it for runs that must replay exactly).
        with_val: Keep the validation loop.
    """
    cfg = Config.fromfile(osp.join(ROOT, 'configs', f'{name}.py'))
    cfg.work_dir = work_dir
    model = cfg.model
    model.backbone.update(arch=TINY_ARCH, init_cfg=None, drop_path_rate=0.0)
    if cfg.default_scope == 'mmdet':
        metainfo, factor, num_classes = coco_metainfo(), 10, 3
        model.neck.update(in_channels=TINY_CHANNELS, out_channels=32)
        model.rpn_head.update(in_channels=32, feat_channels=32)
        model.roi_head.bbox_roi_extractor.out_channels = 32
        model.roi_head.mask_roi_extractor.out_channels = 32
        model.roi_head.bbox_head.update(in_channels=32, fc_out_channels=64,
                                        num_classes=num_classes)
        model.roi_head.mask_head.update(in_channels=32, conv_out_channels=32,
                                        num_classes=num_classes)
        model.train_cfg.rcnn.sampler.num = 64
        model.test_cfg.rpn.max_per_img = 100
        for split in ('val', 'test'):
            cfg[f'{split}_evaluator'].ann_file = osp.join(data_root, 'annotations',
                                                          'instances_val2017.json')
        dataset_update = dict(data_root=data_root + '/', metainfo=metainfo)
    else:
        metainfo, factor, num_classes = ade_metainfo(), 8, 4
        model.data_preprocessor.size = (64, 64)
        model.decode_head.update(in_channels=TINY_CHANNELS, channels=32,
                                 num_classes=num_classes)
        model.auxiliary_head.update(in_channels=TINY_CHANNELS[2], channels=16,
                                    num_classes=num_classes)
        dataset_update = dict(type='BaseSegDataset', data_root=data_root, metainfo=metainfo,
                              img_suffix='.jpg', seg_map_suffix='.png', reduce_zero_label=True)
        _shrink_scales(cfg.tta_pipeline, factor)
    for split in ('train', 'val', 'test'):
        loader = cfg[f'{split}_dataloader']
        loader.update(batch_size=2 if split == 'train' else 1, num_workers=0,
                      persistent_workers=False)
        dataset = loader.dataset
        dataset.update(dataset_update)
        _shrink_scales(dataset.pipeline, factor)
        if not random_flip:
            dataset.pipeline = [t for t in dataset.pipeline if t['type'] != 'RandomFlip']
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
    cfg.param_scheduler = [dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0,
                                end=8)]
    cfg.optim_wrapper.optimizer.lr = 1e-3
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=1, log_metric_by_epoch=False)
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', by_epoch=False,
                                        interval=max_iters, max_keep_ckpts=1)
    cfg.log_processor = dict(by_epoch=False)
    cfg.randomness = dict(seed=0)
    cfg.env_cfg.cudnn_benchmark = False
    if not with_val:
        cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
    return cfg


def dump(cfg: Config, path: str) -> str:
    """Write ``cfg`` to ``path`` (a .py config file) and return the path."""
    cfg.dump(path)
    return path


def run_tool(args: List[str], cwd: Optional[str] = None, timeout: int = 240,
             check: bool = True) -> subprocess.CompletedProcess:
    """Run ``python <args>`` (a tool under tools/) in a fresh process with 1 thread per op."""
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get('OMP_NUM_THREADS', '1'),
               PYTHONWARNINGS='ignore')
    result = subprocess.run([sys.executable, *args], cwd=cwd or ROOT, env=env,
                            capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f'{" ".join(args)} failed ({result.returncode}):\n'
                             f'{result.stdout[-3000:]}\n{result.stderr[-5000:]}')
    return result
