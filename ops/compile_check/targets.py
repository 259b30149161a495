"""The GPU architectures the kernels are checked for: launch limits and reference boards.

Limits are per CUDA compute capability (CUDA C Programming Guide, "Technical
Specifications per Compute Capability"). Streaming-multiprocessor count and memory bandwidth
differ between boards of one architecture; the time model (:mod:`.timing`) uses one
reference board each (its SM count, memory bandwidth and L2 size from the vendor's data sheet).
"""
import dataclasses
import math
from typing import Tuple

MAX_REGS_PER_THREAD = 255
MAX_THREADS_PER_BLOCK = 1024
MAX_GRID = (2**31 - 1, 65535, 65535)
REGS_PER_SM = 65536
REG_ALLOC_UNIT = 256       # registers are allocated per warp in units of 256


@dataclasses.dataclass(frozen=True)
class Arch:
    """One compute capability and the reference board used for program counts and timing."""
    capability: int          # e.g. 90 for sm_90
    board: str
    sms: int
    max_threads_per_sm: int
    max_blocks_per_sm: int
    smem_per_sm: int         # bytes usable by blocks on one SM
    smem_per_block: int      # bytes one block may use (opt-in maximum)
    hbm_bytes_per_s: float
    l2_bytes: int

    @property
    def name(self) -> str:
        return f'sm_{self.capability}'


KIB, MIB = 1024, 1024**2
ARCHS = {
    80: Arch(80, 'A100-SXM4-80GB', 108, 2048, 32, 164 * KIB, 163 * KIB, 2.0e12, 40 * MIB),
    86: Arch(86, 'RTX 3090', 82, 1536, 16, 100 * KIB, 99 * KIB, 0.94e12, 6 * MIB),
    89: Arch(89, 'RTX 4090', 128, 1536, 24, 100 * KIB, 99 * KIB, 1.0e12, 72 * MIB),
    90: Arch(90, 'H100-SXM5', 132, 2048, 32, 228 * KIB, 227 * KIB, 3.0e12, 50 * MIB),
}
# Shared memory the CUDA runtime reserves per block (sm_80 and later).
SMEM_RESERVED_PER_BLOCK = 1 * KIB


def resident_blocks(arch: Arch, regs: int, smem: int, warps: int) -> Tuple[int, str]:
    """Blocks of one kernel that fit on one SM at once, and the resource that limits them.

    Returns 0 when a single block does not fit (the launch would fail).
    """
    regs_per_warp = math.ceil(max(regs, 1) * 32 / REG_ALLOC_UNIT) * REG_ALLOC_UNIT
    limits = {
        'regs': REGS_PER_SM // (regs_per_warp * warps),
        'threads': arch.max_threads_per_sm // (warps * 32),
        'smem': arch.smem_per_sm // (smem + SMEM_RESERVED_PER_BLOCK),
        'blocks': arch.max_blocks_per_sm,
    }
    limiter = min(limits, key=limits.get)
    return limits[limiter], limiter


def launch_problems(arch: Arch, grid: Tuple[int, int, int], warps: int, regs: int,
                    smem: int) -> list:
    """Reasons the launch cannot run on ``arch`` (empty when it can)."""
    problems = []
    if regs > MAX_REGS_PER_THREAD:
        problems.append(f'{regs} registers per thread > {MAX_REGS_PER_THREAD}')
    if warps * 32 > MAX_THREADS_PER_BLOCK:
        problems.append(f'{warps * 32} threads per block > {MAX_THREADS_PER_BLOCK}')
    if smem > arch.smem_per_block:
        problems.append(f'{smem} B shared memory per block > {arch.smem_per_block} B')
    for axis, (size, limit) in enumerate(zip(grid, MAX_GRID)):
        if not 1 <= size <= limit:
            problems.append(f'grid axis {axis} = {size} outside [1, {limit}]')
    if not problems and resident_blocks(arch, regs, smem, warps)[0] == 0:
        problems.append('one block does not fit on an SM (registers x threads)')
    return problems
