"""Effective receptive field (ERF) of a backbone stage, as RepLKNet measures it, on the CPU.

Usage:
    python tools/analysis/erf.py tiny --images DIR --out erf.png              # initialised T
    python tools/analysis/erf.py tiny checkpoints/spatialmamba_t_in1k.pth --images DIR
    python tools/analysis/erf.py configs/maskrcnn_spatialmamba_t_coco.py CKPT --images DIR
    python tools/analysis/erf.py tiny --images DIR --compare                  # + Swin-T, ResNet-50

For each image (shorter side resized to --size, centre-cropped, ImageNet-normalised), the
gradient of the centre of the stage's output (ReLU, summed over channels) with respect to the
input; its magnitude is summed over colour channels, averaged over the images, log-scaled and
normalised, and drawn. Printed and drawn with it: the area ratios (the fraction of the input,
as a centred square, that holds 20/30/50/99% of the contribution) and the time per image.
The method and its two deliberate differences from RepLKNet's script:
:mod:`mmspatialmamba.analysis.receptive_field`; pictures and commands: docs/visualise.md.

MODEL is a config (its ``model.backbone``) or an arch ('tiny', 'small', 'base' or a JSON
dict); CHECKPOINT, if given, is any Spatial-Mamba checkpoint (ImageNet, COCO/ADE20K or bare).
``--compare`` adds mmdet's Swin-T and ResNet-50 (the backbones of mmdet's Mask R-CNN configs)
on the same images, from ``--swin-checkpoint`` / ``--resnet-checkpoint`` if given. Without a
checkpoint a backbone keeps its initialisation, and the output and the figure say so.
"""
import argparse
from typing import Any, Dict, List, Optional

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from mmspatialmamba.analysis.erf_models import (build_stage_model,  # noqa: E402
                                                comparison_spec, spatial_mamba_spec)
from mmspatialmamba.analysis.cli import (add_common_arguments, parse_common,  # noqa: E402
                                         run_tool, write_summary)
from mmspatialmamba.analysis.figures import save_figure  # noqa: E402
from mmspatialmamba.analysis.receptive_field import (area_ratios, erf_display,  # noqa: E402
                                                     find_images, mean_centre_gradient,
                                                     read_image)


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('model', metavar='MODEL',
                        help="config file, or arch 'tiny'|'small'|'base' or a JSON arch dict")
    parser.add_argument('checkpoint', nargs='?', metavar='CHECKPOINT',
                        help='Spatial-Mamba checkpoint (default: the initialisation)')
    parser.add_argument('--images', nargs='+', required=True, metavar='PATH',
                        help='image files and/or folders (their images, sorted by name)')
    parser.add_argument('--num', type=int, help='use the first N images (default: all)')
    parser.add_argument('--stage', type=int, default=3,
                        help="stage index 0-3, as in out_indices (default 3: the paper's stage 4)")
    parser.add_argument('--size', type=int, default=224, help='input side in pixels (default 224)')
    parser.add_argument('--compare', action='store_true',
                        help="also measure mmdet's Swin-T and ResNet-50 on the same images")
    parser.add_argument('--swin-checkpoint', metavar='PATH',
                        help='Swin-T checkpoint for --compare (official Swin or mmdet format)')
    parser.add_argument('--resnet-checkpoint', metavar='PATH',
                        help='ResNet-50 checkpoint for --compare (torchvision or mmdet format)')
    parser.add_argument('--out', default='erf.png', help='figure to write (default erf.png)')
    add_common_arguments(parser,
                         seed_help='seed of the initialisation of backbones without checkpoint')
    args = parse_common(parser, argv)
    if args.size < 32:
        parser.error(f'--size must be at least 32 (the backbones downsample 32x), got {args.size}')
    if (args.swin_checkpoint or args.resnet_checkpoint) and not args.compare:
        parser.error('--swin-checkpoint and --resnet-checkpoint need --compare')
    return args


def draw(results: List[Dict[str, Any]], stage: int, num_images: int, size: int,
         out: str) -> None:
    """One heat map per backbone, its area ratios in the title, weights in the caption."""
    fig, axes = plt.subplots(1, len(results), figsize=(3.0 * len(results), 3.7), squeeze=False)
    for ax, result in zip(axes[0], results):
        image = ax.imshow(result['erf'], cmap='RdYlGn', vmin=0, vmax=1)
        ratios = ' / '.join(f'{100 * r:.1f}' for r in result['area_ratios'].values())
        ax.set_title(f'{result["name"]}\narea % at 20/30/50/99%:\n{ratios}', fontsize=9)
        ax.axis('off')
    fig.colorbar(image, ax=axes[0].tolist(), fraction=0.025, pad=0.02)
    weights = '; '.join(f'{r["name"]}: {r["weights"]}' for r in results)
    fig.text(0.01, 0.01, f'ERF at stage index {stage} (the paper\'s stage {stage + 1}), '
             f'{num_images} images at {size}x{size}.\nWeights: {weights}',
             fontsize=7, va='bottom', wrap=True)
    save_figure(fig, out, dpi=90)


def main(argv: Optional[List[str]] = None) -> Dict[str, Any]:
    """Run the tool; bad input ends it with one line (exit status 1), unless ``--debug``."""
    return run_tool(run, parse_args(argv))


def run(args: argparse.Namespace) -> Dict[str, Any]:
    """Measure, print a table, draw the figure, optionally write JSON; returns the numbers."""
    paths = find_images(args.images, args.num)
    images = [read_image(path, args.size) for path in paths]
    specs = [(spatial_mamba_spec(args.model), args.checkpoint)]
    if args.compare:
        specs += [(comparison_spec('Swin-T'), args.swin_checkpoint),
                  (comparison_spec('ResNet-50'), args.resnet_checkpoint)]
    models = []
    for spec, checkpoint in specs:
        torch.manual_seed(args.seed)
        models.append(build_stage_model(spec, args.stage, checkpoint))

    print(f'ERF at stage index {args.stage} (the paper\'s stage {args.stage + 1}) over '
          f'{len(images)} images at {args.size}x{args.size}')
    results = []
    for model in models:
        print(f'{model.name} ({model.weights}):')
        measured = mean_centre_gradient(model, images)
        erf = erf_display(measured.gradient)
        results.append(dict(name=model.name, weights=model.weights, erf=erf,
                            area_ratios=area_ratios(erf), seconds_per_image=measured.seconds,
                            cpu_seconds_per_image=measured.cpu_seconds,
                            peak_mean_gradient=float(measured.gradient.max())))

    print(f'{"backbone":<18}{"s/image":>9}{"CPU s":>7}{"20%":>8}{"30%":>8}{"50%":>8}{"99%":>8}'
          '  weights')
    for r in results:
        ratios = ''.join(f'{100 * v:>7.2f}%' for v in r['area_ratios'].values())
        print(f'{r["name"]:<18}{r["seconds_per_image"]:>9.3f}{r["cpu_seconds_per_image"]:>7.3f}'
              f'{ratios}  {r["weights"]}')
    print('s/image: wall-clock seconds per image (forward + backward); CPU s: CPU seconds per '
          f'image, {torch.get_num_threads()} thread(s) together; area ratio: the fraction of the '
          'input (a centred square) holding that share of the log-scaled ERF')
    draw(results, args.stage, len(images), args.size, args.out)
    print(f'figure: {args.out}')
    summary = dict(stage=args.stage, size=args.size, images=paths, threads=torch.get_num_threads(),
                   backbones=[{k: v for k, v in r.items() if k != 'erf'} for r in results])
    write_summary(args.json, summary)
    summary['erf'] = {r['name']: r['erf'] for r in results}
    return summary


if __name__ == '__main__':
    main()
