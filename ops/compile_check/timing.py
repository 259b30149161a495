"""The compile report's time model: bytes moved plus serial depth, against floor and release.

A model, not a measurement: the check runs without a GPU, and the latencies below are
assumptions (calibrate them against ``benchmarks/bench_ops.py`` on a GPU). Per launch:

* ``bytes``: what the launch moves to or from memory (:func:`launch_cost`): each tensor
  argument's storage once, plus the halo rows a stencil tile reads again when its neighbour's
  tile has left L2;
* ``chain``: the latency of the longest chain of dependent steps one program walks (a
  step: loads whose values the next instruction needs, plus any exchange across the
  program's warps);
* ``bytes_s = bytes / bandwidth`` and ``depth_s = ceil(waves) x chain``, ``waves`` being the
  programs over those the board holds at once (:func:`launch_time`).

The launch's modelled time is ``max(bytes_s, depth_s)`` (Little's law: the resident programs
keep one step of loads in flight each, so a launch is bound by bandwidth when they cover the
bandwidth x latency product, else by its serial depth); ``bytes_s + depth_s``, as if nothing
overlapped, is printed as the pessimistic bound. Per case the report sets the sum over its
launches beside the byte floor (:func:`floor_bytes`) and the release's measured time
(:data:`RELEASE_MS`).

Kernels without a rule in :data:`RULES` get one memory round trip per program and are
marked ``no time rule`` in the report.
"""
import dataclasses
import math
from typing import Callable, Dict, Optional, Tuple

import torch

from .cases import Shape
from .launch import Launch
from .targets import Arch

# Latency of one step of a program's chain, in seconds. Assumed for an H100 and used for
# every architecture; none is measured here.
HBM_ROUND_TRIP_S = 0.6e-6      # a load that misses L2: of the order of 0.5 us unloaded
                               # (published pointer-chasing microbenchmarks of A100/H100),
                               # rounded up for queueing under load
CACHED_ROUND_TRIP_S = 0.15e-6  # a load that hits L2: ~250 cycles at 1.7 GHz
BLOCK_EXCHANGE_S = 0.3e-6      # a scan or reduction across the program's warps: 10-24
                               # bar.sync with shared-memory round trips between them (the
                               # scan kernels' sm_90 PTX), ~25 cycles each
TAP_SUMS_EXCHANGES = 5         # the fusion's 25 tap sums reduced as one [P, 32] tile: 9
                               # barriers in its sm_90 SASS (25 separate sums: 49)
STENCIL_REACH = 5              # the fusion's widest tap offset (dilation 5), pixels
FORWARD_GOAL = 1.5             # the forward's goal: its model within 1.5x of its byte floor


@dataclasses.dataclass(frozen=True)
class LaunchCost:
    """What one launch costs in the model: ``bytes`` moved, ``steps`` per program taking
    ``chain_s`` seconds in all, and the rule that gave them."""
    bytes: int
    steps: int
    chain_s: float
    rule: str


def _scan_blocks_per_program(la: Launch) -> int:
    """Blocks of ``BLOCK_L`` positions one scan program walks: its chunk of the sequence
    (the whole sequence when the launch is not chunked, ``chunk >= L``)."""
    a = la.named_args()
    return math.ceil(min(a['chunk'], a['L']) / a['BLOCK_L'])


def _scan_cost(la: Launch, l2_bytes: int) -> LaunchCost:
    """Selective scan forward: each program walks its chunk in blocks of ``BLOCK_L``; the
    loads of the next block are issued before this block's scan across the program's warps
    (``tl.range(num_stages=2)``), so a block costs the longer of the two, not their sum (the
    compiler pipelines fp32 inputs; for bf16 this is optimistic)."""
    steps = _scan_blocks_per_program(la)
    return LaunchCost(la.tensor_bytes(), steps,
                      steps * max(HBM_ROUND_TRIP_S, BLOCK_EXCHANGE_S), 'scan blocks')


def _scan_bwd_cost(la: Launch, l2_bytes: int) -> LaunchCost:
    """Selective scan backward: as the forward without prefetch, and each block loads twice:
    what the reverse scan needs (delta, dh), then after the scan what the gradients need (u,
    B, the previous states, dy)."""
    steps = _scan_blocks_per_program(la)
    return LaunchCost(la.tensor_bytes(), steps,
                      steps * (2 * HBM_ROUND_TRIP_S + BLOCK_EXCHANGE_S), 'scan blocks')


def _halo_bytes(la: Launch, l2_bytes: int, gathered: Tuple[str, ...], tile: Tuple[float, float],
                below: int, right: int) -> int:
    """Bytes of the ``gathered`` maps read again as other tiles' halo.

    A tile of ``tile = (rows, cols)`` pixels reads ``STENCIL_REACH`` more rows and columns
    on each side. Its neighbour below starts ``below`` programs later, the one to the right
    ``right`` programs later (the kernel's grid order): when the bytes the programs in
    between stream exceed L2, that side's halo comes from memory again.
    """
    a = la.named_args()
    per_program = la.tensor_bytes() / la.programs
    factor = 1.0
    for size, block, distance in ((a['H'], tile[0], below), (a['W'], tile[1], right)):
        if distance * per_program > l2_bytes:
            factor *= min(block + 2 * STENCIL_REACH, size) / min(block, size)
    return round((factor - 1) * la.tensor_bytes(*gathered))


def _fusion_fwd_cost(la: Launch, l2_bytes: int) -> LaunchCost:
    """Fusion forward: the centre and the first dilation's gathers from memory, then one
    loop step per further dilation, its 8 gathers from cache and in flight together (sm_90
    SASS: each step's loads issue back to back). A tile is ``BLOCK_P`` consecutive pixels
    of the row-major map, programs walk each map's tiles in order, so the tile holding the
    rows ``STENCIL_REACH`` below starts ``ceil(STENCIL_REACH x W / BLOCK_P)`` programs later."""
    a = la.named_args()
    width, block = a['W'], a['BLOCK_P']
    halo = _halo_bytes(la, l2_bytes, ('h_ptr',), tile=(max(block / width, 1), width),
                       below=math.ceil(STENCIL_REACH * width / block), right=1)
    return LaunchCost(la.tensor_bytes() + halo, 3, HBM_ROUND_TRIP_S + 2 * CACHED_ROUND_TRIP_S,
                      'dilation steps')


def _fusion_bwd_cost(la: Launch, l2_bytes: int) -> LaunchCost:
    """Fusion backward's ``dh`` (and ``dC``): per channel of the program's group, the centre
    tile from memory, then the 24 off-centre taps in a loop of ``TAPS_PER_STEP`` unrolled
    taps per step, each step's gathers from cache and in flight together; nothing is
    reduced across the program's warps per tap. Programs walk each map's tiles in raster
    order."""
    a = la.named_args()
    channels = a['GROUP_D'] // a['BLOCK_C']
    steps = 1 + math.ceil(24 / a['TAPS_PER_STEP'])
    per_channel = HBM_ROUND_TRIP_S + (steps - 1) * CACHED_ROUND_TRIP_S
    halo = _halo_bytes(la, l2_bytes, ('h_ptr', 'dy_ptr'), tile=(a['BLOCK_H'], a['BLOCK_W']),
                       below=math.ceil(a['W'] / a['BLOCK_W']), right=1)
    return LaunchCost(la.tensor_bytes() + halo, channels * steps, channels * per_channel,
                      'tap steps x channels')


def _fusion_tap_sums_cost(la: Launch, l2_bytes: int) -> LaunchCost:
    """Fusion backward's tap sums: a program walks a chunk of one channel map in steps of
    ``BLOCK_P`` pixels, each one round trip (its 27 loads are independent), then reduces
    its 25 sums across its warps together: ``TAP_SUMS_EXCHANGES`` exchanges. Chunks of a map
    are consecutive programs, so the halo rows they share are read while in L2."""
    a = la.named_args()
    steps = min(a['TILES'], math.ceil(a['H'] * a['W'] / a['BLOCK_P']))
    return LaunchCost(la.tensor_bytes(), steps + TAP_SUMS_EXCHANGES,
                      steps * HBM_ROUND_TRIP_S + TAP_SUMS_EXCHANGES * BLOCK_EXCHANGE_S,
                      'chunk steps + sums')


def _border_loop_trips() -> int:
    """Dependent steps per ring pixel of the border kernel: the centre, then for each
    dilation ``d`` and off-centre tap at ``(oy, ox)`` a loop of ``|oy| + 1`` rows, each row's
    ``d + 1`` loads unrolled (in flight together)."""
    trips = 1
    for dil in (1, 3, 5):
        trips += sum(dil * (t // 3 - 1) ** 2 + 1 for t in range(9) if t != 4)
    return trips


def _fusion_border_cost(la: Launch, l2_bytes: int) -> LaunchCost:
    """Fusion backward's border ring: ``dy`` (and ``C``) read in a band ``STENCIL_REACH + 1``
    pixels wide along the edges, ``dh`` written on the ring; the folded ranges are loops of
    one row of loads each, from cache after the first."""
    a = la.named_args()
    height, width = a['H'], a['W']
    band = 1 - max(height - 2 * (STENCIL_REACH + 1), 0) * max(
        width - 2 * (STENCIL_REACH + 1), 0) / (height * width)
    read = ('dy_ptr', 'C_ptr') if a['HAS_OBS'] else ('dy_ptr',)
    moved = (band * la.tensor_bytes(*read)
             + a['n_ring'] / (height * width) * la.tensor_bytes('dh_ptr'))
    trips = _border_loop_trips()
    return LaunchCost(round(moved), trips,
                      HBM_ROUND_TRIP_S + (trips - 1) * CACHED_ROUND_TRIP_S, 'border loops')


NO_RULE = 'no time rule'


def _default_cost(la: Launch, l2_bytes: int) -> LaunchCost:
    return LaunchCost(la.tensor_bytes(), 1, HBM_ROUND_TRIP_S, NO_RULE)


RULES: Dict[str, Callable[[Launch, int], LaunchCost]] = {
    '_selective_scan_fwd_kernel': _scan_cost,
    '_selective_scan_bwd_kernel': _scan_bwd_cost,
    '_state_fusion_fwd_kernel': _fusion_fwd_cost,
    '_state_fusion_bwd_kernel': _fusion_bwd_cost,
    '_state_fusion_tap_sums_kernel': _fusion_tap_sums_cost,
    '_state_fusion_bwd_border_kernel': _fusion_border_cost,
}


def launch_cost(la: Launch, arch: Arch) -> LaunchCost:
    """The model's bytes and chain for ``la`` on ``arch`` (its rule in :data:`RULES`)."""
    return RULES.get(la.name, _default_cost)(la, arch.l2_bytes)


def launch_time(cost: LaunchCost, arch: Arch, programs: int,
                resident: int) -> Tuple[float, float]:
    """``(bytes_s, depth_s)`` of a launch of ``programs``, ``resident`` of them per SM."""
    waves = math.ceil(programs / max(resident * arch.sms, 1))
    return cost.bytes / arch.hbm_bytes_per_s, waves * cost.chain_s


# Byte floor of a case: each (batch, D, L) tensor a pass cannot avoid reading or writing,
# once, in the case's activation dtype ('act') or in float32 ('f32'); the (batch, 1, L)
# tensors B, C and dC and the parameters are left out (1/D of a pass or less).
FLOOR_PASSES = {
    # docs/model.md ("How fast the release is"): u, delta read; the states h (float32, kept
    # for the backward) written and read back by the fusion; y written.
    ('sasf', 'forward'): ('act', 'act', 'f32', 'f32', 'act'),
    # dy, u, delta and the saved h read; du, ddelta written.
    ('sasf', 'backward'): ('act', 'act', 'act', 'f32', 'act', 'act'),
    ('scan', 'forward'): ('act', 'act', 'act'),                      # u, delta in; h out
    ('scan', 'backward'): ('act',) * 6,                  # dh, u, delta, h in; du, ddelta out
    ('fusion', 'forward'): ('act', 'act'),                           # h in; out out
    ('fusion', 'backward'): ('act', 'act', 'act'),                   # dout, h in; dh out
}

# The release's measured times, H100, fp32, ms: (forward, forward + backward), from
# docs/model.md ("How fast the release is"): the SASF core, and the scan alone at
# (2, 128, L = 67200).
RELEASE_MS = {
    ('sasf', 'cls'): (4.27, 15.06),
    ('sasf', 'det1'): (1.42, 5.22),
    ('sasf', 'seg'): (2.64, 9.33),
    ('sasf', 'det3'): (0.39, 2.01),
    ('scan', 'det1'): (0.148, 0.553),
}


def floor_bytes(op: str, pass_name: str, shape: Shape, dtype: torch.dtype) -> int:
    """Bytes a pass of ``op`` must move at least (:data:`FLOOR_PASSES`)."""
    elements = shape.batch * shape.dim * shape.height * shape.width
    sizes = {'act': dtype.itemsize, 'f32': 4}
    return sum(elements * sizes[p] for p in FLOOR_PASSES[(op, pass_name)])


def release_ms(op: str, shape_key: str, dtype: torch.dtype,
               pass_name: str) -> Optional[float]:
    """The release's forward (``pass_name='forward'``) or forward + backward time in ms, if
    it was measured for the case (fp32 only)."""
    times = RELEASE_MS.get((op, shape_key)) if dtype == torch.float32 else None
    return None if times is None else times[pass_name != 'forward']
