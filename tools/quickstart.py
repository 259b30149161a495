"""Quick start: train and evaluate Spatial-Mamba-T on generated data, on a CPU, in minutes.

Detection (default): writes a synthetic COCO-format instance set (circles, rectangles,
triangles) under ``data/synthetic/coco``, trains Mask R-CNN from the shipped
``configs/maskrcnn_spatialmamba_t_coco.py``, evaluates it with the COCO metric (bbox and segm
mAP), and writes a prediction drawing and a loss curve. ``--task seg`` does the same for
UperNet (``configs/upernet_spatialmamba_t_ade20k.py``) on an ADE20K-layout set, with mIoU.

The model is the recipe's; only the data (paths, classes), the image size and the schedule are
overridden, and the backbone starts from scratch because no ImageNet checkpoint is shipped.
The schedule is made for that: a few hundred iterations at a higher learning rate. The
overrides are in ``det_overrides`` / ``seg_overrides`` below and are dumped with the config.

    bash tools/quickstart.sh                 # detection (sets up .venv first)
    bash tools/quickstart.sh --task seg      # segmentation
"""
import argparse
import logging
import os.path as osp
import sys
import time
from typing import Dict, List

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from mmengine.config import Config  # noqa: E402
from mmengine.hooks import Hook  # noqa: E402
from mmengine.runner import Runner  # noqa: E402

import mmspatialmamba  # noqa: E402,F401
from mmspatialmamba.apis import draw_result, inference, init_model  # noqa: E402
from mmspatialmamba.engine import make_resumable  # noqa: E402
from mmspatialmamba.datasets import (ade_metainfo, coco_metainfo, make_ade_semantic,  # noqa: E402
                                     make_coco_instances)

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
DRAW_SCORE_THR = 0.2
CONFIGS = {'det': 'configs/maskrcnn_spatialmamba_t_coco.py',
           'seg': 'configs/upernet_spatialmamba_t_ade20k.py'}


class ProgressHook(Hook):
    """Prints a one-line progress display and records losses and validation metrics."""

    priority = 'LOW'

    def __init__(self, every: int = 5) -> None:
        self.every = every
        self.losses: Dict[str, List[float]] = {}
        self.metrics: Dict[str, float] = {}
        self.start = 0.0
        self.tty = sys.stdout.isatty()

    def before_train(self, runner) -> None:
        self.start = time.time()

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        for key, value in (outputs or {}).items():
            if key.startswith('loss'):
                self.losses.setdefault(key, []).append(float(value.detach()))
        done, total = runner.iter + 1, runner.max_iters
        if done % self.every and done != total:
            return
        elapsed = time.time() - self.start
        eta = elapsed / done * (total - done)
        recent = np.mean(self.losses['loss'][-self.every:])
        bar = '#' * int(30 * done / total)
        line = (f'[train] |{bar:<30}| {done}/{total} iters  loss {recent:.3f}  '
                f'{elapsed:.0f}s elapsed, ~{eta:.0f}s left')
        print(('\r' + line) if self.tty else line, end='' if self.tty and done < total else '\n',
              flush=True)

    def before_val(self, runner) -> None:
        print('[val] evaluating on the validation set ...', flush=True)

    def after_val_epoch(self, runner, metrics=None) -> None:
        self.metrics = dict(metrics or {})


def _set_scale(pipeline: list, scale: tuple) -> None:
    """Set the ``scale`` of every (Random)Resize transform of a pipeline."""
    for transform in pipeline:
        if transform['type'] in ('Resize', 'RandomResize'):
            transform['scale'] = scale


def det_overrides(cfg: Config, data_root: str, size: int, iters: int, batch_size: int,
                  lr: float) -> None:
    """Data, image size and schedule overrides for the Mask R-CNN quick start."""
    metainfo = coco_metainfo()
    cfg.model.backbone.init_cfg = None
    cfg.model.roi_head.bbox_head.num_classes = len(metainfo['classes'])
    cfg.model.roi_head.mask_head.num_classes = len(metainfo['classes'])
    # Few objects per small image: fewer sampled RoIs and test proposals keep a CPU step short.
    cfg.model.train_cfg.rcnn.sampler.num = 64
    cfg.model.test_cfg.rpn.max_per_img = 300
    for split in ('train', 'val', 'test'):
        loader = cfg[f'{split}_dataloader']
        loader.update(batch_size=batch_size, num_workers=0, persistent_workers=False)
        loader.dataset.update(data_root=data_root + '/', metainfo=metainfo)
        _set_scale(loader.dataset.pipeline, (size, size))
    for split in ('val', 'test'):
        cfg[f'{split}_evaluator'].ann_file = osp.join(data_root, 'annotations',
                                                      'instances_val2017.json')
    _schedule(cfg, iters, lr=lr, warmup=min(20, iters // 4))


def seg_overrides(cfg: Config, data_root: str, size: int, iters: int, batch_size: int,
                  lr: float) -> None:
    """Data, image size and schedule overrides for the UperNet quick start."""
    metainfo = ade_metainfo()
    cfg.model.backbone.init_cfg = None
    cfg.model.decode_head.num_classes = len(metainfo['classes'])
    cfg.model.auxiliary_head.num_classes = len(metainfo['classes'])
    cfg.model.data_preprocessor.size = (size, size)
    for split in ('train', 'val', 'test'):
        loader = cfg[f'{split}_dataloader']
        loader.update(batch_size=batch_size if split == 'train' else 1, num_workers=0,
                      persistent_workers=False)
        # ADE20KDataset fixes its 150 classes; BaseSegDataset with ADE20K's file conventions.
        loader.dataset.update(type='BaseSegDataset', data_root=data_root, metainfo=metainfo,
                              img_suffix='.jpg', seg_map_suffix='.png', reduce_zero_label=True)
        _set_scale(loader.dataset.pipeline, (4 * size, size))
        for transform in loader.dataset.pipeline:
            if transform['type'] == 'RandomCrop':
                transform['crop_size'] = (size, size)
    _schedule(cfg, iters, lr=lr, warmup=min(20, iters // 4))


def _schedule(cfg: Config, iters: int, lr: float, warmup: int) -> None:
    """A short iteration-based AdamW schedule: linear warm-up, then cosine decay."""
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=iters, val_interval=iters)
    cfg.optim_wrapper.optimizer.lr = lr
    cfg.param_scheduler = [
        dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=warmup),
        dict(type='CosineAnnealingLR', by_epoch=False, begin=warmup, end=iters,
             eta_min=lr * 0.01)]
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=10, log_metric_by_epoch=False)
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', by_epoch=False, interval=iters,
                                        save_optimizer=False, save_param_scheduler=False,
                                        max_keep_ckpts=1)
    cfg.log_processor = dict(by_epoch=False)


def plot_losses(losses: Dict[str, List[float]], out_file: str, title: str) -> None:
    """Loss curves: the total (raw and smoothed) and each term (smoothed)."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    total = np.asarray(losses['loss'])
    window = max(1, len(total) // 20)
    smooth = lambda v: np.convolve(v, np.ones(window) / window, mode='valid')  # noqa: E731
    axes[0].plot(total, color='0.75', lw=0.8, label='per iteration')
    axes[0].plot(np.arange(window - 1, len(total)), smooth(total), lw=2,
                 label=f'mean of {window}')
    axes[0].set(title=f'{title}: total loss', xlabel='iteration', ylabel='loss')
    axes[0].legend()
    for key, values in losses.items():
        if key != 'loss':
            axes[1].plot(np.arange(window - 1, len(values)), smooth(np.asarray(values)),
                         label=key)
    axes[1].set(title='loss terms (smoothed)', xlabel='iteration', yscale='log')
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out_file, dpi=100)
    plt.close(fig)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--task', choices=['det', 'seg'], default='det',
                        help='det: Mask R-CNN + COCO mAP; seg: UperNet + mIoU')
    parser.add_argument('--iters', type=int, default=None,
                        help='training iterations (default: det 150, seg 150)')
    parser.add_argument('--image-size', type=int, default=96, help='image side in pixels')
    parser.add_argument('--batch-size', type=int, default=2, help='training batch size')
    parser.add_argument('--lr', type=float, help='peak AdamW learning rate (default 6e-4)')
    parser.add_argument('--num-train', type=int, default=240, help='generated training images')
    parser.add_argument('--num-val', type=int, default=40, help='generated validation images')
    parser.add_argument('--data-root', help='default: data/synthetic/{coco,ade}')
    parser.add_argument('--work-dir', help='default: work_dirs/quickstart_{det,seg}')
    parser.add_argument('--seed', type=int, default=0, help='data and training seed')
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    start = time.time()
    task = args.task
    iters = args.iters or {'det': 150, 'seg': 150}[task]
    size = args.image_size
    data_root = args.data_root or osp.join(ROOT, 'data', 'synthetic',
                                           {'det': 'coco', 'seg': 'ade'}[task])
    work_dir = args.work_dir or osp.join(ROOT, 'work_dirs', f'quickstart_{task}')

    print(f'[data] synthetic {"COCO instance" if task == "det" else "ADE20K semantic"} set in '
          f'{data_root} ({args.num_train} train / {args.num_val} val images, {size}x{size})',
          flush=True)
    make = make_coco_instances if task == 'det' else make_ade_semantic
    make(data_root, num_train=args.num_train, num_val=args.num_val, image_size=(size, size),
         seed=args.seed)

    cfg = Config.fromfile(osp.join(ROOT, CONFIGS[task]))
    lr = args.lr or {'det': 6e-4, 'seg': 6e-4}[task]
    (det_overrides if task == 'det' else seg_overrides)(cfg, data_root, size, iters,
                                                        args.batch_size, lr)
    cfg.work_dir = work_dir
    cfg.randomness = dict(seed=args.seed)
    make_resumable(cfg)  # as tools/train.py does, so `train.py CONFIG --resume` replays exactly
    runner = Runner.from_cfg(cfg)
    for handler in runner.logger.handlers:  # the full log still goes to the log file
        if type(handler) is logging.StreamHandler:
            handler.setLevel(logging.WARNING)
    progress = ProgressHook()
    runner.register_hook(progress)
    print(f'[train] Spatial-Mamba-T {"Mask R-CNN" if task == "det" else "UperNet"} from '
          f'{CONFIGS[task]}, {iters} iterations, batch {args.batch_size}, on '
          f'{"CPU" if runner.model.data_preprocessor.device.type == "cpu" else "GPU"} '
          f'(log: {runner.log_dir})', flush=True)
    runner.train()
    train_seconds = time.time() - progress.start

    checkpoint = osp.join(work_dir, f'iter_{iters}.pth')
    config_dump = osp.join(work_dir, osp.basename(CONFIGS[task]))
    curve = osp.join(work_dir, 'loss_curve.png')
    plot_losses(progress.losses, curve, 'Mask R-CNN' if task == 'det' else 'UperNet')
    image = osp.join(data_root, 'val2017', '000001.jpg') if task == 'det' else \
        osp.join(data_root, 'images', 'validation', 'synthetic_val_000000.jpg')
    drawing = osp.join(work_dir, 'prediction.png')
    model = init_model(config_dump, checkpoint)
    # A few minutes of training from scratch leave scores below the usual 0.3 display cut.
    draw_result(model, image, inference(model, image), drawing, score_thr=DRAW_SCORE_THR,
                scale=384 / size)

    m = progress.metrics
    print('\n=== quick start done in {:.0f} s (training {:.0f} s) ==='.format(
        time.time() - start, train_seconds))
    if task == 'det':
        print(f"bbox mAP {m['coco/bbox_mAP']:.3f} (AP50 {m['coco/bbox_mAP_50']:.3f})   "
              f"segm mAP {m['coco/segm_mAP']:.3f} (AP50 {m['coco/segm_mAP_50']:.3f})")
    else:
        print(f"mIoU {m['mIoU']:.2f}   aAcc {m['aAcc']:.2f}   mAcc {m['mAcc']:.2f}")
    print(f'loss         {progress.losses["loss"][0]:.3f} (first iter) -> '
          f'{np.mean(progress.losses["loss"][-20:]):.3f} (mean of the last 20)')
    print(f'loss curve   {curve}')
    print(f'prediction   {drawing} (detections scoring >= {DRAW_SCORE_THR})'
          if task == 'det' else f'prediction   {drawing}')
    print(f'checkpoint   {checkpoint}')
    print(f'config used  {config_dump}')
    print(f'try:         .venv/bin/python tools/infer.py {config_dump} {checkpoint} {image} '
          f'--out my_prediction.png')


if __name__ == '__main__':
    main()
