"""Triton backward kernels of the structure-aware state fusion (docs/model.md step 6),
optionally with the SASF observation (docs/model.md step 7).

With ``G`` the gradient reaching the fused states (``dout``, or ``dy * C`` with the
observation), the forward ``out[p] = sum_taps w h[clamp(p + off)]`` gives

* kernel gradients ``dK_k[i, j] = alpha_k * S_k[i, j]`` and ``dalpha_k = sum K_k * S_k`` with
  ``S[tap] = sum_p G[p] h[clamp(p + off)]``: ``_state_fusion_tap_sums_kernel``, a gather like
  the forward's whose 25 running sums stay in registers over a chunk of a channel map and
  are reduced across the program once per chunk (not once per tap and tile: 24 of those
  reductions per tile were most of the backward's serial depth in the compile report's
  time model); the launcher sums the chunks' partial sums (two deterministic stages);
* ``dh[q] = sum_taps w * sum_{p : clamp(p + off) = q} G[p]``. For a pixel off the border this is
  the plain gather ``G[q - off]`` (zero outside the map). On the border rows and columns the
  clamp folds several ``p`` onto one ``q``: along an axis the set is the range
  ``[lo(q) - o, hi(q) - o]`` clipped to the map, with ``lo = -inf`` on the first row/column and
  ``hi = +inf`` on the last, at most ``|o| + 1`` long. ``_state_fusion_bwd_kernel`` writes
  the inner pixels, ``_state_fusion_bwd_border_kernel`` the border ring with those ranges;
  every pixel of ``dh`` is written exactly once.
* with the observation, ``dC[p] = sum_d dy[p] fused[p]`` (``fused`` is rebuilt from the
  same loads in ``_state_fusion_bwd_kernel``), reduced over channel groups into partial sums.

Tiles of ``_state_fusion_bwd_kernel`` are [channels, rows, cols] as in the forward (one
channel per program on the GPU), walked in raster order per map as in the forward.
"""
from typing import Optional

import torch
import triton
import triton.language as tl

from .. import _utils
from .triton_fwd import _centre_weight, kernel_rows

# Per-tap sums S: index 0 is the shared centre, then 8 off-centre taps per dilation 1, 3, 5.
# A plain int (the launcher sizes buffers with it), passed to the kernel as a constexpr:
# a @triton.jit function cannot read a global that is not a tl.constexpr.
N_TAPS = 25


@triton.jit
def _grad_at(dy_base, C_base, r, c, W, stride_dy_h, stride_dy_w, stride_C_l, valid,
             HAS_OBS: tl.constexpr):
    """``G = dy (* C)`` at rows ``r``, cols ``c`` where ``valid``, else 0 (fp32)."""
    g = tl.load(dy_base + r * stride_dy_h + c * stride_dy_w, mask=valid, other=0.0).to(tl.float32)
    if HAS_OBS:
        g *= tl.load(C_base + (r.to(tl.int64) * W + c) * stride_C_l, mask=valid,
                     other=0.0).to(tl.float32)
    return g


@triton.jit
def _dh_dilation(h_base, dy_base, C_base, rows, cols, H, W,
                 stride_h_h, stride_h_w, stride_dy_h, stride_dy_w, stride_C_l,
                 mask, mask_c, w_ptr, alpha, dh, fused,
                 DIL: tl.constexpr, TAPS_PER_STEP: tl.constexpr, HAS_OBS: tl.constexpr):
    """Off-centre taps of one dilation: adds to ``dh`` (gather of G) and, with the
    observation, to ``fused`` (gather of h).

    A loop of ``8 / TAPS_PER_STEP`` steps whose taps are unrolled (their loads in flight
    together): all 24 taps unrolled, the compiler hoists their gathers and the kernel
    spills registers (compile report).
    """
    for k0 in range(0, 8, TAPS_PER_STEP):
        for j in tl.static_range(TAPS_PER_STEP):
            k = k0 + j
            t = k + k // 4                  # 3x3 tap index, skipping the centre (4)
            oy = (t // 3 - 1) * DIL
            ox = (t % 3 - 1) * DIL
            w = alpha * tl.load(w_ptr + t, mask=mask_c, other=0.0).to(tl.float32)
            if HAS_OBS:
                r = tl.minimum(tl.maximum(rows + oy, 0), H - 1)
                c = tl.minimum(tl.maximum(cols + ox, 0), W - 1)
                fused += w * tl.load(h_base + r * stride_h_h + c * stride_h_w, mask=mask,
                                     other=0.0).to(tl.float32)
            rs = rows - oy
            cs = cols - ox
            inside = mask & (rs >= 0) & (rs < H) & (cs >= 0) & (cs < W)
            dh += w * _grad_at(dy_base, C_base, rs, cs, W, stride_dy_h, stride_dy_w,
                               stride_C_l, inside, HAS_OBS)
    return dh, fused


@triton.jit
def _tap_products(h_base, g, rows, cols, H, W, stride_h_h, stride_h_w, mask, sums,
                  DIL: tl.constexpr):
    """``sums`` (a tuple of 8 tiles) plus ``g * h[clamp(p + off)]`` for the 8 off-centre
    taps of one dilation, in 3x3 order without the centre."""
    out = ()
    for k in tl.static_range(8):
        t = k + k // 4
        r = tl.minimum(tl.maximum(rows + (t // 3 - 1) * DIL, 0), H - 1)
        c = tl.minimum(tl.maximum(cols + (t % 3 - 1) * DIL, 0), W - 1)
        hv = tl.load(h_base + r * stride_h_h + c * stride_h_w, mask=mask,
                     other=0.0).to(tl.float32)
        out = out + (sums[k] + g * hv,)
    return out


@triton.jit
def _reduce_together(tiles):
    """The sums of 32 tiles of shape [P] as ``(tap, sum)``, both [32]: one reduction of a
    [P, 32] tile instead of 32 (each a round of exchanges across the program's warps).

    ``tl.join`` stacks pairs along a new innermost axis, five times, so tile ``t`` ends at
    the bit-reversed position of ``t`` in the flattened [P, 32] tile; ``tap`` undoes that.
    """
    for _ in tl.static_range(5):
        joined = ()
        for j in tl.static_range(len(tiles) // 2):
            joined = joined + (tl.join(tiles[2 * j], tiles[2 * j + 1]),)
        tiles = joined
    stacked = tiles[0]
    total = tl.sum(tl.reshape(stacked, [stacked.shape[0], 32]), axis=0)
    col = tl.arange(0, 32)
    tap = (((col & 1) << 4) | ((col & 2) << 2) | (col & 4) | ((col & 8) >> 2)
           | ((col & 16) >> 4))
    return tap, total


@triton.jit(do_not_specialize=['H', 'W'])
def _state_fusion_tap_sums_kernel(
    dy_ptr, h_ptr, C_ptr, s_part_ptr,
    D, H, W, batch, n_chunks,
    stride_dy_batch, stride_dy_d, stride_dy_h, stride_dy_w,
    stride_h_batch, stride_h_d, stride_h_h, stride_h_w,
    stride_C_batch, stride_C_l,
    HAS_OBS: tl.constexpr, N_TAPS: tl.constexpr, TILES: tl.constexpr,
    BLOCK_P: tl.constexpr,
):
    """Per-tap sums ``S[tap] = sum_p G[p] h[clamp(p + off)]`` of one channel map over a
    chunk of ``TILES x BLOCK_P`` pixels (row-major): the 25 sums stay tiles in registers
    across the chunk and are reduced together once at its end, not each once per tile."""
    chunk = tl.program_id(0) % n_chunks                   # a map's chunks run together
    plane = tl.program_id(0) // n_chunks
    pid_b = (plane // D).to(tl.int64)
    pid_d = (plane % D).to(tl.int64)
    h_base = h_ptr + pid_b * stride_h_batch + pid_d * stride_h_d
    dy_base = dy_ptr + pid_b * stride_dy_batch + pid_d * stride_dy_d
    C_base = C_ptr + pid_b * stride_C_batch
    length = H * W
    zero = tl.zeros([BLOCK_P], dtype=tl.float32)
    centre = zero
    sums1 = (zero, zero, zero, zero, zero, zero, zero, zero)
    sums3 = sums1
    sums5 = sums1
    start = chunk * TILES * BLOCK_P
    for p0 in range(start, tl.minimum(start + TILES * BLOCK_P, length), BLOCK_P):
        pos = p0 + tl.arange(0, BLOCK_P)
        mask = pos < length
        rows = pos // W
        cols = pos % W
        g = _grad_at(dy_base, C_base, rows, cols, W, stride_dy_h, stride_dy_w, stride_C_l,
                     mask, HAS_OBS)
        centre += g * tl.load(h_base + rows * stride_h_h + cols * stride_h_w, mask=mask,
                              other=0.0).to(tl.float32)
        sums1 = _tap_products(h_base, g, rows, cols, H, W, stride_h_h, stride_h_w, mask,
                              sums1, 1)
        sums3 = _tap_products(h_base, g, rows, cols, H, W, stride_h_h, stride_h_w, mask,
                              sums3, 3)
        sums5 = _tap_products(h_base, g, rows, cols, H, W, stride_h_h, stride_h_w, mask,
                              sums5, 5)
    s_ptr = s_part_ptr + ((chunk * batch + pid_b) * D + pid_d) * N_TAPS
    tap, total = _reduce_together((centre,) + sums1 + sums3 + sums5 + (zero,) * 7)
    tl.store(s_ptr + tap, total, mask=tap < N_TAPS)


@triton.jit(do_not_specialize=['H', 'W'])
def _state_fusion_bwd_kernel(
    dy_ptr, h_ptr, k1_ptr, k3_ptr, k5_ptr, alpha_ptr, C_ptr,
    dh_ptr, dC_part_ptr,
    D, H, W, batch,
    stride_dy_batch, stride_dy_d, stride_dy_h, stride_dy_w,
    stride_h_batch, stride_h_d, stride_h_h, stride_h_w,
    stride_alpha,
    stride_C_batch, stride_C_l,
    HAS_OBS: tl.constexpr, GROUP_D: tl.constexpr, TAPS_PER_STEP: tl.constexpr,
    BLOCK_C: tl.constexpr, BLOCK_H: tl.constexpr, BLOCK_W: tl.constexpr,
):
    n_groups = tl.cdiv(D, GROUP_D)
    n_tiles_w = tl.cdiv(W, BLOCK_W)
    n_tiles = tl.cdiv(H, BLOCK_H) * n_tiles_w
    maps = tl.program_id(0) // n_tiles                    # (batch row, channel group)
    tile = tl.program_id(0) % n_tiles
    pid_b = (maps // n_groups).to(tl.int64)
    pid_g = maps % n_groups
    tile_h = tile // n_tiles_w
    tile_w = tile % n_tiles_w
    rows = tile_h * BLOCK_H + tl.arange(0, BLOCK_H)[None, :, None]            # [1, H, 1]
    cols = tile_w * BLOCK_W + tl.arange(0, BLOCK_W)[None, None, :]            # [1, 1, W]
    in_map = (rows < H) & (cols < W)
    inner = (rows > 0) & (rows < H - 1) & (cols > 0) & (cols < W - 1)
    pos = rows.to(tl.int64) * W + cols

    a1 = tl.load(alpha_ptr).to(tl.float32)
    a3 = tl.load(alpha_ptr + stride_alpha).to(tl.float32)
    a5 = tl.load(alpha_ptr + 2 * stride_alpha).to(tl.float32)
    C_base = C_ptr + pid_b * stride_C_batch
    dC_acc = tl.zeros([BLOCK_H, BLOCK_W], dtype=tl.float32)
    for cb in range(0, GROUP_D, BLOCK_C):
        chans = pid_g * GROUP_D + cb + tl.arange(0, BLOCK_C)[:, None, None]   # [C, 1, 1]
        mask_c = chans < D
        mask = mask_c & in_map
        chans64 = chans.to(tl.int64)
        k1 = k1_ptr + chans * 9
        k3 = k3_ptr + chans * 9
        k5 = k5_ptr + chans * 9
        h_base = h_ptr + pid_b * stride_h_batch + chans64 * stride_h_d
        dy_base = dy_ptr + pid_b * stride_dy_batch + chans64 * stride_dy_d

        w_c = _centre_weight(k1, k3, k5, mask_c, a1, a3, a5)
        dh = w_c * _grad_at(dy_base, C_base, rows, cols, W, stride_dy_h, stride_dy_w,
                            stride_C_l, mask, HAS_OBS)
        fused = tl.zeros(dh.shape, dtype=tl.float32)
        if HAS_OBS:
            fused = w_c * tl.load(h_base + rows * stride_h_h + cols * stride_h_w, mask=mask,
                                  other=0.0).to(tl.float32)
        dh, fused = _dh_dilation(h_base, dy_base, C_base, rows, cols, H, W, stride_h_h,
                                 stride_h_w, stride_dy_h, stride_dy_w, stride_C_l, mask,
                                 mask_c, k1, a1, dh, fused, 1, TAPS_PER_STEP,
                                 HAS_OBS)
        dh, fused = _dh_dilation(h_base, dy_base, C_base, rows, cols, H, W, stride_h_h,
                                 stride_h_w, stride_dy_h, stride_dy_w, stride_C_l, mask,
                                 mask_c, k3, a3, dh, fused, 3, TAPS_PER_STEP,
                                 HAS_OBS)
        dh, fused = _dh_dilation(h_base, dy_base, C_base, rows, cols, H, W, stride_h_h,
                                 stride_h_w, stride_dy_h, stride_dy_w, stride_C_l, mask,
                                 mask_c, k5, a5, dh, fused, 5, TAPS_PER_STEP,
                                 HAS_OBS)
        tl.store(dh_ptr + (pid_b * D + chans64) * H * W + pos, dh.to(dh_ptr.dtype.element_ty),
                 mask=mask & inner)
        if HAS_OBS:
            dy = tl.load(dy_base + rows * stride_dy_h + cols * stride_dy_w, mask=mask,
                         other=0.0).to(tl.float32)
            dC_acc += tl.sum(dy * fused, axis=0)
    if HAS_OBS:
        rows2 = tile_h * BLOCK_H + tl.arange(0, BLOCK_H)[:, None]
        cols2 = tile_w * BLOCK_W + tl.arange(0, BLOCK_W)[None, :]
        tl.store(dC_part_ptr + (pid_g * batch + pid_b) * H * W + rows2.to(tl.int64) * W + cols2,
                 dC_acc, mask=(rows2 < H) & (cols2 < W))


@triton.jit
def _border_taps(dy_base, C_base, qy, qx, H, W, stride_dy_h, stride_dy_w, stride_C_l, mask,
                 mask_c, w_ptr, alpha, acc, DIL: tl.constexpr, HAS_OBS: tl.constexpr):
    """Adds ``w * sum_{p : clamp(p + off) = q} G[p]`` over the off-centre taps of a dilation.

    For a tap at offset ``(oy, ox)`` the folded ranges are at most ``|oy| + 1`` rows by
    ``|ox| + 1`` columns. Taps and rows are loops; the ``DIL + 1`` loads of a row are
    unrolled (masked beyond the range), so they are in flight together. Unrolled further,
    the ~545 loads per ring pixel of the 24 taps spill registers (compile report).
    """
    for k in range(8):
        t = k + k // 4                      # 3x3 tap index, skipping the centre (4)
        oy = (t // 3 - 1) * DIL
        ox = (t % 3 - 1) * DIL
        w = alpha * tl.load(w_ptr + t, mask=mask_c, other=0.0).to(tl.float32)
        y_lo = tl.where(qy == 0, 0, tl.maximum(qy - oy, 0))
        y_hi = tl.where(qy == H - 1, H - 1, tl.minimum(qy - oy, H - 1))
        x_lo = tl.where(qx == 0, 0, tl.maximum(qx - ox, 0))
        x_hi = tl.where(qx == W - 1, W - 1, tl.minimum(qx - ox, W - 1))
        part = tl.zeros(mask.shape, dtype=tl.float32)
        for ty in range(DIL * (t // 3 - 1) * (t // 3 - 1) + 1):
            py = y_lo + ty
            row_ok = mask & (py <= y_hi)
            dy_row = dy_base + py * stride_dy_h
            C_row = C_base + py.to(tl.int64) * W * stride_C_l
            for tx in tl.static_range(DIL + 1):     # masked beyond the range's length
                px = x_lo + tx
                ok = row_ok & (px <= x_hi)
                g = tl.load(dy_row + px * stride_dy_w, mask=ok, other=0.0).to(tl.float32)
                if HAS_OBS:
                    g *= tl.load(C_row + px * stride_C_l, mask=ok, other=0.0).to(tl.float32)
                part += g
        acc += w * part
    return acc


@triton.jit(do_not_specialize=['H', 'W', 'n_bottom', 'n_ring'])
def _state_fusion_bwd_border_kernel(
    dy_ptr, k1_ptr, k3_ptr, k5_ptr, alpha_ptr, C_ptr, dh_ptr,
    D, H, W, n_bottom, side_cols, n_ring,
    stride_dy_batch, stride_dy_d, stride_dy_h, stride_dy_w,
    stride_alpha,
    stride_C_batch, stride_C_l,
    HAS_OBS: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_P: tl.constexpr,
):
    n_cblocks = tl.cdiv(D, BLOCK_C)
    pid_b = (tl.program_id(0) // n_cblocks).to(tl.int64)
    pid_c = tl.program_id(0) % n_cblocks
    chans = pid_c * BLOCK_C + tl.arange(0, BLOCK_C)[:, None]                  # [C, 1]
    e = tl.program_id(1) * BLOCK_P + tl.arange(0, BLOCK_P)[None, :]           # [1, P]
    mask_c = chans < D
    mask = mask_c & (e < n_ring)
    # Ring order: first row, last row (if H > 1), then the side columns of the inner rows.
    side = e - W - n_bottom
    qy = tl.where(e < W, 0, tl.where(e < W + n_bottom, H - 1, 1 + side // side_cols))
    qx = tl.where(e < W, e, tl.where(e < W + n_bottom, e - W, (side % side_cols) * (W - 1)))
    qy = tl.where(e < n_ring, qy, 0)
    qx = tl.where(e < n_ring, qx, 0)
    chans64 = chans.to(tl.int64)

    a1 = tl.load(alpha_ptr).to(tl.float32)
    a3 = tl.load(alpha_ptr + stride_alpha).to(tl.float32)
    a5 = tl.load(alpha_ptr + 2 * stride_alpha).to(tl.float32)
    k1 = k1_ptr + chans * 9
    k3 = k3_ptr + chans * 9
    k5 = k5_ptr + chans * 9
    dy_base = dy_ptr + pid_b * stride_dy_batch + chans64 * stride_dy_d
    C_base = C_ptr + pid_b * stride_C_batch
    acc = _centre_weight(k1, k3, k5, mask_c, a1, a3, a5) * _grad_at(
        dy_base, C_base, qy, qx, W, stride_dy_h, stride_dy_w, stride_C_l, mask, HAS_OBS)
    acc = _border_taps(dy_base, C_base, qy, qx, H, W, stride_dy_h, stride_dy_w, stride_C_l,
                       mask, mask_c, k1, a1, acc, 1, HAS_OBS)
    acc = _border_taps(dy_base, C_base, qy, qx, H, W, stride_dy_h, stride_dy_w, stride_C_l,
                       mask, mask_c, k3, a3, acc, 3, HAS_OBS)
    acc = _border_taps(dy_base, C_base, qy, qx, H, W, stride_dy_h, stride_dy_w, stride_C_l,
                       mask, mask_c, k5, a5, acc, 5, HAS_OBS)
    tl.store(dh_ptr + (pid_b * D + chans64) * H * W + qy.to(tl.int64) * W + qx,
             acc.to(dh_ptr.dtype.element_ty), mask=mask)


def _tap_sums_to_grads(s: torch.Tensor, k1: torch.Tensor, k3: torch.Tensor, k5: torch.Tensor,
                       alpha: torch.Tensor) -> tuple:
    """Turn per-tap sums ``S`` (D, 25) into ``(dk1, dk3, dk5, dalpha)`` in the params' dtypes."""
    dim = s.shape[0]
    grads, dalpha = [], []
    for idx, k in enumerate((k1, k3, k5)):
        off_centre = s[:, 1 + 8 * idx:9 + 8 * idx]
        s_k = torch.cat([off_centre[:, :4], s[:, :1], off_centre[:, 4:]], dim=1)  # (D, 9)
        grads.append((alpha[idx].float() * s_k).view(dim, 1, 3, 3).to(k.dtype))
        dalpha.append((k.reshape(dim, 9).float() * s_k).sum())
    return (*grads, torch.stack(dalpha).to(alpha.dtype))


def state_fusion_bwd(dout: torch.Tensor, h: torch.Tensor, k1: torch.Tensor, k3: torch.Tensor,
                     k5: torch.Tensor, alpha: torch.Tensor, C: Optional[torch.Tensor] = None,
                     dh_dtype: Optional[torch.dtype] = None) -> tuple:
    """Gradients of the fusion (and, with ``C``, of the observation's ``C * fused`` term).

    Args:
        dout: Gradient of the output, (batch, D, H, W) (``dy`` when ``C`` is given).
        h: Forward input states, (batch, D, H, W).
        k1, k3, k5, alpha: Fusion parameters.
        C: Observation weights (batch, 1, H*W) when the observation was fused in the forward.
        dh_dtype: Dtype of ``dh``; default ``h.dtype``.

    Returns:
        ``(dh, dk1, dk3, dk5, dalpha, dC)``; ``dC`` (C's dtype) is None without ``C``.
    """
    dout, h = _utils.inner_contiguous(dout), _utils.inner_contiguous(h)
    batch, dim, height, width = h.shape
    device = h.device
    has_obs = C is not None
    if has_obs:
        C = _utils.inner_contiguous(C)
    tiles = _utils.stencil_tiles(dim, height, width, device)
    n_th, n_tw = triton.cdiv(height, tiles.h), triton.cdiv(width, tiles.w)
    # Channels per program: only the observation needs a reduction over channels (dC); a
    # group of channels adds one partial (batch, L) buffer.
    group_d = max(tiles.c, min(16, triton.next_power_of_2(dim))) if has_obs else tiles.c
    n_groups = triton.cdiv(dim, group_d)

    dh = _utils.new_output(batch, dim, height, width, dtype=dh_dtype or h.dtype, device=device)
    dC_part = (_utils.new_output(n_groups, batch, height * width, dtype=torch.float32,
                                 device=device) if has_obs else dh)
    C_arg = C if has_obs else h
    C_strides = (C.stride(0), C.stride(2)) if has_obs else (0, 0)
    rows = (kernel_rows(k1), kernel_rows(k3), kernel_rows(k5))
    h_fused = h if has_obs else dout    # read only to rebuild the fused states for dC
    _state_fusion_bwd_kernel[(batch * n_groups * n_th * n_tw,)](
        dout, h_fused, *rows, alpha, C_arg, dh, dC_part,
        dim, height, width, batch,
        *dout.stride(), *h_fused.stride(), alpha.stride(0), *C_strides,
        HAS_OBS=has_obs, GROUP_D=group_d, TAPS_PER_STEP=tiles.taps_per_step, BLOCK_C=tiles.c,
        BLOCK_H=tiles.h, BLOCK_W=tiles.w, num_warps=tiles.warps,
    )
    chunks = _utils.tap_sum_chunks(height * width, device)
    n_chunks = triton.cdiv(height * width, chunks.tiles * chunks.p)
    s_part = _utils.new_output(n_chunks * batch, dim, N_TAPS, dtype=torch.float32,
                               device=device)
    _state_fusion_tap_sums_kernel[(n_chunks * batch * dim,)](
        dout, h, C_arg, s_part,
        dim, height, width, batch, n_chunks,
        *dout.stride(), *h.stride(), *C_strides,
        HAS_OBS=has_obs, N_TAPS=N_TAPS, TILES=chunks.tiles, BLOCK_P=chunks.p,
        num_warps=chunks.warps,
    )
    n_bottom = width if height > 1 else 0
    side_cols = 2 if width > 1 else 1
    n_ring = width + n_bottom + max(height - 2, 0) * side_cols
    ring = _utils.ring_blocks(dim, n_ring, device)
    grid = (batch * triton.cdiv(dim, ring.c), triton.cdiv(n_ring, ring.p))
    _state_fusion_bwd_border_kernel[grid](
        dout, *rows, alpha, C_arg, dh,
        dim, height, width, n_bottom, side_cols, n_ring,
        *dout.stride(), alpha.stride(0), *C_strides,
        HAS_OBS=has_obs, BLOCK_C=ring.c, BLOCK_P=ring.p, num_warps=ring.warps,
    )
    dk1, dk3, dk5, dalpha = _tap_sums_to_grads(s_part.sum(0), k1, k3, k5, alpha)
    dC = dC_part.sum(0).view(batch, 1, height * width).to(C.dtype) if has_obs else None
    return dh, dk1, dk3, dk5, dalpha, dC
