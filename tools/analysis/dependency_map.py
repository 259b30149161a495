"""Structure-aware dependency maps of one Spatial-Mamba mixer, overlaid on an image (CPU).

Usage:
    python tools/analysis/dependency_map.py CONFIG [CHECKPOINT] IMAGE --pixel Y X --stage S
        [--pixel Y X ...] [--block B] [--out dependency.png] [--json PATH]

The image goes through the config's test pipeline and the model (the backbone's weights from
CHECKPOINT, any Spatial-Mamba checkpoint, or else its initialisation, which the output and
the figure then say). In block B of stage S, the tensors of the SSM mixer's core are recorded;
with its step sizes and B, C held at those values the core is linear in its input, and for
the query position holding pixel (Y, X) the tool reads, with autograd, how strongly every
position of the mixer's input contributes to the output there, summed over channels in
magnitude: once for the raster scan alone and once with the structure-aware state fusion
(the model as it is). The maths: :mod:`mmspatialmamba.analysis.dependency`; pictures and
commands: docs/visualise.md.

Maps are drawn on a log scale over three decades below each map's maximum. Also printed: the
share of each map that lies after the query in raster order (zero for the scan alone, which
only looks back) and the time per query.
"""
import argparse
import os.path as osp
import time
from typing import Any, Dict, List, Optional

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402
import mmcv  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from mmspatialmamba.analysis.dependency import (block_mixer, capture_sasf_call,  # noqa: E402
                                                channel_magnitude, dependency_rows,
                                                map_to_image, query_position)
from mmspatialmamba.analysis.cli import (add_common_arguments, parse_common,  # noqa: E402
                                         run_tool, write_summary)
from mmspatialmamba.analysis.figures import save_figure  # noqa: E402
from mmspatialmamba.apis import check_image, inference, init_model  # noqa: E402

DECADES = 3  # dynamic range of the drawn maps, in powers of ten below the maximum


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='mmdet/mmseg config with a SpatialMamba backbone')
    parser.add_argument('checkpoint', nargs='?', metavar='CHECKPOINT',
                        help='Spatial-Mamba checkpoint (ImageNet, COCO/ADE20K or bare; '
                             'default: the initialisation)')
    parser.add_argument('image', metavar='IMAGE', help='image file')
    parser.add_argument('--pixel', type=int, nargs=2, action='append', required=True,
                        metavar=('Y', 'X'), help='query pixel (row, column) in IMAGE; repeat '
                                                 'for several queries')
    parser.add_argument('--stage', type=int, required=True, help='stage index, from 0')
    parser.add_argument('--block', type=int, default=-1,
                        help='block in the stage (default -1: its last block)')
    parser.add_argument('--out', default='dependency.png', help='figure (default dependency.png)')
    add_common_arguments(parser, seed_help='seed of the initialisation when no checkpoint is given')
    return parse_common(parser, argv)


def log_scaled(values: np.ndarray) -> np.ndarray:
    """``values / max`` on a log scale: 1 at the maximum, 0 at DECADES decades below or less."""
    peak = values.max()
    if not peak > 0:
        return np.zeros_like(values)
    return np.clip(np.log10(np.maximum(values / peak, 1e-30)) / DECADES + 1, 0, 1)


def draw(rgb: np.ndarray, queries: List[Dict[str, Any]], caption: str, out: str) -> None:
    """One row per query: the image with the query marked, then the scan-only and fused maps."""
    fig, axes = plt.subplots(len(queries), 3, figsize=(9, 3.3 * len(queries) + 0.6),
                             squeeze=False)
    for row, query in zip(axes, queries):
        y, x = query['pixel']
        row[0].imshow(rgb)
        row[0].set_title(f'query pixel (y, x) = ({y}, {x})', fontsize=9)
        for ax, key, label in ((row[1], 'scan_only', 'raster scan only'),
                               (row[2], 'fused', 'with state fusion')):
            ax.imshow(rgb)
            shown = log_scaled(query[key])
            ax.imshow(shown, cmap='inferno', alpha=0.15 + 0.75 * shown)
            ax.set_title(f'{label}\n{100 * query[key + "_after"]:.1f}% after the query '
                         'in raster order', fontsize=9)
        for ax in row:
            ax.plot(x, y, marker='+', color='cyan', markersize=12, markeredgewidth=2)
            ax.axis('off')
    fig.text(0.01, 0.005, caption, fontsize=7, va='bottom', wrap=True)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    save_figure(fig, out, dpi=80)


def main(argv: Optional[List[str]] = None) -> Dict[str, Any]:
    """Run the tool; bad input ends it with one line (exit status 1), unless ``--debug``."""
    return run_tool(run, parse_args(argv))


def run(args: argparse.Namespace) -> Dict[str, Any]:
    """Record, compute the maps, print, draw, optionally write JSON; returns the numbers."""
    check_image(args.image)
    torch.manual_seed(args.seed)  # the constructors draw part of the initialisation
    model = init_model(args.config)
    mixer = block_mixer(model.backbone, args.stage, args.block)
    model.backbone.init_weights()  # only the backbone matters here
    if args.checkpoint:
        model.backbone.load_pretrained(args.checkpoint)
    model.eval()
    weights = f'checkpoint {args.checkpoint}' if args.checkpoint else \
        'initialisation (no checkpoint)'
    block = args.block % len(model.backbone.layers[args.stage].blocks)

    start, cpu_start = time.perf_counter(), time.process_time()
    with capture_sasf_call(mixer) as calls:
        result = inference(model, args.image)
    forward_seconds = time.perf_counter() - start
    forward_cpu_seconds = time.process_time() - cpu_start
    call = calls[0]
    image_shape = tuple(result.metainfo['ori_shape'][:2])
    resized_shape = tuple(result.metainfo['img_shape'][:2])
    stride = 4 * 2 ** args.stage
    height, width = (int(s) for s in call.hw)

    queries = []
    for pixel in args.pixel:
        row, col = query_position(tuple(pixel), image_shape, resized_shape, stride, call.hw)
        start = time.perf_counter()
        scan_only, fused = dependency_rows(call, row * width + col)
        seconds = time.perf_counter() - start
        query: Dict[str, Any] = dict(pixel=list(pixel), cell=[row, col], seconds=seconds)
        for key, per_channel in (('scan_only', scan_only), ('fused', fused)):
            grid = channel_magnitude(per_channel)
            after = grid.flatten()[row * width + col + 1:].sum() / grid.sum()
            query[key + '_after'] = float(after)
            query[key] = map_to_image(grid, stride, resized_shape, image_shape).numpy()
        queries.append(query)

    name = osp.basename(args.config)
    print(f'{name}: stage {args.stage}, block {block}, map {height}x{width} '
          f'(image {image_shape[0]}x{image_shape[1]} resized to '
          f'{resized_shape[0]}x{resized_shape[1]}); weights: {weights}')
    print(f'test pipeline + forward through the model: {forward_seconds:.2f} s '
          f'({forward_cpu_seconds:.2f} s CPU, {torch.get_num_threads()} threads)')
    for q in queries:
        print(f'pixel {tuple(q["pixel"])} -> cell {tuple(q["cell"])}: after the query in raster '
              f'order {100 * q["scan_only_after"]:.1f}% (scan only), {100 * q["fused_after"]:.1f}% '
              f'(fused); {q["seconds"]:.2f} s')
    caption = (f'{name}, stage {args.stage}, block {block} ({height}x{width} positions); '
               f'weights: {weights}. Colour: contribution of each position of the mixer\'s '
               f'input to its output at the query, log scale over {DECADES} decades.')
    draw(mmcv.imread(args.image, channel_order='rgb'), queries, caption, args.out)
    print(f'figure: {args.out}')
    summary = dict(config=args.config, checkpoint=args.checkpoint, stage=args.stage,
                   block=block, hw=[height, width], forward_seconds=forward_seconds,
                   forward_cpu_seconds=forward_cpu_seconds,
                   queries=[{k: v for k, v in q.items() if k not in ('scan_only', 'fused')}
                            for q in queries])
    write_summary(args.json, summary)
    summary['maps'] = [dict(scan_only=q['scan_only'], fused=q['fused']) for q in queries]
    return summary


if __name__ == '__main__':
    main()
