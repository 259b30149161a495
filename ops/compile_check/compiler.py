"""Record every Triton launch, then compile each one for a GPU architecture without a GPU.

:func:`record_launches` replaces ``JITFunction.run`` (what ``kernel[grid](...)`` calls) for the
duration of a block, so every ``@triton.jit`` kernel launched by any code, under any wrapper
name, is recorded with its grid, arguments and ``constexpr`` s instead of being run.
:func:`compile_launch` compiles one record with Triton's own JIT specialisation
(``JITFunction.run(warmup=True)``) against a stub driver that reports the target
architecture; ptxas from the triton wheel builds the cubin and reports registers and spills.
"""
import contextlib
import dataclasses
import io
import os
import re
from typing import Iterator, List

import torch

if os.environ.get('TRITON_INTERPRET', '0') == '1':
    raise RuntimeError('the compile check needs the real Triton compiler, but TRITON_INTERPRET=1; '
                       'run it in a process with TRITON_INTERPRET=0 (tools/compile_check.py '
                       'sets it)')

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


def set_target(capability: int) -> None:
    """Compile for ``sm_<capability>`` from now on (the check owns its process's driver)."""
    driver.set_active(_StubDriver(capability))


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
    """What the compiler reports for one launch on one architecture (per thread / block)."""
    warps: int
    regs: int
    spill_bytes: int        # ptxas spill stores
    smem: int               # shared memory per block, bytes


_PTXAS_REGS = re.compile(r'Used (\d+) registers')
_PTXAS_SPILLS = re.compile(r'(\d+) bytes spill stores')


def compile_launch(launch: Launch, capability: int, known: dict) -> Compiled:
    """Compile ``launch`` for ``sm_<capability>``; raises what Triton or ptxas raises.

    ptxas reports registers and spills only when it runs: a launch whose specialisation
    Triton already compiled in this process is looked up in ``known`` (cubin hash ->
    :class:`Compiled`), which this function fills. The Triton cache must start empty
    (``TRITON_CACHE_DIR``) for the same reason.
    """
    set_target(capability)
    args = [_Pointer(a) if isinstance(a, torch.Tensor) else a for a in launch.args]
    log = io.StringIO()
    os.environ['TRITON_DUMP_PTXAS_LOG'] = '1'
    with contextlib.redirect_stdout(log):
        kernel = _ORIGINAL_RUN(launch.kernel, *args, grid=launch.grid, warmup=True,
                               **launch.kwargs)
    if kernel.hash not in known:
        regs = _PTXAS_REGS.search(log.getvalue())
        spills = _PTXAS_SPILLS.search(log.getvalue())
        if regs is None or spills is None:
            raise RuntimeError('ptxas printed no register report: run the check with an empty '
                               'TRITON_CACHE_DIR, on a Triton that honours '
                               'TRITON_DUMP_PTXAS_LOG=1 (3.4 or later)')
        known[kernel.hash] = Compiled(warps=kernel.metadata.num_warps,
                                      regs=int(regs.group(1)),
                                      spill_bytes=int(spills.group(1)),
                                      smem=kernel.metadata.shared)
    return known[kernel.hash]
