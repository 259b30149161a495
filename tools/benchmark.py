"""Throughput, latency and peak memory of a Spatial-Mamba model, on the GPU or the CPU.

Usage:
    python tools/benchmark.py --backbone tiny --batch-size 128 --shape 224 224      # GPU target
    python tools/benchmark.py --classifier tiny --batch-size 128 --amp --compile
    python tools/benchmark.py configs/maskrcnn_spatialmamba_t_coco.py --batch-size 2 \
        --shape 800 1344
    python tools/benchmark.py --backbone tiny --device cpu --batch-size 1 2 4 --shape 224 224 \
        --backend torch --json out.json --plot out.png

Each measurement: ``--warmup`` untimed iterations, then ``--iters`` timed ones; reported:
median latency per batch, images/s = batch / median, and peak memory. ``inference`` is one
forward in eval mode, ``train`` one optimisation step in train mode; ``--amp`` autocasts
their forward and loss. How the steps are built and timed, and what peak memory means on each
device: :mod:`mmspatialmamba.analysis.timing` (``step_functions``, ``measure``).

``--backend`` picks the ops backend of the SASF core: 'triton' (our kernels; CUDA only) or
'torch' (the PyTorch composition, the reference path). Several backends and batch sizes make
a sweep, and ``--plot`` draws images/s against batch size per backend and mode.
"""
import argparse
import json
import os
import platform
from dataclasses import asdict
from typing import List, Optional, Tuple

import torch
from torch import nn

from mmspatialmamba.analysis.timing import Measurement, measure, step_functions
from mmspatialmamba.apis.cli import add_debug_argument, exit_on_user_error, resolve_device_args
from mmspatialmamba.errors import BadInputError


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', nargs='?', help='mmdet/mmseg config file')
    parser.add_argument('--backbone', metavar='ARCH',
                        help='benchmark the backbone alone: tiny|small|base or a JSON arch dict')
    parser.add_argument('--classifier', metavar='ARCH',
                        help='benchmark the ImageNet classifier: tiny|small|base or JSON')
    parser.add_argument('--device', default='auto', choices=['auto', 'cpu', 'cuda'],
                        help='auto: cuda if available, else cpu')
    parser.add_argument('--batch-size', type=int, nargs='+', default=[1],
                        help='one or more batch sizes (several make a sweep)')
    parser.add_argument('--shape', type=int, nargs=2, default=[224, 224], metavar=('H', 'W'))
    parser.add_argument('--backend', nargs='+', default=None, choices=['torch', 'triton'],
                        help='ops backend(s); default: triton on CUDA, torch on CPU')
    parser.add_argument('--modes', nargs='+', default=['inference', 'train'],
                        choices=['inference', 'train'])
    parser.add_argument('--amp', nargs='?', const='bf16', choices=['bf16', 'fp16'],
                        help='autocast to bfloat16 (default) or float16 (fp16: Mask R-CNN on '
                             'the GPU, whose mmcv RoIAlign has no bfloat16 kernel)')
    parser.add_argument('--compile', action='store_true',
                        help='torch.compile the model (the backbone only for mmdet/mmseg)')
    parser.add_argument('--warmup', type=int, default=3)
    parser.add_argument('--iters', type=int, default=10)
    parser.add_argument('--threads', type=int, default=None,
                        help='torch.set_num_threads for CPU runs (1 is steadier on a busy '
                             'machine); default: torch\'s choice')
    parser.add_argument('--json', metavar='PATH', help='write the rows as JSON')
    parser.add_argument('--plot', metavar='PNG', help='plot images/s vs batch size')
    add_debug_argument(parser)
    args = parser.parse_args(argv)
    if sum(x is not None for x in (args.config, args.backbone, args.classifier)) != 1:
        parser.error('pass exactly one of CONFIG, --backbone ARCH, --classifier ARCH')
    if min(args.shape) < 1 or min(args.batch_size) < 1 or args.iters < 1 or args.warmup < 0:
        parser.error(f'--shape and --batch-size must be positive, --iters >= 1, --warmup >= 0; '
                     f'got shape {args.shape}, batch {args.batch_size}, iters {args.iters}')
    resolve_device_args(parser, args)
    if args.backend is None:
        args.backend = ['triton' if args.device == 'cuda' else 'torch']
    if args.device == 'cpu' and 'triton' in args.backend:
        parser.error("--backend triton needs a CUDA device (on the CPU only the Triton "
                     "interpreter runs it, far too slowly to benchmark); use --backend torch")
    if args.plot and len(args.batch_size) < 2:
        parser.error('--plot needs a sweep: pass several --batch-size values')
    return args


def build_model(args: argparse.Namespace, backend: str) -> Tuple[nn.Module, str, str]:
    """Build the model to benchmark with the SASF ops ``backend`` (no checkpoint loaded).

    Returns:
        ``(model, task, label)``; task is 'backbone', 'classification', 'detection' or
        'segmentation'.
    """
    import mmspatialmamba  # noqa: F401  (registers the models)
    from mmspatialmamba.analysis.builders import build_from_config, parse_arch
    from mmspatialmamba.models import SpatialMamba, SpatialMambaClassifier
    for name, cls, task in (('backbone', SpatialMamba, 'backbone'),
                            ('classifier', SpatialMambaClassifier, 'classification')):
        arch = getattr(args, name)
        if arch is not None:
            arch = parse_arch(arch)
            label = f'{cls.__name__}({arch if isinstance(arch, str) else "custom"})'
            return cls(arch=arch, backend=backend), task, label
    model, task, _ = build_from_config(args.config, backend=backend)
    return model, task, os.path.basename(args.config)


def run(args: argparse.Namespace) -> List[Measurement]:
    """Every (backend, batch size, mode) combination of ``args``."""
    from mmspatialmamba.analysis.builders import synthetic_batch
    height, width = args.shape
    rows = []
    for backend in args.backend:
        model, task, label = build_model(args, backend)
        if task == 'segmentation' and 'train' in args.modes and min(args.batch_size) < 2:
            raise BadInputError('training UperNet needs --batch-size >= 2 (its pyramid '
                                'pooling module has a BatchNorm on 1x1 maps); pass '
                                '--batch-size 2 or --modes inference')
        model.to(args.device)
        compiled = None
        if args.compile:
            if task in ('detection', 'segmentation'):
                model.backbone = torch.compile(model.backbone)
            else:
                compiled = torch.compile(model)
        for batch in args.batch_size:
            images, samples = synthetic_batch(task, batch, height, width, args.device)
            fns = step_functions(model, task, images, samples, compiled, args.amp)
            for mode in args.modes:
                model.train(mode == 'train')
                timing = measure(fns[mode], args.device, args.warmup, args.iters)
                rows.append(Measurement(label, args.device, backend, args.amp, args.compile,
                                        mode, batch, (height, width), batch / timing.median_s,
                                        timing.median_s * 1e3, timing.peak_mem_mib,
                                        timing.peak_mem_kind))
        del model, compiled
    return rows


def device_name(device: str) -> str:
    """A human-readable description of the device."""
    if device == 'cuda':
        return torch.cuda.get_device_name()
    return f'{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads'


def print_table(rows: List[Measurement], device: str) -> None:
    print(f'device: {device_name(device)}; torch {torch.__version__}; '
          f'peak memory = {rows[0].peak_mem_kind if rows else "-"}')
    header = (f'{"model":<34}{"backend":>8}{"amp":>5}{"comp":>5}{"mode":>10}{"batch":>6}'
              f'{"HxW":>10}{"img/s":>10}{"ms/batch":>10}{"peak MiB":>10}')
    print(header)
    print('-' * len(header))
    for r in rows:
        print(f'{r.model:<34}{r.backend:>8}{r.amp or "-":>5}'
              f'{("y" if r.compile else "-"):>5}{r.mode:>10}{r.batch:>6}'
              f'{f"{r.shape[0]}x{r.shape[1]}":>10}{r.images_per_s:>10.2f}'
              f'{r.latency_ms:>10.1f}{r.peak_mem_mib:>10.0f}')


def plot(rows: List[Measurement], path: str) -> None:
    """Images/s against batch size, one line per (backend, mode), written as a PNG."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 4))
    for backend in sorted({r.backend for r in rows}):
        for mode in sorted({r.mode for r in rows}):
            sel = sorted((r.batch, r.images_per_s) for r in rows
                         if r.backend == backend and r.mode == mode)
            name = 'ours (Triton)' if backend == 'triton' else 'PyTorch composition'
            ax.plot([b for b, _ in sel], [v for _, v in sel], marker='o',
                    label=f'{name}, {mode}')
    ax.set_xscale('log', base=2)
    batches = sorted({r.batch for r in rows})
    ax.set_xticks(batches, [str(b) for b in batches])
    ax.set_xlabel('batch size')
    ax.set_ylabel('images / s')
    first = rows[0]
    ax.set_title(f'{first.model} {first.shape[0]}x{first.shape[1]} '
                 f'{first.amp or "fp32"} on {device_name(first.device)}',
                 fontsize=8)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: Optional[List[str]] = None) -> List[Measurement]:
    """Measure, print the table, optionally write JSON and a plot; returns the rows.

    Bad input ends the tool with one line (exit status 1), unless ``--debug``.
    """
    args = parse_args(argv)
    with exit_on_user_error(args.debug):
        return benchmark(args)


def benchmark(args: argparse.Namespace) -> List[Measurement]:
    """Run the measurements of ``args`` and report them."""
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if args.device == 'cuda':
        torch.backends.cudnn.benchmark = True
    rows = run(args)
    print_table(rows, args.device)
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(dict(device=device_name(args.device), torch=torch.__version__,
                           warmup=args.warmup, iters=args.iters,
                           rows=[asdict(r) for r in rows]), f, indent=2)
    if args.plot:
        plot(rows, args.plot)
    return rows


if __name__ == '__main__':
    main()
