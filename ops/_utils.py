"""What the Triton launchers share: the output allocator, the layout rule and launch sizing.

Every block size, tile and warp count a launcher uses comes from this module, so the sizes
are chosen (and changed, and patched by tests) in one place. Sizes for CUDA tensors were
chosen from the compile report (``tools/compile_check.py``: registers, spills, resident
programs per SM); sizes for CPU tensors serve the Triton interpreter, where every program
and every operation costs Python overhead, so they are few and wide.
"""
import contextlib
import dataclasses
from typing import ContextManager, Optional, Tuple

import torch
import triton


def new_output(*shape: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """Allocate an uninitialised output buffer.

    Every buffer an op writes completely is allocated here, so tests can replace this
    function with one that fills the buffer with NaN: an element a kernel never writes
    then shows up as a failure instead of as leftover memory that happens to look right.
    """
    return torch.empty(*shape, dtype=dtype, device=device)


def chunk_summaries(batch: int, dim: int, d_state: int, n_bounds: int, device: torch.device,
                    placeholder: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Buffers of a chunked scan's summary launch, float32: the summed step sizes
    (batch, D, n_bounds) and the state (batch, D, N, n_bounds) at each of the ``n_bounds``
    chunk boundaries. With one chunk (``n_bounds == 0``) the kernels read and write no
    summary, and both are ``placeholder``."""
    if not n_bounds:
        return placeholder, placeholder
    return (new_output(batch, dim, n_bounds, dtype=torch.float32, device=device),
            new_output(batch, dim, d_state, n_bounds, dtype=torch.float32, device=device))


def inner_contiguous(x: torch.Tensor) -> torch.Tensor:
    """``x`` itself when its innermost stride is 1, else a contiguous copy.

    The kernels take any strides but read runs of the innermost dimension; a unit stride
    there lets Triton specialise on it and vectorise. Other strides are passed through.
    """
    return x if x.stride(-1) == 1 else x.contiguous()


def launch_device(device: torch.device) -> ContextManager:
    """The context to launch kernels for tensors on ``device`` in: ``device`` made the
    current CUDA device.

    Triton launches on the current CUDA device whatever device the tensors are on, so
    tensors on ``cuda:1`` while ``cuda:0`` is current fail (``ValueError: Pointer argument
    ... cannot be accessed from Triton``). Every op runs its kernels in this context
    (``_fallback.run_kernels``). Nothing to select for CPU tensors (the interpreter). The
    compile check's tensors only say they are on CUDA, without a CUDA runtime: it replaces
    this function for its duration (``compile_check/fake_cuda.py``).
    """
    if device.type != 'cuda':
        return contextlib.nullcontext()
    return torch.cuda.device(device)


def gpu_capability(device: torch.device) -> Optional[Tuple[int, int]]:
    """Compute capability of a CUDA ``device``, e.g. (9, 0), or None for CPU tensors (the
    Triton interpreter). Every sizing function below starts from it, so the compile check
    and the tests replace this one function to size launches for a GPU they do not have."""
    return torch.cuda.get_device_capability(device) if device.type == 'cuda' else None


# Streaming multiprocessors of the board the launch sizes are set for (H100 SXM).
REFERENCE_SMS = 132
# Most chunks of one scan: the main launch composes up to this many summaries in registers.
MAX_SCAN_CHUNKS = 64
# Compute capabilities (1,536 threads per SM) whose scan forward takes the backward's tile
# in 4-channel programs (``scan_blocks``): sm_86 (RTX 30 series, A10, A40), sm_89 (RTX 40
# series, L4, L40).
SMALL_SCAN_TILE_ARCHS = ((8, 6), (8, 9))


@dataclasses.dataclass(frozen=True)
class ScanBlocks:
    """Programs of the selective scan: ``d`` channels x ``n`` states (padded to a power of
    two) of one batch row per program, walking ``chunk`` positions of the sequence (a multiple
    of ``l``; at least the whole sequence when it is not chunked) ``l`` positions at a time
    with ``warps`` warps."""
    d: int
    n: int
    l: int  # noqa: E741 (positions per block, named like d and n)
    chunk: int
    warps: int = 4


def scan_blocks(batch: int, dim: int, d_state: int, length: int, device: torch.device,
                backward: bool = False) -> ScanBlocks:
    """Block sizes and chunks of the scan's forward or backward kernel.

    GPU: programs are (channel block, batch row, chunk); a short batch of long rows
    (detection) gets one channel per program. The ``d * n * l`` tile is 2048 elements forward
    and 1024 backward, whose kernel holds about twice as many live values per element; the
    backward's one-channel programs take 8 warps. Larger tiles or fewer warps spill registers
    (compile report). On ``SMALL_SCAN_TILE_ARCHS`` the forward's 4-channel programs take 1024
    elements too: at 2048, ptxas gives the float32 kernel 96 registers there and spills; at
    1024 it takes 64 and spills nothing, and the modelled time of every model shape is the
    same (those launches are bound by bandwidth, not by the twice as many serial steps).

    Chunks (``selective_scan/triton_fwd.py``) only where the rows cannot keep the memory
    busy. A program has one block of loads in flight per serial step of about one memory
    latency (~0.7 us; the forward prefetches the next block during its scan): 2.1 MB must be
    in flight for 3 TB/s, 8 KB per one-channel forward program (u, delta of 1024 positions)
    and about 16 KB per backward one, so ~260 rows suffice forward and ~130 backward. A
    chunked scan's summary launch re-reads the inputs of all chunks but one (forward, 4
    chunks: 309 MB instead of 206), which pays only far below that: the scan chunks below
    ``REFERENCE_SMS`` rows (detection stage 1 at batch 1: 128), not at batch 2's 256. Then
    there are enough chunks of whole blocks for 4 x ``REFERENCE_SMS`` programs in each
    launch (the summary runs one chunk fewer), at most ``MAX_SCAN_CHUNKS`` (model:
    docs/kernels.md, "Chunked scan").

    Interpreter: 16 channels per program, blocks no longer than the sequence (the interpreted
    scan costs per element of the tile, padding included), one chunk.
    """
    block_n = triton.next_power_of_2(d_state)
    capability = gpu_capability(device)
    if capability is None:
        block_d = min(16, triton.next_power_of_2(dim))
        block_l = min(triton.next_power_of_2(length), max(16, 16384 // (block_d * block_n)))
        return ScanBlocks(block_d, block_n, block_l, _round_up(length, block_l))
    block_d = 4 if batch * dim >= 1024 else 1
    small_tile = backward or (block_d == 4 and capability in SMALL_SCAN_TILE_ARCHS)
    tile = 1024 if small_tile else 2048
    warps = 8 if backward and block_d == 1 else 4
    block_l = max(16, min(1024, tile // (block_d * block_n)))
    rows = batch * triton.cdiv(dim, block_d)
    chunks = 1
    if rows < REFERENCE_SMS:
        chunks = min(MAX_SCAN_CHUNKS, 1 + triton.cdiv(4 * REFERENCE_SMS, rows))
    return ScanBlocks(block_d, block_n, block_l,
                      _round_up(triton.cdiv(length, chunks), block_l), warps)


def _round_up(x: int, multiple: int) -> int:
    """The smallest multiple of ``multiple`` that is >= ``x`` (and >= ``multiple``)."""
    return max(1, triton.cdiv(x, multiple)) * multiple


@dataclasses.dataclass(frozen=True)
class MapTiles:
    """Programs of the fusion forward: ``c`` channels x ``p`` consecutive pixels of the
    row-major map (a run of whole and partial rows, so no tile is padded to a power of two
    across a row)."""
    c: int
    p: int
    warps: int = 4


def map_tiles(dim: int, length: int, device: torch.device) -> MapTiles:
    """Tiles of the fusion forward over maps of ``length`` pixels.

    GPU: one channel and 512 pixels per program, 4 warps: with the kernel's loop over the
    dilations, 72 registers and 7 programs per SM on sm_80 and sm_90, no spills (compile
    report). Interpreter: up to 16 channels and 16384 elements.
    """
    if gpu_capability(device) is not None:
        return MapTiles(1, min(512, triton.next_power_of_2(length)))
    block_c = min(16, triton.next_power_of_2(dim))
    return MapTiles(block_c, min(triton.next_power_of_2(length), 16384 // block_c))


@dataclasses.dataclass(frozen=True)
class StencilTiles:
    """Programs of the fusion backward's ``dh`` kernel: ``c`` channels x ``h`` rows x ``w``
    cols of the map; the loop over each dilation's 8 off-centre taps takes
    ``taps_per_step`` per step, unrolled."""
    c: int
    h: int
    w: int
    warps: int = 4
    taps_per_step: int = 4


def stencil_tiles(dim: int, height: int, width: int, device: torch.device) -> StencilTiles:
    """Tiles of the fusion backward's main (``dh``, ``dC``) kernel.

    GPU: one channel and 128 pixels per program (one per thread), at most 64 columns, 4
    warps, 4 taps per step: the sizes without spills in the compile report (256 pixels
    spill on sm_90 at detection stage 1, 8 taps per step spill with the observation).
    Interpreter: up to 16 channels and 16384 elements.
    """
    if gpu_capability(device) is not None:
        block_c, block_w, budget = 1, min(64, triton.next_power_of_2(width)), 128
    else:
        block_c = min(16, triton.next_power_of_2(dim))
        block_w, budget = min(256, triton.next_power_of_2(width)), 16384 // block_c
    block_h = min(triton.next_power_of_2(height), max(1, budget // block_w))
    return StencilTiles(block_c, block_h, block_w)


@dataclasses.dataclass(frozen=True)
class TapSumChunks:
    """Programs of the fusion backward's tap sums: ``tiles`` steps of ``p`` pixels of one
    channel map each."""
    tiles: int
    p: int
    warps: int = 4


def tap_sum_chunks(length: int, device: torch.device) -> TapSumChunks:
    """Chunks of a channel map's ``length`` pixels for the tap-sum kernel.

    The kernel keeps 25 running sums per pixel of its step in registers and reduces them
    once per chunk: GPU steps of 128 pixels (one per thread: 48-62 registers, no spills in
    the compile report), chunks of at most 32 steps, so a detection map still makes ~17
    programs per channel and the reduction of the 25 sums is paid once per 4096 pixels.
    Interpreter: one chunk of up to 4096 pixels.
    """
    if gpu_capability(device) is not None:
        return TapSumChunks(32, 128)
    return TapSumChunks(1, min(4096, triton.next_power_of_2(length)))


@dataclasses.dataclass(frozen=True)
class RingBlocks:
    """Programs of the fusion backward's border kernel: ``c`` channels x ``p`` ring pixels."""
    c: int
    p: int
    warps: int = 4


def ring_blocks(dim: int, n_ring: int, device: torch.device) -> RingBlocks:
    """Blocks of the border kernel over the ``n_ring`` pixels of the map's outer ring.

    GPU: one channel and 256 ring pixels per program: 96 registers on sm_80 and sm_90,
    5 programs per SM, no spills in the compile report (128 pixels: 56 registers and 9
    programs, but fewer pixels in flight per SM; ``maxnreg=128``, needed before the
    kernel's rows were unrolled, now makes ptxas take 115 and fit 4).
    """
    if gpu_capability(device) is not None:
        return RingBlocks(1, min(256, triton.next_power_of_2(n_ring)))
    block_c = min(16, triton.next_power_of_2(dim))
    return RingBlocks(block_c, min(4096 // block_c, triton.next_power_of_2(n_ring)))
