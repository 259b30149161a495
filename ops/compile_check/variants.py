"""The kernel variants a set of op calls compiles, counted without a GPU and compiled ahead.

Triton compiles a kernel once per *variant*: per value of its ``constexpr`` s and launch
options and per specialisation of its other arguments (:func:`variant_key`). A GPU run pays
each variant's compilation (about a second) on its first launch. The GPU check
(``benchmarks/gpu_check.py``) records its calls here on fake CUDA tensors
(:func:`record_case`), counts their variants, and compiles them all first, in parallel
processes (:func:`compile_variants`), into Triton's on-disk cache, where the calls that follow
find them; the dry run prints the count for the real run's calls.
"""
import concurrent.futures
import dataclasses
import multiprocessing
import time
import traceback
from typing import Dict, Hashable, List, Sequence, Tuple

import torch

from .cases import DTYPES, OPS, Case, Shape
from .compiler import compile_launch, compiling_for, record_launches
from .fake_cuda import fake_cuda, fake_cuda_device
from .launch import Launch


def record_case(op: str, shape: Shape, dtype: str, capability: int,
                label: str) -> Tuple[List[Launch], List[Launch]]:
    """The Triton launches of ``op`` forward, then backward, on fake CUDA tensors sized for
    ``sm_<capability>``; ``label`` names them (with ' forward' / ' backward' appended)."""
    forward, backward = [], []
    with fake_cuda_device(capability):
        with record_launches(f'{label} forward', forward):
            out, leaves = OPS[op](shape, DTYPES[dtype])
        with record_launches(f'{label} backward', backward):
            torch.autograd.grad(out, leaves, fake_cuda(out.shape, out.dtype))
    return forward, backward


def variant_key(launch: Launch) -> Hashable:
    """What Triton compiles ``launch`` for, as its JIT specialises (Triton 3.x): the kernel,
    the ``constexpr`` s and launch options by value, and per other argument its type plus,
    unless the kernel lists it in ``do_not_specialize``, whether an integer is 1 or a multiple
    of 16 and whether a tensor's address is 16-byte aligned (fake tensors sit at offsets from
    a 512-byte-aligned base, as CUDA allocations do)."""
    named = launch.named_args()
    key = [launch.kernel]
    for param in launch.kernel.params:
        value = named.pop(param.name)
        if param.is_constexpr or value is None:
            key.append(('constexpr', value))
        elif isinstance(value, torch.Tensor):
            offset = value.storage_offset() * value.element_size()
            key.append((value.dtype, offset % 16 == 0))
        elif isinstance(value, bool):
            key.append('i1')
        elif isinstance(value, int):
            width = 'i32' if -2**31 <= value < 2**31 else 'i64'
            key.append((width,) if param.do_not_specialize else
                       (width, value == 1, value % 16 == 0))
        else:
            key.append(type(value).__name__)
    key.append(tuple(sorted(named.items())))       # launch options: num_warps, num_stages
    return tuple(key)


def record_variants(cases: Sequence[Case], capability: int) -> Tuple[int, List[Launch]]:
    """Record every case; returns the number of launches and the first launch of each
    distinct variant, in order."""
    launches = []
    for case in cases:
        forward, backward = record_case(case.op, case.shape, case.dtype, capability, str(case))
        launches += forward + backward
    distinct: Dict[Hashable, Launch] = {}
    for launch in launches:
        distinct.setdefault(variant_key(launch), launch)
    return len(launches), list(distinct.values())


@dataclasses.dataclass
class Compilation:
    """What :func:`compile_variants` did: variants compiled, distinct kernels (by Triton's
    hash) they gave, wall seconds, and each failure as ``(launch label, error)``."""
    variants: int
    kernels: int
    seconds: float
    failures: List[Tuple[str, str]]


def _compile_share(cases: Sequence[Case], capability: int, share: int,
                   shares: int) -> Tuple[int, List[str], List[Tuple[str, str]]]:
    """In a worker process: record the cases, compile every ``shares``-th variant from
    ``share`` on (none where there are fewer variants than shares), each named on stdout
    first (a compiler that crashes the process leaves the variant it was compiling as its
    worker's last line); returns the number of variants of all shares, the kernels' hashes
    and the failures."""
    _, variants = record_variants(cases, capability)
    failures, known = [], {}
    with compiling_for(capability):
        for launch in variants[share::shares]:
            print(f'compiling {launch.name} ({launch.case})', flush=True)
            try:
                compile_launch(launch, known, report=False)
            except Exception as error:  # noqa: BLE001  (every compile error is reported)
                failures.append((f'{launch.name} ({launch.case})',
                                 traceback.format_exception_only(type(error), error)[-1]))
    return len(variants), list(known), failures


def compile_variants(cases: Sequence[Case], capability: int, workers: int) -> Compilation:
    """Compile every variant of ``cases`` for ``sm_<capability>`` into Triton's cache
    (``TRITON_CACHE_DIR``), split over ``workers`` processes (each records the cases itself:
    recording costs tens of milliseconds per case, and launches hold kernels that do not
    pickle; each reports the count, so this process records nothing)."""
    start = time.time()
    workers = max(1, workers)
    context = multiprocessing.get_context('spawn')   # no forked CUDA or Triton state
    with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context) as pool:
        results = [f.result() for f in [pool.submit(_compile_share, cases, capability, k,
                                                    workers) for k in range(workers)]]
    counts = {count for count, _, _ in results}
    if len(counts) != 1:   # the shares would then overlap or miss variants
        raise RuntimeError(f'the workers recorded different numbers of variants: {counts}')
    hashes = {h for _, kernel_hashes, _ in results for h in kernel_hashes}
    failures = [f for _, _, worker_failures in results for f in worker_failures]
    return Compilation(counts.pop(), len(hashes), time.time() - start, failures)
