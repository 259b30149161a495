"""Triton forward kernel of the structure-aware state fusion (docs/model.md step 6), optionally
fused with the SASF observation (docs/model.md step 7).

``out[p] = sum_k alpha_k sum_{i,j in -1..1} K_k[i, j] h[clamp(p + k (i, j))]`` for dilations
k = 1, 3, 5: a direct 25-tap stencil (the centre tap is shared by the three kernels), with
replicate padding done as clamped indices, so no padded copy of the map is made. One program
computes ``BLOCK_P`` consecutive pixels of the row-major map (whole and partial rows: no tile
is padded across a row to a power of two, which on the detection maps of 42 or 84 columns
left a third of the lanes idle) of ``BLOCK_C`` channel maps of one batch row; programs go
through each map's tiles in order, so the halo a tile shares with its neighbours is read
while they are still in L2 (the compile report's time model). The
merged weights ``alpha_k * K_k`` are formed in registers on every launch: nothing derived from
the parameters is cached, so weights never go stale between training and evaluation.

With ``HAS_OBS`` the epilogue applies the observation ``y = C * out + skip * u`` before the
store, so the fused states never go to memory.
"""
from typing import Optional

import torch
import triton
import triton.language as tl

from .. import _utils


@triton.jit
def _dilated_taps(h_base, rows, cols, H, W, stride_h_h, stride_h_w, mask, w_ptr, mask_c,
                  alpha, DIL):
    """``alpha * sum`` of the 8 off-centre taps of one 3x3 kernel at dilation ``DIL``.

    ``h_base`` and ``w_ptr`` point at each channel of the tile (shape [C, 1]); the taps
    read ``h`` at clamped rows/cols (replicate padding).
    """
    acc = tl.zeros(mask.shape, dtype=tl.float32)
    for t in tl.static_range(9):
        if t != 4:
            r = tl.minimum(tl.maximum(rows + (t // 3 - 1) * DIL, 0), H - 1)
            c = tl.minimum(tl.maximum(cols + (t % 3 - 1) * DIL, 0), W - 1)
            w = tl.load(w_ptr + t, mask=mask_c, other=0.0).to(tl.float32)
            acc += w * tl.load(h_base + r * stride_h_h + c * stride_h_w, mask=mask,
                               other=0.0).to(tl.float32)
    return alpha * acc


@triton.jit
def _centre_weight(k1_ptr, k3_ptr, k5_ptr, mask_c, a1, a3, a5):
    """Merged weight of the centre tap, shared by the three kernels (one per channel)."""
    return (a1 * tl.load(k1_ptr + 4, mask=mask_c, other=0.0).to(tl.float32)
            + a3 * tl.load(k3_ptr + 4, mask=mask_c, other=0.0).to(tl.float32)
            + a5 * tl.load(k5_ptr + 4, mask=mask_c, other=0.0).to(tl.float32))


@triton.jit(do_not_specialize=['H', 'W'])
def _state_fusion_fwd_kernel(
    h_ptr, k1_ptr, k3_ptr, k5_ptr, alpha_ptr, out_ptr, C_ptr, u_ptr, skip_ptr,
    D, H, W,
    stride_h_batch, stride_h_d, stride_h_h, stride_h_w,
    stride_alpha,
    stride_C_batch, stride_C_l,
    stride_u_batch, stride_u_d, stride_u_l,
    stride_skip_d,
    HAS_OBS: tl.constexpr,
    BLOCK_C: tl.constexpr, BLOCK_P: tl.constexpr,
):
    length = H * W
    n_tiles = tl.cdiv(length, BLOCK_P)
    n_cblocks = tl.cdiv(D, BLOCK_C)
    maps = tl.program_id(0) // n_tiles                    # (batch row, channel block)
    tile = tl.program_id(0) % n_tiles
    pid_b = (maps // n_cblocks).to(tl.int64)
    pid_c = maps % n_cblocks
    chans = pid_c * BLOCK_C + tl.arange(0, BLOCK_C)[:, None]                     # [C, 1]
    pos = tile * BLOCK_P + tl.arange(0, BLOCK_P)[None, :]                         # [1, P]
    rows = pos // W
    cols = pos % W
    mask_c = chans < D
    mask = mask_c & (pos < length)
    chans64 = chans.to(tl.int64)

    a1 = tl.load(alpha_ptr).to(tl.float32)
    a3 = tl.load(alpha_ptr + stride_alpha).to(tl.float32)
    a5 = tl.load(alpha_ptr + 2 * stride_alpha).to(tl.float32)
    k1 = k1_ptr + chans * 9
    k3 = k3_ptr + chans * 9
    k5 = k5_ptr + chans * 9
    h_base = h_ptr + pid_b * stride_h_batch + chans64 * stride_h_d

    acc = _centre_weight(k1, k3, k5, mask_c, a1, a3, a5) * tl.load(
        h_base + rows * stride_h_h + cols * stride_h_w, mask=mask, other=0.0).to(tl.float32)
    # One loop step per dilation (1, 3, 5), its 8 gathers in flight together. Unrolled,
    # ptxas for sm_90 hoists all 24 gathers of 4 pixels per thread: 168 registers, 3
    # programs per SM (72 and 7 with the loop; compile report).
    for i in range(3):
        w_ptr = tl.where(i == 0, k1, tl.where(i == 1, k3, k5))
        alpha = tl.where(i == 0, a1, tl.where(i == 1, a3, a5))
        acc += _dilated_taps(h_base, rows, cols, H, W, stride_h_h, stride_h_w, mask, w_ptr,
                             mask_c, alpha, 2 * i + 1)

    pos64 = pos.to(tl.int64)
    if HAS_OBS:
        Cv = tl.load(C_ptr + pid_b * stride_C_batch + pos64 * stride_C_l, mask=mask,
                     other=0.0).to(tl.float32)
        u = tl.load(u_ptr + pid_b * stride_u_batch + chans64 * stride_u_d + pos64 * stride_u_l,
                    mask=mask, other=0.0).to(tl.float32)
        skip = tl.load(skip_ptr + chans * stride_skip_d, mask=mask_c, other=0.0).to(tl.float32)
        acc = acc * Cv + skip * u
    tl.store(out_ptr + (pid_b * D + chans64) * length + pos64, acc.to(out_ptr.dtype.element_ty),
             mask=mask)


def kernel_rows(k: torch.Tensor) -> torch.Tensor:
    """A (D, 1, 3, 3) kernel as contiguous (D, 9) rows, in its own dtype (no copy if possible)."""
    return k.reshape(k.shape[0], 9).contiguous()


def state_fusion_fwd(h: torch.Tensor, k1: torch.Tensor, k3: torch.Tensor, k5: torch.Tensor,
                     alpha: torch.Tensor, obs: Optional[tuple] = None,
                     out_dtype: Optional[torch.dtype] = None) -> torch.Tensor:
    """Launch the fusion stencil on ``h`` (batch, D, H, W); returns (batch, D, H, W).

    Args:
        h: States, any strides (made contiguous only if the innermost stride is not 1).
        k1, k3, k5, alpha: Fusion parameters, any float dtype.
        obs: ``(C, u, skip)`` to apply the observation ``C * out + skip * u`` in the epilogue;
            C (batch, 1, H*W), u (batch, D, H*W), skip (D,).
        out_dtype: Dtype of the result; default ``h.dtype``.
    """
    h = _utils.inner_contiguous(h)
    batch, dim, height, width = h.shape
    out = _utils.new_output(batch, dim, height, width, dtype=out_dtype or h.dtype,
                            device=h.device)
    if obs is not None:
        C, u, skip = obs
        C, u = _utils.inner_contiguous(C), _utils.inner_contiguous(u)
        obs_args = (C, u, skip, C.stride(0), C.stride(2), *u.stride(), skip.stride(0))
    else:
        obs_args = (h, h, alpha, 0, 0, 0, 0, 0, 0)      # placeholders, never read
    tiles = _utils.map_tiles(dim, height * width, h.device)
    grid = (batch * triton.cdiv(dim, tiles.c) * triton.cdiv(height * width, tiles.p),)
    _state_fusion_fwd_kernel[grid](
        h, kernel_rows(k1), kernel_rows(k3), kernel_rows(k5), alpha, out, *obs_args[:3],
        dim, height, width,
        *h.stride(), alpha.stride(0), *obs_args[3:],
        HAS_OBS=obs is not None, BLOCK_C=tiles.c, BLOCK_P=tiles.p, num_warps=tiles.warps,
    )
    return out
