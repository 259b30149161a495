"""Quick start: train and evaluate Spatial-Mamba-T on generated data, on a CPU, in minutes.

Detection (default): writes a synthetic COCO-format instance set (circles, rectangles,
triangles) under ``data/synthetic/coco``, trains Mask R-CNN from the shipped
``configs/maskrcnn_spatialmamba_t_coco.py``, evaluates it with the COCO metric (bbox and segm
mAP), and writes a prediction drawing and a loss curve. ``--task seg`` does the same for
UperNet (``configs/upernet_spatialmamba_t_ade20k.py``) on an ADE20K-layout set, with mIoU.

The model is the recipe's; only the data (paths, classes), the image size and the schedule are
overridden (``mmspatialmamba.datasets.use_synthetic_data``; the config used is dumped in the
work dir), and the backbone starts from scratch because no ImageNet checkpoint is shipped.
Each task's defaults (``TASKS``) are made for that: a short schedule at a higher learning
rate. Runs are seeded and use deterministic algorithms on a fixed number of threads.

    bash tools/quickstart.sh                 # detection (sets up .venv first)
    bash tools/quickstart.sh --task seg      # segmentation
"""
import argparse
import logging
import os
import os.path as osp
import sys
import time
from typing import Callable, Dict, List, NamedTuple

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from mmengine.config import Config  # noqa: E402
from mmengine.hooks import Hook  # noqa: E402
from mmengine.runner import Runner  # noqa: E402

import mmspatialmamba  # noqa: E402,F401
from mmspatialmamba.apis import (add_debug_argument, draw_result, exit_on_user_error,  # noqa: E402
                                 inference, init_model)
from mmspatialmamba.datasets import (make_ade_semantic, make_coco_instances,  # noqa: E402
                                     use_synthetic_data)
from mmspatialmamba.engine import make_resumable  # noqa: E402

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
IMAGE_SIZE = 64
THREADS = 1  # fixed, so results do not depend on the core count; one core trains in < 5 min
DRAW_SCORE_THR = 0.5


class Task(NamedTuple):
    """What the quick start runs for one task: config, data, schedule and what it reports."""
    config: str  # shipped config, relative to the repository root
    model: str
    data: str  # the generated set, in words
    data_dir: str  # under data/synthetic/
    make_data: Callable[..., Dict[str, str]]
    iters: int
    lr: float
    metric: str
    summary: str  # formatted with the validation metrics
    drawing: str  # what prediction.png shows


TASKS = {
    'det': Task(config='configs/maskrcnn_spatialmamba_t_coco.py', model='Mask R-CNN',
                data='COCO instance', data_dir='coco', make_data=make_coco_instances,
                iters=150, lr=1e-3, metric='COCO bbox/segm mAP',
                summary='bbox mAP {coco/bbox_mAP:.3f} (AP50 {coco/bbox_mAP_50:.3f})   '
                        'segm mAP {coco/segm_mAP:.3f} (AP50 {coco/segm_mAP_50:.3f})',
                drawing=f'detections scoring >= {DRAW_SCORE_THR}'),
    'seg': Task(config='configs/upernet_spatialmamba_t_ade20k.py', model='UperNet',
                data='ADE20K semantic', data_dir='ade', make_data=make_ade_semantic,
                iters=150, lr=1e-3, metric='mIoU',
                summary='mIoU {mIoU:.2f}   aAcc {aAcc:.2f}   mAcc {mAcc:.2f}',
                drawing='the predicted label map'),
}


class ProgressHook(Hook):
    """Prints a one-line progress display; records losses, training time and val metrics.

    ``wall_seconds`` and ``cpu_seconds`` (user + system, all threads) cover the training
    iterations only, not the validation at the end.
    """

    priority = 'LOW'

    def __init__(self, every: int = 5) -> None:
        self.every = every
        self.losses: Dict[str, List[float]] = {}
        self.metrics: Dict[str, float] = {}
        self.tty = sys.stdout.isatty()
        self.wall_seconds = self.cpu_seconds = 0.0

    def before_train(self, runner) -> None:
        self.start, self.cpu_start = time.time(), time.process_time()

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        self.wall_seconds = time.time() - self.start
        self.cpu_seconds = time.process_time() - self.cpu_start
        for key, value in (outputs or {}).items():
            if key.startswith('loss'):
                self.losses.setdefault(key, []).append(float(value.detach()))
        done, total = runner.iter + 1, runner.max_iters
        if done % self.every and done != total:
            return
        elapsed = self.wall_seconds
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
    parser.add_argument('--task', choices=sorted(TASKS), default='det',
                        help=', '.join(f'{k}: {v.model} + {v.metric}' for k, v in TASKS.items()))
    parser.add_argument('--iters', type=int,
                        help='training iterations (default: ' + ', '.join(
                            f'{k} {v.iters}' for k, v in TASKS.items()) + ')')
    parser.add_argument('--lr', type=float,
                        help='peak AdamW learning rate (default: ' + ', '.join(
                            f'{k} {v.lr:g}' for k, v in TASKS.items()) + ')')
    parser.add_argument('--image-size', type=int, default=IMAGE_SIZE, help='image side in pixels')
    parser.add_argument('--batch-size', type=int, default=2, help='training batch size')
    parser.add_argument('--num-train', type=int, default=240, help='generated training images')
    parser.add_argument('--num-val', type=int, default=40, help='generated validation images')
    parser.add_argument('--threads', type=int, default=THREADS,
                        help='CPU threads (results are reproducible for a fixed thread count)')
    parser.add_argument('--data-root', help='default: data/synthetic/<task>')
    parser.add_argument('--work-dir', help='default: work_dirs/quickstart_<task>')
    parser.add_argument('--seed', type=int, default=0, help='data and training seed')
    add_debug_argument(parser)
    return parser.parse_args(argv)


def main(argv=None) -> None:
    """Run the quick start; bad input ends it with one line (exit 1), unless ``--debug``."""
    args = parse_args(argv)
    with exit_on_user_error(args.debug):
        quickstart(args)


def quickstart(args: argparse.Namespace) -> None:
    """Make the data, train, evaluate, draw and print the summary."""
    start = time.time()
    spec = TASKS[args.task]
    iters, size = args.iters or spec.iters, args.image_size
    data_root = args.data_root or osp.join(ROOT, 'data', 'synthetic', spec.data_dir)
    work_dir = args.work_dir or osp.join(ROOT, 'work_dirs', f'quickstart_{args.task}')
    torch.set_num_threads(args.threads)

    print(f'[data] synthetic {spec.data} set in {data_root} ({args.num_train} train / '
          f'{args.num_val} val images, {size}x{size})', flush=True)
    paths = spec.make_data(data_root, num_train=args.num_train, num_val=args.num_val,
                           image_size=(size, size), seed=args.seed)

    cfg = Config.fromfile(osp.join(ROOT, spec.config))
    use_synthetic_data(cfg, data_root, image_size=size, iters=iters, lr=args.lr or spec.lr,
                       batch_size=args.batch_size, seed=args.seed)
    cfg.default_hooks.checkpoint.update(save_optimizer=False, save_param_scheduler=False)
    cfg.work_dir = work_dir
    make_resumable(cfg)  # as tools/train.py does, so `train.py CONFIG --resume` replays exactly
    runner = Runner.from_cfg(cfg)
    for handler in runner.logger.handlers:  # the full log still goes to the log file
        if type(handler) is logging.StreamHandler:
            handler.setLevel(logging.WARNING)
    progress = ProgressHook()
    runner.register_hook(progress)
    print(f'[train] Spatial-Mamba-T {spec.model} from {spec.config}, {iters} iterations, '
          f'batch {args.batch_size}, {args.threads} threads on '
          f'{"CPU" if runner.model.data_preprocessor.device.type == "cpu" else "GPU"} '
          f'(log: {runner.log_dir})', flush=True)
    runner.train()

    checkpoint = osp.join(work_dir, f'iter_{iters}.pth')
    config_dump = osp.join(work_dir, osp.basename(spec.config))
    curve = osp.join(work_dir, 'loss_curve.png')
    plot_losses(progress.losses, curve, spec.model)
    image = osp.join(paths['val_img'], sorted(os.listdir(paths['val_img']))[0])
    drawing = osp.join(work_dir, 'prediction.png')
    model = init_model(config_dump, checkpoint)
    draw_result(model, image, inference(model, image), drawing, score_thr=DRAW_SCORE_THR,
                scale=384 / size)

    print(f'\n=== quick start done in {time.time() - start:.0f} s (training '
          f'{progress.wall_seconds:.0f} s wall, {progress.cpu_seconds:.0f} s CPU) ===')
    print(spec.summary.format(**progress.metrics))
    print(f'loss         {progress.losses["loss"][0]:.3f} (first iter) -> '
          f'{np.mean(progress.losses["loss"][-20:]):.3f} (mean of the last 20)')
    print(f'loss curve   {curve}')
    print(f'prediction   {drawing} ({spec.drawing})')
    print(f'checkpoint   {checkpoint}')
    print(f'config used  {config_dump}')
    print(f'try:         .venv/bin/python tools/infer.py {config_dump} {checkpoint} {image} '
          f'--out my_prediction.png')


if __name__ == '__main__':
    main()
