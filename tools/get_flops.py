"""Parameters and FLOPs of a Spatial-Mamba model, on the CPU, as the paper counts them.

Usage:
    python tools/get_flops.py configs/maskrcnn_spatialmamba_t_coco.py            # H=1280, W=800
    python tools/get_flops.py configs/upernet_spatialmamba_t_ade20k.py           # H=512, W=2048
    python tools/get_flops.py --classifier tiny                                  # 224x224
    python tools/get_flops.py CONFIG --shape H W --json out.json

FLOPs are multiply-adds counted by mmengine's FlopAnalyzer (the fvcore port, as the release
used), except the SASF core, which is counted with the release's formula (scan 7*B*L*D*N, fusion
3 depthwise 3x3 convs = 27*B*D*L; see :mod:`mmspatialmamba.analysis.flops`). Batch size 1.

What is counted per task (the release's conventions):
    classification: the whole classifier (stem, stages, norm, pool, head).
    detection (mmdet): ``model(inputs, data_samples, mode='tensor')``: backbone, FPN, RPN head,
        the RPN's proposals (up to ``test_cfg.rpn.max_per_img`` = 1000 after NMS) through the
        bbox head and the first 100 of them through the mask head; NMS and RoIAlign are not
        counted (no FLOP handle, as in fvcore). The default shape (H, W) = (1280, 800) is the
        release's ``input_shape=(3, 1280, 800)``.
    segmentation (mmseg): ``mode='tensor'``: backbone and decode head (the auxiliary head is
        training-only and not run); default shape (H, W) = (512, 2048).
"""
import argparse
import json
from typing import Any, Dict, List, Optional, Tuple

from torch import nn

from mmspatialmamba.apis.cli import add_debug_argument, exit_on_user_error

# Published numbers (docs/model.md): (task, arch) -> (params in M, GFLOPs) at the default shape.
PUBLISHED: Dict[Tuple[str, str], Tuple[float, float]] = {
    ('classification', 'tiny'): (27, 4.5), ('classification', 'small'): (43, 7.1),
    ('classification', 'base'): (96, 15.8),
    ('detection', 'tiny'): (46, 261), ('detection', 'small'): (63, 315),
    ('detection', 'base'): (115, 494),
    ('segmentation', 'tiny'): (57, 936), ('segmentation', 'small'): (73, 992),
    ('segmentation', 'base'): (127, 1176),
}
DEFAULT_SHAPES = {'classification': (224, 224), 'detection': (1280, 800),
                  'segmentation': (512, 2048)}


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', nargs='?', help='mmdet/mmseg config file')
    parser.add_argument('--classifier', metavar='ARCH',
                        help="count the ImageNet classifier of arch 'tiny'|'small'|'base' "
                             '(or a JSON arch dict) instead of a config')
    parser.add_argument('--shape', type=int, nargs=2, metavar=('H', 'W'),
                        help='input height and width (default: 224 224 classification, '
                             '1280 800 detection, 512 2048 segmentation)')
    parser.add_argument('--json', metavar='PATH', help='also write the numbers as JSON')
    add_debug_argument(parser)
    args = parser.parse_args(argv)
    if (args.config is None) == (args.classifier is None):
        parser.error('pass either a CONFIG or --classifier ARCH (not both)')
    if args.shape is not None and min(args.shape) < 32:
        parser.error(f'--shape must be at least 32 32 (the network downsamples 32x), '
                     f'got {args.shape[0]} {args.shape[1]}')
    return args


def main(argv: Optional[List[str]] = None) -> Dict[str, Any]:
    """Count, print a table, optionally write JSON; returns the numbers.

    Bad input ends the tool with one line (exit status 1), unless ``--debug``.
    """
    args = parse_args(argv)
    with exit_on_user_error(args.debug):
        return count(args)


def count(args: argparse.Namespace) -> Dict[str, Any]:
    """Build the model of ``args``, count it and report."""
    import mmspatialmamba  # noqa: F401  (registers the models)
    from mmspatialmamba.analysis import count_complexity
    from mmspatialmamba.analysis.builders import (TensorMode, arch_name, build_from_config,
                                                  parse_arch, synthetic_batch)
    from mmspatialmamba.models import SpatialMambaClassifier

    if args.classifier is not None:
        arch_arg = parse_arch(args.classifier)
        model: nn.Module = SpatialMambaClassifier(arch=arch_arg)
        task, arch, backbone_name = 'classification', arch_name(arch_arg), None
    else:
        model, task, arch = build_from_config(args.config)
        backbone_name = 'model.backbone'
    model.eval()
    height, width = args.shape or DEFAULT_SHAPES[task]
    images, samples = synthetic_batch(task, 1, height, width)
    if task != 'classification':
        model = TensorMode(model, samples if task == 'detection' else None)
    report = count_complexity(model, (images,),
                              modules=(backbone_name,) if backbone_name else ())

    result: Dict[str, Any] = dict(
        task=task, arch=arch, config=args.config, shape=[height, width],
        params=report.params, flops=report.flops, sasf_flops=report.sasf_flops,
        backbone_params=report.module_params.get(backbone_name, report.params),
        backbone_flops=report.module_flops.get(backbone_name, report.flops),
        rois=report.rois, seconds=round(report.seconds, 1),
        uncounted_ops=sorted(report.unsupported))
    published = PUBLISHED.get((task, arch)) if (height, width) == DEFAULT_SHAPES[task] else None
    if published is not None:
        result['published'] = dict(params_m=published[0], gflops=published[1])

    title = args.config or f'SpatialMambaClassifier({args.classifier})'
    print(f'{title}: {task}, input 1x3x{height}x{width}, trace {report.seconds:.1f} s')
    print(f'{"":<28}{"params (M)":>12}{"GFLOPs":>12}{"published":>18}')
    pub = f'{published[0]}M / {published[1]}G' if published else '-'
    print(f'{"whole model":<28}{report.params / 1e6:>12.2f}{report.flops / 1e9:>12.2f}{pub:>18}')
    if backbone_name:
        print(f'{"backbone":<28}{result["backbone_params"] / 1e6:>12.2f}'
              f'{result["backbone_flops"] / 1e9:>12.2f}')
    print(f'{"  of which SASF formula":<28}{"":>12}{report.sasf_flops / 1e9:>12.2f}')
    if published:
        print(f'ratio to published: params {report.params / 1e6 / published[0]:.3f}, '
              f'FLOPs {report.flops / 1e9 / published[1]:.3f}')
    if report.rois:
        print(f'RoIs through the heads: {report.rois}')
    print(f'ops without a FLOP handle (counted 0): {", ".join(result["uncounted_ops"])}')
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(result, f, indent=2)
    return result


if __name__ == '__main__':
    main()
