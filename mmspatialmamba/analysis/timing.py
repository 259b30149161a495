"""Timing and peak memory of a callable on CUDA or the CPU: the one place the tools measure.

``tools/benchmark.py``, ``tools/profile_block.py``, ``benchmarks/bench_ops.py``,
``benchmarks/bench_scan_cpu.py`` and ``benchmarks/gpu_check.py`` all time through this module,
so every number they print is measured the same way:

* Device work is asynchronous, so on CUDA each timed call sits between two CUDA events with
  the device idle before it (``torch.cuda.synchronize``), and the events are read after a
  synchronize. On the CPU the wall clock (``time.perf_counter``) is exact.
* Warm-up calls come first, untimed: Triton compiles a kernel on its first launch, cuDNN
  autotunes its convolutions (``cudnn.benchmark``) and the caching allocator fills.
* The reported time is the median of the timed calls (robust to an outlier).
* Peak memory on CUDA is ``torch.cuda.max_memory_allocated`` after
  ``reset_peak_memory_stats``: the tensors PyTorch allocated, not the caching allocator's
  reserve. The CPU has no such counter: there it is the process's peak resident set size
  (``ru_maxrss``), which only grows over a run, so later rows include earlier ones.
* Single-kernel timings (:func:`kernel_time_ms`) use ``triton.testing.do_bench`` on CUDA,
  which also clears the L2 cache before each call, so small inputs are not timed from cache.
"""
import resource
import statistics
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

AUTOCAST_DTYPES = {'bf16': torch.bfloat16, 'fp16': torch.float16}


@dataclass
class Timing:
    """What :func:`measure` found: median seconds per call and the peak memory."""

    median_s: float
    peak_mem_mib: float
    peak_mem_kind: str


@dataclass
class Measurement:
    """One benchmarked configuration: a row of ``tools/benchmark.py``'s table and JSON.

    ``amp`` is the autocast dtype ('bf16' or 'fp16'), or None for float32.
    """

    model: str
    device: str
    backend: str
    amp: Optional[str]
    compile: bool
    mode: str
    batch: int
    shape: Tuple[int, int]
    images_per_s: float
    latency_ms: float
    peak_mem_mib: float
    peak_mem_kind: str


def synchronize(device: str) -> None:
    """Wait for the device's queued work (a no-op on the CPU)."""
    if device == 'cuda':
        torch.cuda.synchronize()


def warm_up(fn: Callable[[], Any], times: int, device: str) -> None:
    """Call ``fn`` ``times`` times untimed (compilation, autotuning, allocator), then sync."""
    for _ in range(times):
        fn()
    synchronize(device)


def _peak_memory(device: str) -> Tuple[float, str]:
    if device == 'cuda':
        return torch.cuda.max_memory_allocated() / 2**20, 'cuda max_memory_allocated'
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 'cpu process peak RSS'


def measure(fn: Callable[[], Any], device: str, warmup: int, iters: int) -> Timing:
    """Median time per call of ``fn`` and the peak memory while it ran.

    Args:
        fn: The work to time, taking no arguments.
        device: 'cuda' or 'cpu' (where ``fn`` runs).
        warmup: Untimed calls first (>= 0). iters: Timed calls (>= 1).

    Returns:
        The median seconds per call over ``iters`` calls and the peak memory (see the module
        docstring for what each device's peak means).

    Raises:
        ValueError: If ``iters`` < 1 or ``warmup`` < 0.
    """
    if iters < 1 or warmup < 0:
        raise ValueError(f'measure needs iters >= 1 and warmup >= 0, got iters={iters}, '
                         f'warmup={warmup}')
    warm_up(fn, warmup, device)
    if device == 'cuda':
        torch.cuda.reset_peak_memory_stats()
    times: List[float] = []
    for _ in range(iters):
        if device == 'cuda':
            start, end = (torch.cuda.Event(enable_timing=True) for _ in range(2))
            torch.cuda.synchronize()
            start.record()
            fn()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end) / 1e3)
        else:
            begin = time.perf_counter()
            fn()
            times.append(time.perf_counter() - begin)
    return Timing(statistics.median(times), *_peak_memory(device))


def kernel_time_ms(fn: Callable[[], Any], device: str, cpu_warmup: int = 1,
                   cpu_iters: int = 3) -> float:
    """Median milliseconds of a short GPU op (``do_bench``), or of ``cpu_iters`` CPU calls.

    On CUDA, ``triton.testing.do_bench`` picks the number of calls itself (about 25 ms of
    warm-up and 100 ms of timed calls) and clears the L2 cache before each. On the CPU,
    ``cpu_warmup`` untimed calls, then the median of ``cpu_iters`` timed ones.
    """
    if device == 'cuda':
        from triton.testing import do_bench
        return do_bench(fn, warmup=25, rep=100, return_mode='median')
    return measure(fn, device, warmup=cpu_warmup, iters=cpu_iters).median_s * 1e3


def peak_memory_mib(fn: Callable[[], Any], device: str) -> Optional[float]:
    """MiB that one call of ``fn`` allocates on CUDA beyond what was already allocated.

    Returns None on the CPU, which has no per-call counter.
    """
    if device != 'cuda':
        return None
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    fn()
    torch.cuda.synchronize()
    return (torch.cuda.max_memory_allocated() - base) / 2**20


def step_functions(model: nn.Module, task: str, images: Tensor,
                   samples: Optional[List[Any]], compiled: Optional[nn.Module] = None,
                   amp: Optional[str] = None) -> Dict[str, Callable[[], Any]]:
    """The two callables the benchmarks time: one inference forward, one training step.

    Args:
        model: The model; ``compiled`` (if given) is its ``torch.compile`` form, used for the
            backbone and classifier forwards.
        task: 'backbone', 'classification', 'detection' or 'segmentation'.
        images: (batch, 3, H, W) on the model's device.
        samples: mmdet/mmseg data samples for ``images`` (None for the other tasks).
        amp: Autocast dtype, 'bf16' or 'fp16', or None for float32. The forward and the loss
            run under ``torch.autocast``; an fp16 step scales the loss with a ``GradScaler``
            as mixed-precision training does (bf16 needs none).

    Returns:
        ``{'inference': ..., 'train': ...}``. Inference runs under ``torch.no_grad``
        (mmdet/mmseg models in ``mode='predict'``, post-processing included); a training step
        is zero_grad, forward, loss (the outputs' mean for the backbone, cross-entropy for the
        classifier, the model's own losses on the samples' targets for mmdet/mmseg), backward
        and an AdamW step. Call ``model.train()`` / ``model.eval()`` before timing each.

    Raises:
        ValueError: For an unknown ``amp``.
    """
    if amp is not None and amp not in AUTOCAST_DTYPES:
        raise ValueError(f'unknown amp {amp!r}; choose one of {sorted(AUTOCAST_DTYPES)} or '
                         'None for float32')
    device = images.device.type
    runner = compiled if compiled is not None else model

    def autocast() -> torch.autocast:
        return torch.autocast(device_type=device, dtype=AUTOCAST_DTYPES.get(amp),
                              enabled=amp is not None)

    def infer() -> Any:
        with torch.no_grad(), autocast():
            if task in ('detection', 'segmentation'):
                return model(images, samples, mode='predict')
            return runner(images)

    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    scaler = torch.amp.GradScaler(device, enabled=amp == 'fp16')
    labels = torch.randint(0, 1000, (images.shape[0],), device=images.device)

    def train() -> Tensor:
        optimizer.zero_grad(set_to_none=True)
        with autocast():
            if task == 'backbone':
                loss = sum(out.float().mean() for out in runner(images))
            elif task == 'classification':
                loss = F.cross_entropy(runner(images).float(), labels)
            else:
                losses = model(images, samples, mode='loss')
                loss = sum(v if isinstance(v, Tensor) else sum(v)
                           for k, v in losses.items() if 'loss' in k)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        return loss

    return {'inference': infer, 'train': train}
