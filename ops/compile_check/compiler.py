"""Record every Triton launch, then compile each one for a GPU architecture without a GPU.

:func:`record_launches` replaces ``JITFunction.run`` (what ``kernel[grid](...)`` calls) for the
duration of a block, so every ``@triton.jit`` kernel launched by any code, under any wrapper
name, is recorded with its grid, arguments and ``constexpr`` s instead of being run.
Inside :func:`compiling_for`, :func:`compile_launch` compiles one record with Triton's own JIT
specialisation (``JITFunction.run(warmup=True)``) against a stub driver that reports the
target architecture; the compiled kernel lands in Triton's cache like one compiled on that
GPU. ptxas (from the triton wheel) reports registers and spills of each new kernel
(:func:`ptxas_report`).

Both context managers restore what they replace on exit, also on errors: the package is
installed for users, and a process that checked its kernels must launch them afterwards.
"""
import contextlib
import dataclasses
import io
import os
import re
import subprocess
import tempfile
from typing import Dict, Iterator, List, Optional, Tuple

import torch

if os.environ.get('TRITON_INTERPRET', '0') == '1':
    raise RuntimeError('the compile check needs the real Triton compiler, but TRITON_INTERPRET=1; '
                       'run it in a process with TRITON_INTERPRET=0 (tools/compile_check.py '
                       'sets it)')

from triton.backends.compiler import GPUTarget  # noqa: E402
from triton.runtime.driver import driver  # noqa: E402
from triton.runtime.jit import JITFunction, MockTensor  # noqa: E402

from .launch import Launch  # noqa: E402

_ORIGINAL_RUN = JITFunction.run
_DUMP_PTXAS_LOG = 'TRITON_DUMP_PTXAS_LOG'   # Triton prints ptxas's report (3.5 and later)


@contextlib.contextmanager
def record_launches(case: str, sink: List[Launch]) -> Iterator[None]:
    """Within the block, append every Triton launch to ``sink`` instead of running it."""
    def run(self, *args, grid, warmup, **kwargs):
        if warmup:
            return _ORIGINAL_RUN(self, *args, grid=grid, warmup=warmup, **kwargs)
        if callable(grid):
            grid = grid({**dict(zip(self.arg_names, args)), **kwargs})
        grid = tuple(int(g) for g in grid) + (1,) * (3 - len(grid))
        sink.append(Launch(case, self, grid, args, kwargs))

    JITFunction.run = run
    try:
        yield
    finally:
        JITFunction.run = _ORIGINAL_RUN


class _StubDriver:
    """The driver calls ``JITFunction.run(warmup=True)`` makes; reports a CUDA target."""

    def __init__(self, capability: int):
        self.capability = capability

    def get_current_device(self) -> int:
        return self.capability          # one JIT cache per target architecture

    def get_current_stream(self, device=None) -> int:
        return 0

    def get_current_target(self) -> GPUTarget:
        return GPUTarget('cuda', self.capability, 32)

    def get_active_torch_device(self) -> torch.device:
        return torch.device('cuda')

    def map_python_to_cpp_type(self, ty):
        return ty


@contextlib.contextmanager
def compiling_for(capability: int) -> Iterator[None]:
    """Within the block, Triton compiles for ``sm_<capability>``: its active driver is a stub
    that reports that target (no GPU needed), and ``TRITON_DUMP_PTXAS_LOG=1`` has it print
    ptxas's report. On exit both are as they were: the variable's value (or its absence), and
    Triton's driver settings, whose attributes are copied back (reading ``driver.active``
    would create the default driver, which fails where there is no GPU, Triton 3.5 and
    later)."""
    saved_driver, saved_log = dict(vars(driver)), os.environ.get(_DUMP_PTXAS_LOG)
    driver.set_active(_StubDriver(capability))
    os.environ[_DUMP_PTXAS_LOG] = '1'
    try:
        yield
    finally:
        vars(driver).clear()
        vars(driver).update(saved_driver)
        if saved_log is None:
            del os.environ[_DUMP_PTXAS_LOG]
        else:
            os.environ[_DUMP_PTXAS_LOG] = saved_log


class _Pointer(MockTensor):
    """What the JIT specialises a tensor argument on: its dtype and address alignment.

    The CUDA caching allocator returns blocks aligned to 512 bytes; a view adds its offset.
    """

    def __init__(self, t: torch.Tensor):
        super().__init__(t.dtype)
        self.offset = t.storage_offset() * t.element_size()

    def data_ptr(self) -> int:
        return 512 * 1024 + self.offset


@dataclasses.dataclass
class Compiled:
    """What the compiler reports for one launch on one architecture (per thread / block);
    ``regs`` and ``spill_bytes`` are None when the ptxas report was not asked for."""
    warps: int
    regs: Optional[int]
    spill_bytes: Optional[int]      # ptxas spill stores
    smem: int                       # shared memory per block, bytes


_PTX_TARGET = re.compile(r'^\.target\s+(\w+)', re.MULTILINE)
_PTXAS_REGS = re.compile(r'Used (\d+) registers')
_PTXAS_SPILLS = re.compile(r'(\d+) bytes spill stores')


def _ptxas(capability: int) -> str:
    """The ptxas Triton runs for ``sm_<capability>`` (``$TRITON_PTXAS_PATH`` where set; Triton
    3.6 and later ship another one for the newest architectures)."""
    from triton.backends.nvidia import compiler as nvidia
    try:
        return nvidia.get_ptxas(capability).path
    except TypeError:              # Triton 3.4 and 3.5: one ptxas for every architecture
        return nvidia.get_ptxas().path


def _parse_report(log: str) -> Optional[Tuple[int, int]]:
    regs, spills = _PTXAS_REGS.search(log), _PTXAS_SPILLS.search(log)
    return None if regs is None or spills is None else (int(regs.group(1)), int(spills.group(1)))


def ptxas_report(triton_log: str, ptx: str, capability: int) -> Tuple[int, int]:
    """Registers per thread and spill-store bytes of a newly compiled kernel.

    Triton runs ptxas with ``-v``; from release 3.5 on it prints that report under
    ``TRITON_DUMP_PTXAS_LOG=1`` (``triton_log``: what it printed), the numbers of the cubin it
    built, whatever flags that release gives ptxas. Triton 3.4 keeps the report, and gives
    ptxas no flag that changes register allocation, so there the same ptxas runs again with
    ``-v`` on the same PTX, for the target the PTX names.
    """
    report = _parse_report(triton_log)
    if report is not None:
        return report
    target = _PTX_TARGET.search(ptx)
    if target is None:
        raise RuntimeError('the PTX names no .target; cannot ask ptxas for its report')
    with tempfile.TemporaryDirectory(prefix='mmsm_ptxas_') as tmp:
        src = os.path.join(tmp, 'kernel.ptx')
        with open(src, 'w') as f:
            f.write(ptx)
        proc = subprocess.run([_ptxas(capability), '-v', f'--gpu-name={target.group(1)}', src,
                               '-o', os.path.join(tmp, 'kernel.cubin')], capture_output=True,
                              text=True)
    report = _parse_report(proc.stdout + proc.stderr)
    if proc.returncode or report is None:
        raise RuntimeError(f'ptxas -v gave no register report (exit {proc.returncode}): '
                           f'{proc.stdout + proc.stderr}')
    return report


def compile_launch(launch: Launch, known: Dict[str, Compiled], report: bool = True) -> Compiled:
    """Compile ``launch`` for the target of the enclosing :func:`compiling_for`; raises what
    Triton or ptxas raises.

    A launch whose specialisation Triton already compiled (in this process or in its cache)
    is looked up in ``known`` (kernel hash -> :class:`Compiled`), which this function fills;
    with ``report``, with the registers and spills of each new kernel (:func:`ptxas_report`).
    """
    args = [_Pointer(a) if isinstance(a, torch.Tensor) else a for a in launch.args]
    triton_log = io.StringIO()
    with contextlib.redirect_stdout(triton_log):
        kernel = _ORIGINAL_RUN(launch.kernel, *args, grid=launch.grid, warmup=True,
                               **launch.kwargs)
    if kernel.hash not in known:
        regs, spills = (ptxas_report(triton_log.getvalue(), kernel.asm['ptx'],
                                     kernel.metadata.target.arch) if report else (None, None))
        known[kernel.hash] = Compiled(warps=kernel.metadata.num_warps, regs=regs,
                                      spill_bytes=spills, smem=kernel.metadata.shared)
    return known[kernel.hash]
