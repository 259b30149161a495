"""Which part of one Spatial-Mamba block costs what: a torch.profiler breakdown.

Usage:
    python tools/profile_block.py --arch tiny --stage 0 --batch-size 128 --shape 224 224   # GPU
    python tools/profile_block.py --arch tiny --stage 0 --batch-size 2 --shape 64 64 \
        --device cpu --backward --json block.json

One block of stage ``--stage`` runs on the feature map that stage sees for an input image of
``--shape`` (stride 4 * 2^stage). Its forward is re-expressed step by step with the block's
own modules and parameters, each step inside a ``torch.profiler.record_function`` range:

    cpe1, ln_1, in_proj, conv2d+silu (depthwise conv3x3 + SiLU), x_proj+dt (per-position
    projections and the dt lift), sasf_core (scan + fusion + observation, one op),
    out_norm, gate (times SiLU(z)), out_proj, residual1, cpe2, ln_2, mlp, residual2

The staged forward is checked against ``block(x)`` before profiling (and the tool stops if
they differ, which would mean the block changed). Forward time per part is the range's total
(CPU time on the CPU, device time of the kernels it launched on CUDA). With ``--backward``,
each backward autograd node is charged to the part whose forward op created it (matched by
the profiler's sequence numbers), so every part gets a backward time too.
"""
import argparse
import json
from collections import defaultdict
from contextlib import contextmanager
from typing import Dict, Iterator, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.profiler import ProfilerActivity, profile, record_function

from mmspatialmamba.analysis.timing import synchronize, warm_up

PARTS = ('cpe1', 'ln_1', 'in_proj', 'conv2d+silu', 'x_proj+dt', 'sasf_core', 'out_norm',
         'gate', 'out_proj', 'residual1', 'cpe2', 'ln_2', 'mlp', 'residual2')


def staged_forward(block: torch.nn.Module, x: Tensor, label=record_function) -> Tensor:
    """``SpatialMambaBlock.forward`` split into labelled parts (eval mode: no drop path).

    Args:
        block: A ``SpatialMambaBlock``. x: (batch, H, W, C).
        label: Context-manager factory taking a part name.

    Returns:
        (batch, H, W, C), equal to ``block(x)`` in eval mode.
    """
    from mmspatialmamba.ops import structure_aware_ssm
    mixer = block.self_attention
    batch, height, width, _ = x.shape
    length, d_inner = height * width, mixer.d_inner
    with label('cpe1'):
        x = x + block._pos_enc(block.cpe1, x)
    with label('ln_1'):
        h = block.ln_1(x)
    with label('in_proj'):
        u, z = mixer.in_proj(h).chunk(2, dim=-1)
    with label('conv2d+silu'):
        u = F.silu(mixer.conv2d(u.permute(0, 3, 1, 2))).reshape(batch, d_inner, length)
    with label('x_proj+dt'):
        x_dbl = torch.matmul(mixer.x_proj_weight, u)
        dt_low, B, C = torch.split(x_dbl, [mixer.dt_rank, mixer.d_state, mixer.d_state], dim=1)
        delta = torch.matmul(mixer.dt_projs_weight, dt_low)
    with label('sasf_core'):
        sf = mixer.state_fusion
        y = structure_aware_ssm(u, delta, -torch.exp(mixer.A_logs.float()), B, C, mixer.Ds,
                                mixer.dt_projs_bias, sf.kernel_3, sf.kernel_3_1, sf.kernel_3_2,
                                sf.alpha, (height, width), delta_softplus=True,
                                backend=mixer.backend)
    with label('out_norm'):
        y = mixer.out_norm(y.transpose(1, 2).reshape(batch, height, width, d_inner))
    with label('gate'):
        y = y * F.silu(z)
    with label('out_proj'):
        y = mixer.out_proj(y)
    with label('residual1'):
        x = x + block.drop_path(y)
    with label('cpe2'):
        x = x + block._pos_enc(block.cpe2, x)
    with label('ln_2'):
        h = block.ln_2(x)
    with label('mlp'):
        h = block.mlp(h)
    with label('residual2'):
        return x + block.drop_path(h)


@contextmanager
def _no_label(name: str) -> Iterator[None]:
    yield


def check_staged_forward(block: torch.nn.Module, x: Tensor) -> float:
    """Max abs difference between :func:`staged_forward` and ``block(x)`` (eval mode).

    Raises:
        RuntimeError: If they differ beyond float rounding (the block's forward changed and
            this tool must follow it).
    """
    with torch.no_grad():
        ref = block(x)
        out = staged_forward(block, x, label=_no_label)
    diff = (out.float() - ref.float()).abs().max().item()
    scale = ref.float().abs().max().item() + 1e-6
    if not diff <= 1e-4 * scale:
        raise RuntimeError(f'staged_forward differs from SpatialMambaBlock.forward by {diff:.3g} '
                           '(max abs); update tools/profile_block.py to the block\'s forward')
    return diff


def _attribute(events, device: str) -> Tuple[Dict[str, float], Dict[str, float]]:
    """Sum forward and backward time (us) per part from profiler events."""
    use_device = device == 'cuda'

    def cost(ev) -> float:
        return ev.device_time_total if use_device else ev.cpu_time_total

    fwd: Dict[str, float] = defaultdict(float)
    seq_to_part: Dict[int, str] = {}
    ranges = [ev for ev in events if ev.name in PARTS]
    for ev in ranges:
        fwd[ev.name] += cost(ev)
    for ev in events:
        if ev.sequence_nr < 0 or ev.name.startswith('autograd::'):
            continue
        parent = ev.cpu_parent
        while parent is not None and parent.name not in PARTS:
            parent = parent.cpu_parent
        if parent is not None:
            seq_to_part.setdefault(ev.sequence_nr, parent.name)
    bwd: Dict[str, float] = defaultdict(float)
    for ev in events:
        if ev.name.startswith('autograd::engine::evaluate_function') and ev.sequence_nr >= 0:
            part = seq_to_part.get(ev.sequence_nr, 'unattributed')
            bwd[part] += cost(ev)
    return dict(fwd), dict(bwd)


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
    args = parser.parse_args(argv)
    from mmspatialmamba.apis.cli import resolve_device_args
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
    args = parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    from mmspatialmamba.apis import exit_on_user_error
    from mmspatialmamba.models.trunk import resolve_arch
    from mmspatialmamba.models.layers import SpatialMambaBlock
    with exit_on_user_error():
        dims, _, _ = resolve_arch(args.arch)
    dim = dims[args.stage]
    stride = 4 * 2 ** args.stage
    height, width = (-(-s // stride) for s in args.shape)
    block = SpatialMambaBlock(dim, backend=args.backend).to(args.device).eval()
    x = torch.randn(args.batch_size, height, width, dim, device=args.device,
                    requires_grad=args.backward)
    diff = check_staged_forward(block, x)

    def step() -> None:
        with torch.autocast(args.device, dtype=torch.bfloat16, enabled=args.amp):
            with torch.set_grad_enabled(args.backward):
                out = staged_forward(block, x)
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
    fwd, bwd = _attribute(prof.events(), args.device)

    kind = 'CUDA kernel time' if args.device == 'cuda' else 'CPU time'
    print(f'one block of {args.arch} stage {args.stage}: x ({args.batch_size}, {height}, '
          f'{width}, {dim}), D={2 * dim}, {args.device}, backend {args.backend}, '
          f'{"bf16" if args.amp else "fp32"}; {kind} per iteration (mean of {args.iters}); '
          f'staged forward == block(x) (max abs diff {diff:.2g})')
    total_f = sum(fwd.values())
    total_b = sum(bwd.values())
    print(f'{"part":<14}{"fwd ms":>10}{"fwd %":>8}' +
          (f'{"bwd ms":>10}{"bwd %":>8}' if args.backward else ''))
    parts = list(PARTS) + (['unattributed'] if 'unattributed' in bwd else [])
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
