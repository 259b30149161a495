"""Bounds checking for kernels run by the Triton interpreter (``TRITON_INTERPRET=1``).

Every active (unmasked) lane of every load and store a kernel makes must lie inside the
storage of a tensor passed to that launch. The interpreter turns each load and store into a
gather or scatter at raw addresses, so a lane that points past a tensor reads whatever lies
there, often a neighbouring tensor, and a kernel whose stray values are discarded passes
every value test; on a GPU the same lane can fault.

How, in Triton 3.9's ``triton/runtime/interpreter.py``: ``GridExecutor._init_args_hst``
gives the kernel a host copy of each storage behind its tensor arguments (the storage
itself for CPU tensors) and ``GridExecutor._restore_args_dev`` copies the host copies back
after the launch. :func:`check_bounds` replaces both: each storage is copied into a buffer
of its own with ``GUARD_BYTES`` unused bytes on either side, so that a lane past one tensor
cannot land inside another, and copied back after the launch. It wraps
``InterpreterBuilder.create_masked_load`` and ``create_masked_store`` (``create_load`` and
``create_store`` call them with an all-true mask) to check every active lane against those
storages. A lane outside all of them is recorded (kernel, pointer argument, byte offset) and
masked off, so nothing outside is read or written; the launch then raises
:class:`OutOfBounds` naming every such access. Atomics and tensor descriptors, which the
project's kernels do not use, are not checked.
"""
import contextlib
import dataclasses
from collections import Counter
from typing import Dict, Iterator, List, Optional, Tuple

import numpy as np
import torch
from triton.runtime import interpreter

# Unused bytes on either side of each storage's copy, so that a stray lane lands in a gap,
# not in another argument's copy: more than any stray lane of these kernels reaches (a
# padding lane one channel row past a tensor; the longest row in the tests, 67,200 float32,
# is 263 KiB). A lane that reaches farther is still caught unless it lands in another copy.
# Never touched, so never paged in.
GUARD_BYTES = 1 << 20


class OutOfBounds(AssertionError):
    """A kernel's active lanes loaded or stored outside the tensors of its launch."""


@dataclasses.dataclass
class Storage:
    """One storage behind a launch's tensor arguments: its copy ``start`` address, size and
    the pointer arguments that point into it."""
    names: List[str]
    start: int
    nbytes: int
    host: torch.Tensor       # the guarded copy (uint8), kept alive for the launch
    device: torch.Tensor     # the caller's storage as uint8, where the copy goes back


@dataclasses.dataclass
class Stray:
    """Lanes of one kernel's loads or stores that fell outside ``storage``."""
    kernel: str
    access: str              # 'load' or 'store'
    storage: Storage
    lanes: int
    lowest: int              # byte offsets from the storage's start: the first byte of the
    highest: int             # lowest stray element and the last byte of the highest

    def __str__(self) -> str:
        where = []
        if self.lowest < 0:
            where.append(f'{-self.lowest} bytes before its start')
        if self.highest >= self.storage.nbytes:
            where.append(f'{self.highest + 1 - self.storage.nbytes} bytes past its end')
        return (f'{self.kernel}: {self.lanes} active lane(s) of {self.access}s outside the '
                f'tensor passed as {"/".join(self.storage.names)} ({self.storage.nbytes} '
                f'bytes): byte offsets {self.lowest}..{self.highest}, up to '
                f'{" and ".join(where)}')


class BoundsChecker:
    """What :func:`check_bounds` saw: launches and active lanes checked per kernel."""

    def __init__(self) -> None:
        self.launches: Counter = Counter()
        self.lanes: Counter = Counter()
        self._kernel: Optional[str] = None
        self._storages: List[Storage] = []
        self._strays: Dict[Tuple[str, int], Stray] = {}
        self._set_bounds()

    def _set_bounds(self) -> None:
        """The copies' start and end addresses, as arrays every load and store of the launch
        checks against (the storages change once per launch, not per access)."""
        self._starts = np.array([s.start for s in self._storages], dtype=np.int64)
        self._ends = self._starts + np.array([s.nbytes for s in self._storages], dtype=np.int64)

    # The launch: storages copied into guarded buffers, and back.
    def begin(self, kernel: str) -> None:
        self._kernel, self._storages, self._strays = kernel, [], {}
        self._set_bounds()
        self.launches[kernel] += 1

    def host_args(self, arg_names: List[str], args: tuple, kwargs: dict) -> tuple:
        by_ptr: Dict[int, Storage] = {}

        def to_host(name: str, arg):
            if not isinstance(arg, torch.Tensor):
                return arg
            storage = arg.untyped_storage()
            found = by_ptr.get(storage.data_ptr())
            if found is None:
                nbytes = storage.nbytes()
                device = torch.empty(0, dtype=torch.uint8).set_(storage)
                host = torch.empty(nbytes + 2 * GUARD_BYTES, dtype=torch.uint8)
                host[GUARD_BYTES:GUARD_BYTES + nbytes].copy_(device)
                found = Storage([], host.data_ptr() + GUARD_BYTES, nbytes, host, device)
                by_ptr[storage.data_ptr()] = found
                self._storages.append(found)
            found.names.append(name)
            offset = GUARD_BYTES // arg.element_size() + arg.storage_offset()
            return arg.new_empty(0).set_(found.host.untyped_storage(), offset, arg.size(),
                                         arg.stride())

        args_hst = [to_host(name, a) for name, a in zip(arg_names, args)]
        kwargs_hst = {k: to_host(k, v) for k, v in kwargs.items()}
        self._set_bounds()
        return args_hst, kwargs_hst

    def copy_back(self) -> None:
        for s in self._storages:
            s.device.copy_(s.host[GUARD_BYTES:GUARD_BYTES + s.nbytes])

    def end(self) -> List[Stray]:
        strays = list(self._strays.values())
        self._kernel, self._storages, self._strays = None, [], {}
        self._set_bounds()
        return strays

    # Every load and store: active lanes inside a storage, the others recorded and masked off.
    def active_inside(self, access: str, ptrs, mask) -> np.ndarray:
        a = ptrs.data.astype(np.int64)
        active = np.broadcast_to(np.asarray(mask.data, dtype=bool), a.shape)
        width = max(1, ptrs.get_element_ty().primitive_bitwidth // 8)
        self.lanes[self._kernel] += int(active.sum())
        if not self._storages:
            raise OutOfBounds(f'{self._kernel}: {access} with no tensor argument to check')
        starts, ends = self._starts, self._ends
        inside = ((a[..., None] >= starts) & (a[..., None] + width <= ends)).any(-1)
        stray = active & ~inside
        if stray.any():
            self._record(access, a[stray], width, starts, ends)
        return active & inside

    def _record(self, access: str, addr: np.ndarray, width: int, starts: np.ndarray,
                ends: np.ndarray) -> None:
        # Each stray lane belongs to the storage it is nearest to (the guards keep that
        # unambiguous): before its start or past its end.
        distance = np.maximum(starts - addr[:, None], addr[:, None] + width - ends)
        owner = distance.argmin(-1)
        for index in np.unique(owner):
            storage = self._storages[index]
            offsets = addr[owner == index] - storage.start
            low, high = int(offsets.min()), int(offsets.max()) + width - 1
            stray = self._strays.setdefault((access, int(index)),
                                            Stray(self._kernel, access, storage, 0, low, high))
            stray.lanes += len(offsets)
            stray.lowest, stray.highest = min(stray.lowest, low), max(stray.highest, high)


@contextlib.contextmanager
def check_bounds() -> Iterator[BoundsChecker]:
    """Within the block, every interpreted launch is bounds-checked (module docstring) and
    raises :class:`OutOfBounds` after it ran when any active lane fell outside its tensors.
    Yields the :class:`BoundsChecker`, whose counts show which kernels were checked."""
    checker = BoundsChecker()
    executor, builder = interpreter.GridExecutor, interpreter.InterpreterBuilder
    if getattr(executor.__call__, 'bounds_checked', False):
        raise RuntimeError('check_bounds is already active (tests/ops/conftest.py turns it on '
                           'for every op test); use its checker, the bounds_checked fixture')
    real = (executor.__call__, executor._init_args_hst, executor._restore_args_dev,
            builder.create_masked_load, builder.create_masked_store)
    real_call, _, _, real_load, real_store = real

    def call(self, *args, **kwargs):
        checker.begin(self.fn.__name__)
        try:
            real_call(self, *args, **kwargs)
        finally:
            strays = checker.end()
        if strays:
            raise OutOfBounds('\n'.join(map(str, strays)))

    def load(self, ptrs, mask, other, cache_policy, is_volatile):
        inside = checker.active_inside('load', ptrs, mask)
        return real_load(self, ptrs, interpreter.TensorHandle(inside, mask.dtype), other,
                         cache_policy, is_volatile)

    def store(self, ptrs, value, mask, cache_policy):
        inside = checker.active_inside('store', ptrs, mask)
        return real_store(self, ptrs, value, interpreter.TensorHandle(inside, mask.dtype),
                          cache_policy)

    call.bounds_checked = True
    executor.__call__ = call
    executor._init_args_hst = lambda self, args, kwargs: checker.host_args(
        self.arg_names, args, kwargs)
    executor._restore_args_dev = lambda self, *args: checker.copy_back()
    builder.create_masked_load, builder.create_masked_store = load, store
    try:
        yield checker
    finally:
        (executor.__call__, executor._init_args_hst, executor._restore_args_dev,
         builder.create_masked_load, builder.create_masked_store) = real
