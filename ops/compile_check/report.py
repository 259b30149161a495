"""Run the cases, compile every recorded launch for each architecture, print the report.

One row per launch and architecture: grid, programs, warps, registers and spill bytes per
thread, shared memory per block, resident blocks per SM (and what limits them), waves
(programs over what the reference board holds at once), bytes the launch's tensors span and
the modelled time (those bytes at the board's memory bandwidth: a floor, since it ignores
latency and serial depth). A launch fails when it does not compile or breaks a launch limit
of the architecture (:func:`.targets.launch_problems`). The performance goals are flagged in
the status column: ``spills`` (spill bytes > 0) and ``1 blk/SM`` (fewer than 2 resident
programs per SM) fail too when ``strict``; ``few progs`` (fewer programs than 2 per SM of
the board) is only flagged, since a launch may have no more work to split.
"""
import dataclasses
import time
import traceback
from typing import Iterable, List, Sequence, TextIO, Tuple

import torch
import triton

from .cases import DTYPES, OPS, SHAPES
from .compiler import Launch, compile_launch, record_launches
from .fake_cuda import fake_cuda, fake_cuda_device
from .targets import ARCHS, launch_problems, resident_blocks


@dataclasses.dataclass
class Selection:
    """Which architectures, ops, shapes (keys of ``cases.SHAPES``) and dtypes to check."""
    archs: Sequence[int]
    ops: Sequence[str]
    shapes: Sequence[str]
    dtypes: Sequence[str]


FULL = Selection(archs=sorted(ARCHS), ops=list(OPS), shapes=list(SHAPES), dtypes=list(DTYPES))
# CI (about 1 minute on 2 cores): every op forward and backward at the classification shape on
# sm_90, and the model's op in bf16 at detection stage 1 (other block sizes) on sm_80.
QUICK = (Selection(archs=[90], ops=list(OPS), shapes=['cls'], dtypes=['fp32']),
         Selection(archs=[80], ops=['sasf'], shapes=['det1'], dtypes=['bf16']))


def record(sel: Selection, capability: int) -> Tuple[List[Launch], List[str]]:
    """Run the selected cases forward and backward on fake CUDA tensors of compute
    capability ``sm_<capability>``. Returns every Triton launch they made, labelled with the
    case and the pass, and the passes that launched no kernel at all (an op that fell back
    to PyTorch would otherwise pass the check unchecked)."""
    launches: List[Launch] = []
    silent = []
    for shape_key in sel.shapes:
        for op in sel.ops:
            for dtype in sel.dtypes:
                case = f'{op} {dtype} {SHAPES[shape_key]}'
                with fake_cuda_device(capability):
                    before = len(launches)
                    with record_launches(f'{case} forward', launches):
                        out, leaves = OPS[op](SHAPES[shape_key], DTYPES[dtype])
                    if len(launches) == before:
                        silent.append(f'{case} forward')
                    before = len(launches)
                    with record_launches(f'{case} backward', launches):
                        torch.autograd.grad(out, leaves, fake_cuda(out.shape, out.dtype))
                    if len(launches) == before:
                        silent.append(f'{case} backward')
    return launches, silent


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
          f'{"spill":>5} {"smem":>6} {"blk/SM":>11} {"waves":>6} {"MB":>6} {"model_us":>8} '
          f' {"status":<18} constexprs')


def check(selections: Sequence[Selection], out: TextIO, strict: bool = False) -> int:
    """Print the report for ``selections`` to ``out``; return the number of failing launches
    (with ``strict``, launches below the spill and occupancy goals fail as well)."""
    start = time.time()
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


def _check(sel: Selection, out: TextIO, known: dict, flagged: dict, strict: bool) -> int:
    print(f'{sel}', file=out)
    failures = 0
    for cap in sel.archs:
        arch = ARCHS[cap]
        launches, silent = record(sel, cap)
        kernels = sorted({la.name for la in launches})
        print(f'\n== {arch.name} (model: {arch.board}, {arch.sms} SMs, '
              f'{arch.hbm_bytes_per_s / 1e12:.2f} TB/s): {len(launches)} launches of '
              f'{len(kernels)} kernels: {", ".join(kernels)} ==', file=out)
        for case in silent:
            failures += 1
            print(f'FAILED: {case} launched no Triton kernel (did the op leave the Triton '
                  'path?)', file=out)
        case, case_us = None, 0.0
        for la in launches:
            if la.case != case:
                if case is not None:
                    print(f'   modelled {case}: {case_us:.0f} us', file=out)
                case, case_us = la.case, 0.0
                print(f'-- {case}\n{HEADER}', file=out)
            prefix = f'{arch.name:<6} {la.name:<32} {str(la.grid):<16} {la.programs:>8}'
            try:
                c = compile_launch(la, cap, known[cap])
            except Exception as e:  # noqa: BLE001  (every compile error is a finding)
                failures += 1
                print(f'{prefix}  FAILED to compile ({_constexprs(la)}): {_error_text(e)}',
                      file=out)
                continue
            blocks, limiter = resident_blocks(arch, c.regs, c.smem, c.warps)
            waves = la.programs / max(blocks * arch.sms, 1)
            mbytes = la.tensor_bytes() / 1e6
            model_us = la.tensor_bytes() / arch.hbm_bytes_per_s * 1e6
            case_us += model_us
            problems = launch_problems(arch, la.grid, c.warps, c.regs, c.smem)
            missed = _goals_missed(arch, la.programs, blocks, c.spill_bytes)
            if missed:
                flagged.setdefault((arch.name, la.name), set()).update(missed)
            failures += bool(problems) or (strict and bool(set(missed) - {'few progs'}))
            status = 'FAILED' if problems else ','.join(missed) or 'ok'
            print(f'{prefix} {c.warps:>5} {c.regs:>4} {c.spill_bytes:>5} {c.smem:>6} '
                  f'{blocks:>3} ({limiter:<7}) {waves:>6.1f} {mbytes:>6.0f} {model_us:>8.1f}  '
                  f'{status:<18} {_constexprs(la)}', file=out)
            for problem in problems:
                print(f'    {problem}', file=out)
        print(f'   modelled {case}: {case_us:.0f} us', file=out)
    return failures


def parse_selection(archs: Iterable[int], ops: Iterable[str], shapes: Iterable[str],
                    dtypes: Iterable[str]) -> Selection:
    """A :class:`Selection`, each value checked against what the check knows."""
    for name, values, known in (('arch', archs, ARCHS), ('op', ops, OPS),
                                ('shape', shapes, SHAPES), ('dtype', dtypes, DTYPES)):
        unknown = [v for v in values if v not in known]
        if unknown:
            raise ValueError(f'unknown {name} {unknown}; choose from {list(known)}')
    return Selection(list(archs), list(ops), list(shapes), list(dtypes))

