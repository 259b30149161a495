"""Point a shipped Mask R-CNN or UperNet config at the synthetic data, with a short schedule.

The quick start (``tools/quickstart.py``) and the tool tests (``tests/tools/tiny_runs.py``)
both train a shipped config on :func:`make_coco_instances` / :func:`make_ade_semantic` data;
:func:`use_synthetic_data` is the one place that says how. The model stays the recipe's: only
the data (paths, classes), the image size and the schedule change.
"""
import os.path as osp
from typing import Sequence

from mmengine.config import Config

from ..errors import BadInputError
from .synthetic import ade_metainfo, coco_metainfo

_SCALE_KEYS = ('scale', 'crop_size')


def _rescale_pipeline(pipeline: Sequence, ratio: float) -> None:
    """Multiply every resize scale and crop size in a (nested) pipeline by ``ratio``."""
    def rescale(size: Sequence[int]) -> tuple:
        return tuple(max(8, round(s * ratio)) for s in size)

    for transform in pipeline:
        if isinstance(transform, list):  # TestTimeAug / RandomChoice branches
            _rescale_pipeline(transform, ratio)
            continue
        for key in _SCALE_KEYS:
            if isinstance(transform.get(key), (tuple, list)):
                transform[key] = rescale(transform[key])
        if 'scales' in transform:
            transform['scales'] = [rescale(scale) for scale in transform['scales']]
        if 'transforms' in transform:
            _rescale_pipeline(transform['transforms'], ratio)


def _test_short_side(cfg: Config) -> int:
    """The short side of the test pipeline's resize scale (800 for COCO, 512 for ADE20K)."""
    for transform in cfg.test_dataloader.dataset.pipeline:
        if transform['type'] == 'Resize':
            return min(transform['scale'])
    raise BadInputError('the config\'s test pipeline has no Resize with a scale; '
                        'use_synthetic_data needs one to scale the pipelines to image_size')


def _use_coco_data(cfg: Config, data_root: str) -> dict:
    """Mask R-CNN: classes in both heads, evaluator annotations; returns the dataset update."""
    metainfo = coco_metainfo()
    roi_head = cfg.model.roi_head
    roi_head.bbox_head.num_classes = roi_head.mask_head.num_classes = len(metainfo['classes'])
    # A few objects per image: fewer sampled RoIs and test proposals keep a CPU step short.
    cfg.model.train_cfg.rcnn.sampler.num = 64
    cfg.model.test_cfg.rpn.max_per_img = 100
    for split in ('val', 'test'):
        cfg[f'{split}_evaluator'].ann_file = osp.join(data_root, 'annotations',
                                                      'instances_val2017.json')
    return dict(data_root=data_root + '/', metainfo=metainfo)


def _use_ade_data(cfg: Config, data_root: str) -> dict:
    """UperNet: classes in both heads; returns the dataset update."""
    metainfo = ade_metainfo()
    cfg.model.decode_head.num_classes = len(metainfo['classes'])
    cfg.model.auxiliary_head.num_classes = len(metainfo['classes'])
    # ADE20KDataset fixes its 150 classes; BaseSegDataset with ADE20K's file conventions.
    return dict(type='BaseSegDataset', data_root=data_root, metainfo=metainfo,
                img_suffix='.jpg', seg_map_suffix='.png', reduce_zero_label=True)


_DATASETS = {'mmdet': _use_coco_data, 'mmseg': _use_ade_data}


def use_synthetic_data(cfg: Config, data_root: str, image_size: int, iters: int,
                       lr: float, batch_size: int = 2, seed: int = 0) -> Config:
    """Make a shipped config train from scratch on synthetic data with a short schedule.

    Data: the datasets, classes (in the heads) and evaluator point at ``data_root``, written by
    :func:`make_coco_instances` (mmdet configs) or :func:`make_ade_semantic` (mmseg configs);
    loaders run in the main process (``num_workers=0``), validation one image at a time.
    Image size: every resize scale and crop size (train, test and TTA pipelines, and the seg
    data preprocessor's pad size) is scaled by ``image_size`` / the test scale's short side,
    so square ``image_size`` images are used at their size and the recipe's multi-scale
    ratios are kept. Schedule: ``iters`` iterations, linear warm-up over the first quarter (at
    most 20 iterations) to ``lr``, then cosine decay to ``lr / 100``; validation and one
    checkpoint at the end; seeded, deterministic algorithms. The backbone starts from scratch
    (no ImageNet checkpoint is needed).

    Args:
        cfg: A shipped config (``configs/maskrcnn_*`` or ``configs/upernet_*``), edited in place.
        data_root: The synthetic dataset's root.
        image_size: Side of the (square) generated images, in pixels.
        iters: Training iterations.
        lr: Peak learning rate of the recipe's optimizer.
        batch_size: Training batch size.
        seed: Seed of the run (``cfg.randomness``).

    Returns:
        ``cfg``.

    Raises:
        BadInputError: On a config of another toolkit than mmdet or mmseg, or a non-positive
            size.
    """
    scope = cfg.get('default_scope')
    if scope not in _DATASETS:
        raise BadInputError(f'use_synthetic_data takes an mmdet or mmseg config, got '
                            f'default_scope={scope!r}')
    if min(image_size, iters, batch_size) < 1 or lr <= 0:
        raise BadInputError(f'need positive image_size, iters, batch_size and lr, got '
                            f'image_size={image_size}, iters={iters}, batch_size={batch_size}, '
                            f'lr={lr}')
    cfg.model.backbone.init_cfg = None
    dataset_update = _DATASETS[scope](cfg, data_root)
    ratio = image_size / _test_short_side(cfg)
    for split in ('train', 'val', 'test'):
        loader = cfg[f'{split}_dataloader']
        loader.update(batch_size=batch_size if split == 'train' else 1, num_workers=0,
                      persistent_workers=False)
        loader.dataset.update(dataset_update)
        _rescale_pipeline(loader.dataset.pipeline, ratio)
    if cfg.get('tta_pipeline'):
        _rescale_pipeline(cfg.tta_pipeline, ratio)
    if cfg.model.data_preprocessor.get('size'):
        cfg.model.data_preprocessor.size = tuple(
            round(s * ratio) for s in cfg.model.data_preprocessor.size)
    _short_schedule(cfg, iters, lr)
    cfg.randomness = dict(seed=seed, deterministic=True)
    return cfg


def _short_schedule(cfg: Config, iters: int, lr: float) -> None:
    """An iteration-based schedule: linear warm-up, cosine decay, one checkpoint at the end."""
    warmup = max(1, min(20, iters // 4))
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=iters, val_interval=iters)
    cfg.optim_wrapper.optimizer.lr = lr
    cfg.param_scheduler = [
        dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=warmup),
        dict(type='CosineAnnealingLR', by_epoch=False, begin=warmup, end=max(iters, warmup + 1),
             eta_min=lr * 0.01)]
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=min(10, iters),
                                    log_metric_by_epoch=False)
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', by_epoch=False, interval=iters,
                                        max_keep_ckpts=1)
    cfg.log_processor = dict(by_epoch=False)
