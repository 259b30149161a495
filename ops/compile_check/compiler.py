"""Record every Triton launch, then compile each one for a GPU architecture without a GPU.

:func:`record_launches` replaces ``JITFunction.run`` (what ``kernel[grid](...)`` calls) for the
duration of a block, so every ``@triton.jit`` kernel launched by any code, under any wrapper
name, is recorded with its grid, arguments and ``constexpr`` s instead of being run.
Inside :func:`compiling_for`, :func:`compile_launch` compiles one record with Triton's own JIT
specialisation (``JITFunction.run(warmup=True)``) against a stub driver that reports the
target architecture; the compiled kernel lands in Triton's cache like one compiled on that
GPU. ptxas (from the triton wheel) reports registers and spills of each new kernel.

Both context managers restore what they replace on exit, also on errors: the package is
installed for users, and a process that checked its kernels must launch them afterwards.
"""
import contextlib
import dataclasses
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

import triton  # noqa: E402
from triton.backends.compiler import GPUTarget  # noqa: E402
from triton.runtime.driver import driver  # noqa: E402
from triton.runtime.jit import JITFunction  # noqa: E402

from .launch import Launch  # noqa: E402

try:
    from triton.runtime.jit import MockTensor
except ImportError:  # where older Triton releases keep it
    from triton.runtime.driver import MockTensor

_ORIGINAL_RUN = JITFunction.run


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
    that reports that target (no GPU needed). On exit Triton's driver settings are restored
    as they were: their attributes are copied back, since reading ``driver.active`` would
    create the default driver, which fails where there is no GPU (Triton 3.5 and later)."""
    saved = dict(vars(driver))
    driver.set_active(_StubDriver(capability))
    try:
        yield
    finally:
        vars(driver).clear()
        vars(driver).update(saved)


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


def _ptxas() -> str:
    """The ptxas Triton runs: ``$TRITON_PTXAS_PATH``, else the one in the triton wheel."""
    return os.environ.get('TRITON_PTXAS_PATH') or os.path.join(
        os.path.dirname(triton.__file__), 'backends', 'nvidia', 'bin', 'ptxas')


def ptxas_report(ptx: str) -> Tuple[int, int]:
    """Registers per thread and spill-store bytes of a kernel's PTX, from ``ptxas -v``.

    Triton runs ptxas with ``-v`` too but keeps its report (printing it only under
    ``TRITON_DUMP_PTXAS_LOG=1``, since Triton 3.4), so it is run again here on the PTX Triton
    made, for the target that PTX names: same input, same registers and spills, on every
    Triton release.
    """
    target = _PTX_TARGET.search(ptx)
    if target is None:
        raise RuntimeError('the PTX names no .target; cannot ask ptxas for its report')
    with tempfile.TemporaryDirectory(prefix='mmsm_ptxas_') as tmp:
        src = os.path.join(tmp, 'kernel.ptx')
        with open(src, 'w') as f:
            f.write(ptx)
        proc = subprocess.run([_ptxas(), '-v', f'--gpu-name={target.group(1)}', src, '-o',
                               os.path.join(tmp, 'kernel.cubin')], capture_output=True,
                              text=True)
    log = proc.stdout + proc.stderr
    regs, spills = _PTXAS_REGS.search(log), _PTXAS_SPILLS.search(log)
    if proc.returncode or regs is None or spills is None:
        raise RuntimeError(f'ptxas -v gave no register report (exit {proc.returncode}): {log}')
    return int(regs.group(1)), int(spills.group(1))


def compile_launch(launch: Launch, known: Dict[str, Compiled], report: bool = True) -> Compiled:
    """Compile ``launch`` for the target of the enclosing :func:`compiling_for`; raises what
    Triton or ptxas raises.

    A launch whose specialisation Triton already compiled (in this process or in its cache)
    is looked up in ``known`` (kernel hash -> :class:`Compiled`), which this function fills;
    ``report`` runs ptxas for the registers and spills of each new kernel.
    """
    args = [_Pointer(a) if isinstance(a, torch.Tensor) else a for a in launch.args]
    kernel = _ORIGINAL_RUN(launch.kernel, *args, grid=launch.grid, warmup=True,
                           **launch.kwargs)
    if kernel.hash not in known:
        regs, spills = ptxas_report(kernel.asm['ptx']) if report else (None, None)
        known[kernel.hash] = Compiled(warps=kernel.metadata.num_warps, regs=regs,
                                      spill_bytes=spills, smem=kernel.metadata.shared)
    return known[kernel.hash]
