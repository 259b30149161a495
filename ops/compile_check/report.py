"""Run the cases, compile every recorded launch for each architecture, print the report.

One row per launch and architecture: grid, programs, warps, registers and spill bytes per
thread, shared memory per block, resident blocks per SM (and what limits them), waves
(programs over what the reference board holds at once), and the time model
(:mod:`.timing`): megabytes moved, their time at the board's bandwidth, the steps of one
program's dependent chain, that chain times the waves, and the launch's modelled time. Per
pass (op x shape x dtype x forward/backward) a summary line: the modelled total, the byte
floor, their ratio (the forward's goal: at most ``timing.FORWARD_GOAL``) and the release's
measured time where there is one.

A launch fails when it does not compile or breaks a launch limit of the architecture
(:func:`.targets.launch_problems`). The performance goals are flagged in the status column:
``spills`` (spill bytes > 0) and ``1 blk/SM`` (fewer than 2 resident programs per SM) fail
too when ``strict``; ``few progs`` (fewer programs than 2 per SM of the board) is only
flagged, since a launch may have no more work to split, and so is a forward modelled above
its goal, since the model's latencies are assumptions.
"""
import dataclasses
import time
import traceback
from typing import Iterable, List, Optional, Sequence, TextIO

import torch
import triton

from .._validate import old_triton_message
from .cases import DTYPES, OPS, SHAPES, Case
from .compiler import compile_launch, compiling_for
from .launch import Launch
from .targets import ARCHS, launch_problems, resident_blocks
from .timing import (FLOOR_PASSES, FORWARD_GOAL, NO_RULE, floor_bytes, launch_cost,
                     launch_time, release_ms)
from .variants import record_case


@dataclasses.dataclass
class Selection:
    """Which architectures, ops, shapes (keys of ``cases.SHAPES``) and dtypes to check."""
    archs: Sequence[int]
    ops: Sequence[str]
    shapes: Sequence[str]
    dtypes: Sequence[str]


FULL = Selection(archs=sorted(ARCHS), ops=list(OPS), shapes=list(SHAPES), dtypes=list(DTYPES))
# CI (about 1 minute on 2 cores): every op forward and backward at the classification shape on
# sm_90; the model's op in bf16 at detection stage 1 (other block sizes) on sm_80; the scan
# alone chunked (detection stage 1 at batch 1: its summary and main launches) on sm_90.
QUICK = (Selection(archs=[90], ops=list(OPS), shapes=['cls'], dtypes=['fp32']),
         Selection(archs=[80], ops=['sasf'], shapes=['det1'], dtypes=['bf16']),
         Selection(archs=[90], ops=['scan'], shapes=['det1b1'], dtypes=['fp32']))


@dataclasses.dataclass
class Pass:
    """The launches of one pass (forward or backward) of one case: op x shape x dtype."""
    op: str
    shape: str          # key of ``cases.SHAPES``
    dtype: str          # key of ``cases.DTYPES``
    name: str           # 'forward' or 'backward'
    launches: List[Launch]

    @property
    def case(self) -> Case:
        return Case(self.op, SHAPES[self.shape], self.dtype)

    @property
    def label(self) -> str:
        return f'{self.case} {self.name}'


def record(sel: Selection, capability: int) -> List[Pass]:
    """Run the selected cases forward and backward on fake CUDA tensors of compute
    capability ``sm_<capability>``; every pass with the Triton launches it made (none: the
    op fell back to PyTorch, which the report must not pass unchecked)."""
    passes = []
    for shape_key in sel.shapes:
        for op in sel.ops:
            for dtype in sel.dtypes:
                forward, backward = (Pass(op, shape_key, dtype, name, [])
                                     for name in ('forward', 'backward'))
                forward.launches, backward.launches = record_case(
                    op, SHAPES[shape_key], dtype, capability, str(forward.case))
                passes += [forward, backward]
    return passes


def _error_text(e: BaseException) -> str:
    """The exception and its causes on one line each (Triton nests the real error)."""
    lines = []
    while e is not None:
        lines.append(''.join(traceback.format_exception_only(type(e), e)).strip())
        e = e.__cause__ or e.__context__
    return '\n    caused by: '.join(lines)


def _constexprs(launch: Launch) -> str:
    return ','.join(f'{k}={v}' for k, v in launch.kwargs.items() if k.isupper())


HEADER = (f'{"arch":<6} {"kernel":<32} {"grid":<16} {"programs":>8} {"warps":>5} {"regs":>4} '
          f'{"spill":>5} {"smem":>6} {"blk/SM":>11} {"waves":>6} {"MB":>6} {"bytes_us":>8} '
          f'{"steps":>5} {"depth_us":>8} {"model_us":>8}  {"status":<18} constexprs')


def check(selections: Sequence[Selection], out: TextIO, strict: bool = False) -> int:
    """Print the report for ``selections`` to ``out``; return the number of failing launches
    (with ``strict``, launches below the spill and occupancy goals fail as well). With a
    Triton older than the kernels need, the ops never launch them: that is one failure."""
    start = time.time()
    too_old = old_triton_message()
    if too_old:
        print(f'FAILED: {too_old}', file=out)
        return 1
    failures, flagged, known = 0, {}, {cap: {} for cap in ARCHS}
    for sel in selections:
        failures += _check(sel, out, known, flagged, strict)
    print('\nbelow the goals: ' + ('; '.join(f'{name} on {arch}: {", ".join(sorted(goals))}'
                                             for (arch, name), goals in sorted(flagged.items()))
                                   or 'none'), file=out)
    print(f'{failures} failed{" (strict)" if strict else ""}; triton {triton.__version__}, '
          f'torch {torch.__version__}; total {time.time() - start:.1f} s', file=out)
    return failures


def _goals_missed(arch, programs: int, blocks: int, spill_bytes: int) -> List[str]:
    missed = []
    if spill_bytes:
        missed.append('spills')
    if blocks < 2:
        missed.append('1 blk/SM')
    if programs < 2 * arch.sms:
        missed.append('few progs')
    return missed


@dataclasses.dataclass
class PassTime:
    """Modelled seconds of a pass, summed over its launches (:mod:`.timing`)."""
    model: float = 0.0
    bytes: float = 0.0
    depth: float = 0.0
    complete: bool = True       # False when a launch did not compile


def _check(sel: Selection, out: TextIO, known: dict, flagged: dict, strict: bool) -> int:
    print(f'{sel}', file=out)
    failures = 0
    for cap in sel.archs:
        arch = ARCHS[cap]
        passes = record(sel, cap)
        kernels = sorted({la.name for p in passes for la in p.launches})
        print(f'\n== {arch.name} (model: {arch.board}, {arch.sms} SMs, '
              f'{arch.hbm_bytes_per_s / 1e12:.2f} TB/s, {arch.l2_bytes // 2**20} MiB L2): '
              f'{sum(len(p.launches) for p in passes)} launches of {len(kernels)} kernels: '
              f'{", ".join(kernels)} ==', file=out)
        with compiling_for(cap):
            failures += _report_passes(passes, arch, known[cap], flagged, strict, out)
    return failures


def _report_passes(passes: List[Pass], arch, known: dict, flagged: dict, strict: bool,
                   out: TextIO) -> int:
    """Compile and print every launch of ``passes`` for ``arch`` (inside
    :func:`.compiler.compiling_for`); returns the number of failing launches."""
    failures, forward_s = 0, {}
    for p in passes:
        if not p.launches:
            failures += 1
            print(f'FAILED: {p.label} launched no Triton kernel (did the op leave the '
                  'Triton path?)', file=out)
            continue
        print(f'-- {p.label}\n{HEADER}', file=out)
        total = PassTime()
        for la in p.launches:
            failures += _launch_row(la, arch, known, flagged, strict, total, out)
        if not total.complete:
            print('   model: none (a launch did not compile)', file=out)
            continue
        if p.name == 'forward':
            forward_s[(p.op, p.shape, p.dtype)] = total.model
        _pass_summary(p, arch, total, forward_s.get((p.op, p.shape, p.dtype)), flagged, out)
    return failures


def _launch_row(la: Launch, arch, known: dict, flagged: dict, strict: bool, total: PassTime,
                out: TextIO) -> int:
    """Compile ``la``, print its row, add its modelled time to ``total``; returns 1 if it
    fails (does not compile, breaks a launch limit, or, ``strict``, misses a goal)."""
    prefix = f'{arch.name:<6} {la.name:<32} {str(la.grid):<16} {la.programs:>8}'
    try:
        c = compile_launch(la, known)
    except Exception as e:  # noqa: BLE001  (every compile error is a finding)
        print(f'{prefix}  FAILED to compile ({_constexprs(la)}): {_error_text(e)}', file=out)
        total.complete = False
        return 1
    blocks, limiter = resident_blocks(arch, c.regs, c.smem, c.warps)
    waves = la.programs / max(blocks * arch.sms, 1)
    cost = launch_cost(la, arch)
    bytes_s, depth_s = launch_time(cost, arch, la.programs, blocks)
    total.model += max(bytes_s, depth_s)
    total.bytes += bytes_s
    total.depth += depth_s
    problems = launch_problems(arch, la.grid, c.warps, c.regs, c.smem)
    missed = _goals_missed(arch, la.programs, blocks, c.spill_bytes)
    if missed:
        flagged.setdefault((arch.name, la.name), set()).update(missed)
    status = 'FAILED' if problems else ','.join(missed) or 'ok'
    if cost.rule == NO_RULE:
        status += f' ({NO_RULE})'
    print(f'{prefix} {c.warps:>5} {c.regs:>4} {c.spill_bytes:>5} {c.smem:>6} '
          f'{blocks:>3} ({limiter:<7}) {waves:>6.1f} {cost.bytes / 1e6:>6.0f} '
          f'{bytes_s * 1e6:>8.1f} {cost.steps:>5} {depth_s * 1e6:>8.1f} '
          f'{max(bytes_s, depth_s) * 1e6:>8.1f}  {status:<18} {_constexprs(la)}', file=out)
    for problem in problems:
        print(f'    {problem}', file=out)
    return int(bool(problems) or (strict and bool(set(missed) - {'few progs'})))


def _pass_summary(p: Pass, arch, total: PassTime, forward_s: Optional[float], flagged: dict,
                  out: TextIO) -> None:
    """The pass's modelled time against its byte floor (ops with a floor in
    ``timing.FLOOR_PASSES``) and the release's measured time; flags a forward above
    ``FORWARD_GOAL`` x its floor."""
    dtype = DTYPES[p.dtype]
    line = (f'   model {total.model * 1e6:.0f} us (bytes {total.bytes * 1e6:.0f} us, depth '
            f'{total.depth * 1e6:.0f} us; no overlap {(total.bytes + total.depth) * 1e6:.0f} '
            'us)')
    if (p.op, p.name) not in FLOOR_PASSES:
        print(line, file=out)
        return
    floor_s = floor_bytes(p.op, p.name, SHAPES[p.shape], dtype) / arch.hbm_bytes_per_s
    ratio = total.model / floor_s
    line += (f'; floor {floor_s * 1e6:.0f} us ({len(FLOOR_PASSES[(p.op, p.name)])} passes); '
             f'model/floor {ratio:.2f}')
    if p.name == 'forward':
        met = ratio <= FORWARD_GOAL
        line += f' (goal <= {FORWARD_GOAL}: {"met" if met else "MISSED"})'
        if not met:
            flagged.setdefault((arch.name, p.label), set()).add(
                f'model {ratio:.2f}x floor')
    elif forward_s is not None:
        line += f'; fwd+bwd {(forward_s + total.model) * 1e6:.0f} us'
    release = release_ms(p.op, p.shape, dtype, p.name)
    if release is not None:
        line += f'; release {"fwd" if p.name == "forward" else "fwd+bwd"} {release * 1e3:.0f} us'
    print(line, file=out)


def parse_selection(archs: Iterable[int], ops: Iterable[str], shapes: Iterable[str],
                    dtypes: Iterable[str]) -> Selection:
    """A :class:`Selection`, each value checked against what the check knows."""
    for name, values, known in (('arch', archs, ARCHS), ('op', ops, OPS),
                                ('shape', shapes, SHAPES), ('dtype', dtypes, DTYPES)):
        unknown = [v for v in values if v not in known]
        if unknown:
            raise ValueError(f'unknown {name} {unknown}; choose from {list(known)}')
    return Selection(list(archs), list(ops), list(shapes), list(dtypes))

