"""Which part of one Spatial-Mamba block costs what: a torch.profiler breakdown.

Usage:
    python tools/profile_block.py --arch tiny --stage 0 --batch-size 128 --shape 224 224   # GPU
    python tools/profile_block.py --arch tiny --stage 0 --batch-size 2 --shape 64 64 \
        --device cpu --backward --json block.json

One ``SpatialMambaBlock`` of stage ``--stage`` runs on the feature map that stage sees for an
input image of ``--shape`` (stride 4 * 2^stage). The block's own forward runs each step in a
named profiler range (``mmspatialmamba/models/layers/profiling.py``), and this tool reads
those ranges:

    cpe1, ln_1, in_proj, conv2d+silu (depthwise conv3x3 + SiLU), x_proj+dt (per-position
    projections and the dt lift), sasf_core (scan + fusion + observation, one op),
    out_norm, gate (times SiLU(z)), out_proj, residual1, cpe2, ln_2, mlp, residual2

Forward time per part is the range's total (CPU time on the CPU, device time of the kernels
it launched on CUDA); ``other`` is the block's time outside every range (Python between the
steps). With ``--backward``, each backward autograd node is charged to the part whose forward
op created it (matched by the profiler's sequence numbers), so every part gets a backward
time too.
"""
import argparse
import json
from collections import defaultdict
from typing import Dict, List, Optional, Tuple

import torch
from torch.autograd import DeviceType
from torch.profiler import ProfilerActivity, profile, record_function

from mmspatialmamba.analysis.timing import synchronize, warm_up
from mmspatialmamba.apis.cli import add_debug_argument, exit_on_user_error, resolve_device_args
from mmspatialmamba.models.layers import SpatialMambaBlock
from mmspatialmamba.models.layers.profiling import BLOCK_PARTS as PARTS
from mmspatialmamba.models.layers.profiling import RANGE_PREFIX
from mmspatialmamba.models.trunk import resolve_arch

BLOCK_RANGE = RANGE_PREFIX + 'block'  # this tool's range around each call of the block
OTHER = 'other'  # the block's forward time outside every part's range


def attribute(events, device: str) -> Tuple[Dict[str, float], Dict[str, float], Dict[str, int]]:
    """Forward and backward time (us) per part, and how often each part's range ran.

    A range is read from its CPU-side event, whose device time is that of the kernels
    launched inside it; with CUDA activity the profiler also lists each range as a GPU
    annotation of the same name, which is skipped.

    Args:
        events: ``prof.events()`` of runs of the block inside ``record_function(BLOCK_RANGE)``.
        device: 'cpu' (CPU time) or 'cuda' (device time of the launched kernels).

    Returns:
        ``(fwd, bwd, calls)``: ``fwd`` has every part and :data:`OTHER` (the block's range
        minus its parts), ``bwd`` the parts the backward nodes were charged to (and
        'unattributed'), ``calls`` the number of ranges per part.
    """
    def cost(ev) -> float:
        return ev.device_time_total if device == 'cuda' else ev.cpu_time_total

    names = {RANGE_PREFIX + part: part for part in PARTS}
    fwd: Dict[str, float] = defaultdict(float)
    calls: Dict[str, int] = defaultdict(int)
    block_total = 0.0
    for ev in events:
        if ev.device_type != DeviceType.CPU:
            continue
        if ev.name == BLOCK_RANGE:
            block_total += cost(ev)
        elif ev.name in names:
            fwd[names[ev.name]] += cost(ev)
            calls[names[ev.name]] += 1
    fwd[OTHER] = block_total - sum(fwd[part] for part in PARTS)

    seq_to_part: Dict[int, str] = {}
    for ev in events:
        if ev.sequence_nr < 0 or ev.name.startswith('autograd::'):
            continue
        parent = ev.cpu_parent
        while parent is not None and parent.name not in names:
            parent = parent.cpu_parent
        if parent is not None:
            seq_to_part.setdefault(ev.sequence_nr, names[parent.name])
    bwd: Dict[str, float] = defaultdict(float)
    for ev in events:
        if ev.name.startswith('autograd::engine::evaluate_function') and ev.sequence_nr >= 0:
            bwd[seq_to_part.get(ev.sequence_nr, 'unattributed')] += cost(ev)
    return dict(fwd), dict(bwd), dict(calls)


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--arch', default='tiny', help='tiny|small|base')
    parser.add_argument('--stage', type=int, default=0, help='stage of the block (0-3)')
    parser.add_argument('--batch-size', type=int, default=2)
    parser.add_argument('--shape', type=int, nargs=2, default=[224, 224], metavar=('H', 'W'),
                        help='input image size; the block sees H/(4*2^stage) x W/(4*2^stage)')
    parser.add_argument('--device', default='auto', choices=['auto', 'cpu', 'cuda'])
    parser.add_argument('--backend', default=None, choices=['torch', 'triton'],
                        help='ops backend; default triton on CUDA, torch on CPU')
    parser.add_argument('--amp', action='store_true', help='bfloat16 autocast')
    parser.add_argument('--backward', action='store_true', help='also profile the backward')
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--iters', type=int, default=5)
    parser.add_argument('--threads', type=int, default=None,
                        help='torch.set_num_threads for CPU runs (1 is steadier on a busy '
                             'machine); default: torch\'s choice')
    parser.add_argument('--json', metavar='PATH')
    parser.add_argument('--trace', metavar='PATH', help='also export a Chrome trace')
    add_debug_argument(parser)
    args = parser.parse_args(argv)
    resolve_device_args(parser, args)
    if args.backend is None:
        args.backend = 'triton' if args.device == 'cuda' else 'torch'
    if args.device == 'cpu' and args.backend == 'triton':
        parser.error('--backend triton needs CUDA; on the CPU use --backend torch')
    if not 0 <= args.stage <= 3 or min(args.shape) < 1 or args.batch_size < 1:
        parser.error(f'--stage must be 0..3 and --shape/--batch-size positive, got stage '
                     f'{args.stage}, shape {args.shape}, batch {args.batch_size}')
    return args


def main(argv: Optional[List[str]] = None) -> Dict[str, object]:
    """Profile, print the table, optionally write JSON and a trace; returns the numbers.

    Bad input ends the tool with one line (exit status 1), unless ``--debug``.
    """
    args = parse_args(argv)
    with exit_on_user_error(args.debug):
        return profile_block(args)


def profile_block(args: argparse.Namespace) -> Dict[str, object]:
    """Build the block of ``args``, profile it and report.

    Raises:
        RuntimeError: If a part's range did not run once per call of the block (the
            block's forward and :data:`PARTS` disagree).
    """
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    dims, _, _ = resolve_arch(args.arch)
    dim = dims[args.stage]
    stride = 4 * 2 ** args.stage
    height, width = (-(-s // stride) for s in args.shape)
    block = SpatialMambaBlock(dim, backend=args.backend).to(args.device).eval()
    x = torch.randn(args.batch_size, height, width, dim, device=args.device,
                    requires_grad=args.backward)

    def step() -> None:
        with torch.autocast(args.device, dtype=torch.bfloat16, enabled=args.amp):
            with torch.set_grad_enabled(args.backward), record_function(BLOCK_RANGE):
                out = block(x)
        if args.backward:
            out.float().sum().backward()

    warm_up(step, args.warmup, args.device)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA]
                                           if args.device == 'cuda' else [])
    with profile(activities=activities) as prof:
        for _ in range(args.iters):
            step()
        synchronize(args.device)
    if args.trace:
        prof.export_chrome_trace(args.trace)
    fwd, bwd, calls = attribute(prof.events(), args.device)
    wrong = {part: calls.get(part, 0) for part in PARTS if calls.get(part, 0) != args.iters}
    if wrong:
        raise RuntimeError(f'ranges per part over {args.iters} calls of the block: {wrong}; '
                           "the block's forward and BLOCK_PARTS in "
                           'mmspatialmamba/models/layers/profiling.py disagree')

    kind = 'CUDA kernel time' if args.device == 'cuda' else 'CPU time'
    print(f'one block of {args.arch} stage {args.stage}: x ({args.batch_size}, {height}, '
          f'{width}, {dim}), D={2 * dim}, {args.device}, backend {args.backend}, '
          f'{"bf16" if args.amp else "fp32"}; {kind} per iteration (mean of {args.iters})')
    total_f = sum(fwd.values())
    total_b = sum(bwd.values())
    print(f'{"part":<14}{"fwd ms":>10}{"fwd %":>8}' +
          (f'{"bwd ms":>10}{"bwd %":>8}' if args.backward else ''))
    parts = list(PARTS) + [OTHER] + (['unattributed'] if 'unattributed' in bwd else [])
    rows = []
    for part in parts:
        f_ms = fwd.get(part, 0.0) / args.iters / 1e3
        b_ms = bwd.get(part, 0.0) / args.iters / 1e3
        rows.append(dict(part=part, fwd_ms=f_ms, bwd_ms=b_ms if args.backward else None))
        line = f'{part:<14}{f_ms:>10.3f}{100 * fwd.get(part, 0.0) / max(total_f, 1e-9):>8.1f}'
        if args.backward:
            line += f'{b_ms:>10.3f}{100 * bwd.get(part, 0.0) / max(total_b, 1e-9):>8.1f}'
        print(line)
    print(f'{"total":<14}{total_f / args.iters / 1e3:>10.3f}{100.0:>8.1f}' +
          (f'{total_b / args.iters / 1e3:>10.3f}{100.0:>8.1f}' if args.backward else ''))
    result = dict(arch=args.arch, stage=args.stage, batch=args.batch_size,
                  map=[height, width], dim=dim, device=args.device, backend=args.backend,
                  amp=args.amp, time_kind=kind, iters=args.iters, parts=rows)
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(result, f, indent=2)
    return result


if __name__ == '__main__':
    main()
