"""Export a Spatial-Mamba model to ONNX (standard operators only) and check it with ONNX Runtime.

Usage:
    python tools/export_onnx.py configs/upernet_spatialmamba_t_ade20k.py [CKPT] --shape 512 512 \
        --out upernet_t.onnx                        # segmentor: images -> logits
    python tools/export_onnx.py configs/maskrcnn_spatialmamba_t_coco.py [CKPT] --shape 800 1344 \
        --out maskrcnn_t_features.onnx              # detector: backbone + FPN
    python tools/export_onnx.py CONFIG [CKPT] --shape 224 224 --out backbone.onnx --backbone-only

The model is exported on the PyTorch ops path (float32, eval mode, batch 1 unless
``--batch-size``), then run by ONNX Runtime on the CPU beside PyTorch on the same random
input: the tool prints the largest relative error (``max|ort - torch| / max|torch|`` over the
outputs) and both run times, and exits 1 if the error exceeds ``--tolerance`` (1e-4) or the
file uses an operator outside the standard ONNX domain. What each model family exports and
why detectors stop at the neck: ``docs/deploy.md``.
"""
import argparse
import sys
from typing import List, Optional

from mmspatialmamba.apis.cli import add_debug_argument, exit_on_user_error
from mmspatialmamba.checkpoint_io import add_trust_argument, apply_trust_argument


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='mmdet/mmseg config file')
    parser.add_argument('checkpoint', nargs='?',
                        help='weights to export (default: random init, for a dry run)')
    parser.add_argument('--shape', type=int, nargs=2, metavar=('H', 'W'), required=True,
                        help='input height and width the file is traced at')
    parser.add_argument('--out', required=True, help='output .onnx file')
    parser.add_argument('--backbone-only', action='store_true',
                        help='export the backbone alone (images -> stage features)')
    parser.add_argument('--batch-size', type=int, default=1)
    parser.add_argument('--opset', type=int, default=18)
    parser.add_argument('--tolerance', type=float, default=1e-4,
                        help='largest relative error accepted (default: 1e-4, float32)')
    parser.add_argument('--repeats', type=int, default=3, help='timed runs of each (median)')
    add_trust_argument(parser)
    add_debug_argument(parser)
    args = parser.parse_args(argv)
    if min(args.shape) < 32:
        parser.error(f'--shape must be at least 32 32 (the network downsamples 32x), '
                     f'got {args.shape[0]} {args.shape[1]}')
    if args.batch_size < 1:
        parser.error(f'--batch-size must be >= 1, got {args.batch_size}')
    return args


def main(argv: Optional[List[str]] = None) -> int:
    """Export, check, print the report; returns the exit status (0 pass, 1 fail).

    Bad input ends the tool with one line (exit status 1), unless ``--debug``.
    """
    args = parse_args(argv)
    with exit_on_user_error(args.debug):
        return export_and_check(args)


def export_and_check(args: argparse.Namespace) -> int:
    """Export the model of ``args``, check it and report; returns the exit status."""
    import torch
    import mmspatialmamba  # noqa: F401  (registers the models)
    from mmspatialmamba.analysis.builders import build_from_config
    from mmspatialmamba.deploy import onnx_export

    model, task, _ = build_from_config(args.config, backend='torch')
    if args.checkpoint:
        from mmengine.runner import load_checkpoint
        apply_trust_argument(args)
        load_checkpoint(model, args.checkpoint, map_location='cpu')
    model.eval()
    if args.backbone_only:
        module, what = model.backbone, 'backbone'
    elif task == 'segmentation':
        module, what = onnx_export.SegmentorLogits(model, tuple(args.shape)), 'segmentor logits'
    else:
        module, what = onnx_export.BackboneNeck(model), 'backbone + neck (see docs/deploy.md)'

    torch.manual_seed(0)
    images = torch.randn(args.batch_size, 3, *args.shape)
    onnx_export.export(module, images, args.out, opset=args.opset)
    report = onnx_export.check(args.out, module, images, repeats=args.repeats)
    shapes = ', '.join('x'.join(map(str, s)) for s in report.output_shapes)
    print(f'{args.config}: exported {what} at {args.batch_size}x3x{args.shape[0]}x'
          f'{args.shape[1]} to {args.out} (opset {args.opset}); outputs {shapes}')
    print(f'ONNX Runtime vs PyTorch: max rel. error {report.max_rel_error:.2e} '
          f'(max abs. {report.max_abs_error:.2e}, tolerance {args.tolerance:.0e}); '
          f'time per forward: PyTorch {report.torch_ms:.1f} ms, ONNX Runtime '
          f'{report.ort_ms:.1f} ms (CPU, median of {args.repeats})')
    status = 0
    if report.nonstandard_ops:
        print(f'error: operators outside the standard ONNX domain: '
              f'{", ".join(report.nonstandard_ops)}', file=sys.stderr)
        status = 1
    if not report.max_rel_error <= args.tolerance:
        print(f'error: relative error {report.max_rel_error:.2e} exceeds {args.tolerance:.0e}',
              file=sys.stderr)
        status = 1
    return status


if __name__ == '__main__':
    sys.exit(main())
