"""CPU speed of the Spatial-Mamba-T backbone beside mmdet's Swin-T backbone, in one process.

Usage: .venv/bin/python benchmarks/bench_cpu.py [--threads N] [--repeats R] [--no-onnx]
       [--split] [--shapes 2x96 1x224 1x512] [--json FILE]

Both backbones are built here: ours as ``SpatialMamba(arch='tiny')`` on the PyTorch ops
backend (the CPU path), Swin-T as the backbone of mmdet's
``mmdet::swin/mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py`` (its ImageNet init dropped; weights do
not change the time). Forward: eval mode under ``torch.no_grad``. Forward+backward: train mode,
the sum of all four stage outputs back-propagated to every parameter. The two models are
timed alternately, one call each per round (after one untimed round), and each reports the
median over ``--repeats`` rounds, so load from other processes falls on both. The ONNX Runtime
column runs our backbone exported by ``tools/export_onnx.py``'s exporter
(``mmspatialmamba.deploy``) at the same shape, with as many intra-op threads as PyTorch.
The ratio columns are ours / Swin-T (below 1.0: ours is faster).

``--split`` adds a second table: per model and pass, the milliseconds spent in matrix products
and convolutions (``DENSE_OPS``, from ``torch.profiler``'s self CPU time over ``--repeats``
profiled calls) and the rest (the median wall time minus that). Its last column is what the
CPU path's targets (``GOALS``: forward <= 1.0x Swin-T, forward+backward <= 1.3x) leave for
everything of ours that is not a matrix product or a convolution:
``target x Swin-T's time - our dense time`` (docs/benchmarks.md, "The T backbone against
Swin-T on the CPU").
"""
import argparse
import json
import os
import statistics
import tempfile
import time
from typing import Callable, Dict, List, Optional

import torch
from torch import nn

from mmspatialmamba.analysis.timing import measure

SWIN_CONFIG = 'mmdet::swin/mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py'
GOALS = {'fwd': 1.0, 'train': 1.3}   # the CPU path's targets: ours / Swin-T at most this
# ATen's CPU matrix products and convolutions, forward and backward (oneDNN and MKL calls).
DENSE_OPS = frozenset({'aten::mm', 'aten::addmm', 'aten::bmm', 'aten::baddbmm',
                       'aten::mkldnn_convolution', 'aten::convolution_backward'})


def build_models() -> Dict[str, nn.Module]:
    """Ours (T, PyTorch ops) and mmdet's Swin-T backbone, freshly initialised."""
    from mmdet.registry import MODELS
    from mmengine.hub import get_config
    from mmengine.registry import DefaultScope

    from mmspatialmamba.models import SpatialMamba
    backbone = get_config(SWIN_CONFIG).model.backbone
    backbone.pop('init_cfg')                        # ImageNet weights: no download needed
    with DefaultScope.overwrite_default_scope('mmdet'):   # not left set for later builds
        swin = MODELS.build(backbone)
    swin.init_weights()
    ours = SpatialMamba(arch='tiny', backend='torch')
    ours.init_weights()
    return {'ours': ours, 'swin': swin}


def forward_fn(model: nn.Module, images: torch.Tensor) -> Callable[[], None]:
    def run():
        model.eval()
        with torch.no_grad():
            model(images)
    return run


def train_fn(model: nn.Module, images: torch.Tensor) -> Callable[[], None]:
    def run():
        model.train()
        model.zero_grad(set_to_none=True)
        sum(out.sum() for out in model(images)).backward()
    return run


def alternate(fns: Dict[str, Callable[[], None]], repeats: int) -> Dict[str, float]:
    """Median milliseconds of each function, called in turn ``repeats`` times after one
    untimed round."""
    times: Dict[str, List[float]] = {name: [] for name in fns}
    for name, fn in fns.items():
        fn()
    for _ in range(repeats):
        for name, fn in fns.items():
            times[name].append(measure(fn, 'cpu', warmup=0, iters=1).median_s * 1e3)
    return {name: statistics.median(ts) for name, ts in times.items()}


def dense_ms(fn: Callable[[], None], repeats: int) -> float:
    """Mean milliseconds per call of ``fn`` inside ``DENSE_OPS`` (self CPU time of
    those operators in ``torch.profiler``, over ``repeats`` calls after one untimed call)."""
    fn()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        for _ in range(repeats):
            fn()
    total_us = sum(e.self_cpu_time_total for e in prof.key_averages() if e.key in DENSE_OPS)
    return total_us / 1e3 / repeats


def onnx_runtime_ms(model: nn.Module, images: torch.Tensor, repeats: int,
                    threads: int) -> Optional[float]:
    """Median milliseconds of our backbone exported to ONNX and run by ONNX Runtime (CPU)."""
    import onnxruntime as ort

    from mmspatialmamba.deploy.onnx_export import export
    model.eval()
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, 'backbone.onnx')
        export(model, images, path)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        session = ort.InferenceSession(path, options, providers=['CPUExecutionProvider'])
    feed = {session.get_inputs()[0].name: images.numpy()}
    return measure(lambda: session.run(None, feed), 'cpu', warmup=1,
                   iters=repeats).median_s * 1e3


def print_split(rows: List[dict]) -> None:
    """The ``--split`` table: dense (matrix products, convolutions) and other milliseconds."""
    print(f'\n{"input":>14} | {"pass":>5} | {"ours dense":>10} | {"ours rest":>9} | '
          f'{"Swin-T dense":>12} | {"Swin-T rest":>11} | {"rest the goal allows":>20}')
    for row in rows:
        for mode, goal in GOALS.items():
            ours, swin = row[f'{mode}_ours_ms'], row[f'{mode}_swin_ms']
            ours_dense, swin_dense = row[f'{mode}_ours_dense_ms'], row[f'{mode}_swin_dense_ms']
            print(f'{row["input"]:>14} | {mode:>5} | {ours_dense:10.0f} | '
                  f'{ours - ours_dense:9.0f} | {swin_dense:12.0f} | {swin - swin_dense:11.0f} | '
                  f'{goal * swin - ours_dense:20.0f}')


def parse_shape(text: str) -> tuple:
    """'2x96' -> (2, 96): batch x square side."""
    try:
        batch, side = (int(v) for v in text.lower().split('x'))
    except ValueError:
        batch = side = 0
    if batch < 1 or side < 1:
        raise argparse.ArgumentTypeError(f'shape {text!r} must be BATCHxSIDE with positive '
                                         'integers, e.g. 1x224')
    return batch, side


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--threads', type=int, default=torch.get_num_threads())
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--shapes', nargs='+', type=parse_shape,
                        default=[(2, 96), (1, 224), (1, 512)], help='batch x side, e.g. 1x224')
    parser.add_argument('--no-onnx', action='store_true', help='skip the ONNX Runtime column')
    parser.add_argument('--split', action='store_true',
                        help='also split each time into matrix products + convolutions and '
                        'the rest')
    parser.add_argument('--json', help='also write the rows to this file')
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    models = build_models()
    print(f'torch {torch.__version__}, {args.threads} threads, median of {args.repeats} '
          f'alternating rounds; ms')
    print(f'{"input":>14} | {"fwd ours":>9} | {"fwd Swin-T":>10} | {"ratio":>5} | '
          f'{"fwd+bwd ours":>12} | {"fwd+bwd Swin-T":>14} | {"ratio":>5} | {"ours ORT fwd":>12}')
    rows = []
    for batch, side in args.shapes:
        images = torch.randn(batch, 3, side, side)
        fwd = alternate({k: forward_fn(m, images) for k, m in models.items()}, args.repeats)
        train = alternate({k: train_fn(m, images) for k, m in models.items()}, args.repeats)
        ort_ms = None if args.no_onnx else onnx_runtime_ms(models['ours'], images,
                                                            args.repeats, args.threads)
        row = dict(input=f'{batch}x3x{side}x{side}', fwd_ours_ms=fwd['ours'],
                   fwd_swin_ms=fwd['swin'], fwd_ratio=fwd['ours'] / fwd['swin'],
                   train_ours_ms=train['ours'], train_swin_ms=train['swin'],
                   train_ratio=train['ours'] / train['swin'], ort_ours_fwd_ms=ort_ms)
        if args.split:
            for mode, make in (('fwd', forward_fn), ('train', train_fn)):
                for name, model in models.items():
                    row[f'{mode}_{name}_dense_ms'] = dense_ms(make(model, images), args.repeats)
        rows.append(row)
        ort_text = 'skipped' if ort_ms is None else f'{ort_ms:.0f}'
        print(f'{row["input"]:>14} | {fwd["ours"]:9.0f} | {fwd["swin"]:10.0f} | '
              f'{row["fwd_ratio"]:5.2f} | {train["ours"]:12.0f} | {train["swin"]:14.0f} | '
              f'{row["train_ratio"]:5.2f} | {ort_text:>12}', flush=True)
    if args.split:
        print_split(rows)
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(dict(torch=torch.__version__, threads=args.threads,
                           repeats=args.repeats, time=time.strftime('%Y-%m-%d %H:%M'),
                           rows=rows), f, indent=1)


if __name__ == '__main__':
    main()
