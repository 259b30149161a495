"""Triton forward kernel of the selective scan that returns every state (docs/model.md step 5).

One program owns ``BLOCK_D`` channels and all ``N`` states of one batch row and walks the
sequence in blocks of ``BLOCK_L`` positions. Inside a block the linear recurrence
``h_t = a_t * h_{t-1} + b_t`` is one ``tl.associative_scan`` over ``(a, b)`` pairs; the state at
the block's last position is carried into the next block. ``delta + delta_bias`` and the
softplus are applied on the loads, so ``dt`` never exists in memory. Only products of decays
``exp(dt * A) <= 1`` inside one block are formed, so nothing overflows at any length.
"""
from typing import Optional

import torch
import triton
import triton.language as tl

from .. import _utils


@triton.jit
def _linear_combine(a_lo, b_lo, a_hi, b_hi):
    """Compose two steps of ``h -> a * h + b``: first ``lo``, then ``hi``."""
    return a_lo * a_hi, a_hi * b_lo + b_hi


@triton.jit
def _softplus(x):
    """``log(1 + exp(x))``, identity above 20 (torch's threshold), accurate for any ``x``.

    Computed as ``max(x, 0) + log1p(exp(-|x|))`` with Kahan's ``log1p``
    (``log(w) * y / (w - 1)``, ``w = 1 + y``), so tiny results keep their relative precision.
    """
    y = tl.exp(-tl.abs(x))
    w = 1.0 + y
    log1p = tl.where(w == 1.0, y, tl.log(w) * y / tl.where(w == 1.0, 1.0, w - 1.0))
    return tl.where(x > 20.0, x, tl.maximum(x, 0.0) + log1p)


@triton.jit(do_not_specialize=['L'])
def _selective_scan_fwd_kernel(
    u_ptr, delta_ptr, A_ptr, B_ptr, bias_ptr, h_ptr,
    D, N, L,
    stride_u_batch, stride_u_d, stride_u_l,
    stride_delta_batch, stride_delta_d, stride_delta_l,
    stride_A_d, stride_A_n,
    stride_B_batch, stride_B_n, stride_B_l,
    stride_bias_d,
    stride_h_batch, stride_h_d, stride_h_n, stride_h_l,
    HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr,
    BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_L: tl.constexpr,
):
    pid_d = tl.program_id(0)
    pid_b = tl.program_id(1).to(tl.int64)
    offs_d = pid_d * BLOCK_D + tl.arange(0, BLOCK_D)
    offs_n = tl.arange(0, BLOCK_N)
    offs_l = tl.arange(0, BLOCK_L)
    mask_d = offs_d < D
    mask_n = offs_n < N
    mask_dn = mask_d[:, None] & mask_n[None, :]

    A = tl.load(A_ptr + offs_d[:, None] * stride_A_d + offs_n[None, :] * stride_A_n,
                mask=mask_dn, other=0.0).to(tl.float32)                       # [D, N]
    if HAS_BIAS:
        bias = tl.load(bias_ptr + offs_d * stride_bias_d, mask=mask_d, other=0.0).to(tl.float32)

    u_row = u_ptr + pid_b * stride_u_batch + offs_d[:, None].to(tl.int64) * stride_u_d
    delta_row = delta_ptr + pid_b * stride_delta_batch + offs_d[:, None].to(tl.int64) * stride_delta_d
    B_row = B_ptr + pid_b * stride_B_batch + offs_n[:, None].to(tl.int64) * stride_B_n
    h_row = (h_ptr + pid_b * stride_h_batch
             + offs_d[:, None, None].to(tl.int64) * stride_h_d
             + offs_n[None, :, None].to(tl.int64) * stride_h_n)

    carry = tl.zeros([BLOCK_D, BLOCK_N], dtype=tl.float32)
    for start in range(0, L, BLOCK_L):
        pos = (start + offs_l).to(tl.int64)
        mask_l = pos < L
        mask_dl = mask_d[:, None] & mask_l[None, :]
        u = tl.load(u_row + pos[None, :] * stride_u_l, mask=mask_dl, other=0.0).to(tl.float32)
        dt = tl.load(delta_row + pos[None, :] * stride_delta_l, mask=mask_dl,
                     other=0.0).to(tl.float32)
        if HAS_BIAS:
            dt = dt + bias[:, None]
        if SOFTPLUS:
            dt = _softplus(dt)
        Bv = tl.load(B_row + pos[None, :] * stride_B_l, mask=mask_n[:, None] & mask_l[None, :],
                     other=0.0).to(tl.float32)                                # [N, L]
        # Positions past L get a = 1, b = 0, so the carry is the state at the last valid one.
        a = tl.where(mask_l[None, None, :], tl.exp(dt[:, None, :] * A[:, :, None]), 1.0)
        b = (dt * u)[:, None, :] * Bv[None, :, :]                             # [D, N, L]
        a_cum, b_cum = tl.associative_scan((a, b), 2, _linear_combine)
        h = a_cum * carry[:, :, None] + b_cum
        tl.store(h_row + pos[None, None, :] * stride_h_l, h.to(h_ptr.dtype.element_ty),
                 mask=mask_dn[:, :, None] & mask_l[None, None, :])
        carry = tl.sum(tl.where(offs_l[None, None, :] == BLOCK_L - 1, h, 0.0), axis=2)


def selective_scan_fwd(u: torch.Tensor, delta: torch.Tensor, A: torch.Tensor, B: torch.Tensor,
                       delta_bias: Optional[torch.Tensor], delta_softplus: bool,
                       out_dtype: Optional[torch.dtype] = None) -> torch.Tensor:
    """Launch the forward scan; returns h, (batch, D, N, L), in ``out_dtype`` (default u's).

    Arguments are those of ``mmspatialmamba.ops.selective_scan`` (already validated); any
    strides (``_utils.inner_contiguous``). Block sizes: ``_utils.scan_blocks``.
    """
    u, delta, B = (_utils.inner_contiguous(x) for x in (u, delta, B))
    batch, dim, length = u.shape
    d_state = A.shape[1]
    h = _utils.new_output(batch, dim, d_state, length, dtype=out_dtype or u.dtype,
                          device=u.device)
    blocks = _utils.scan_blocks(batch, dim, d_state, length, u.device)
    bias = delta_bias if delta_bias is not None else A  # never read when HAS_BIAS is False
    grid = (triton.cdiv(dim, blocks.d), batch)
    _selective_scan_fwd_kernel[grid](
        u, delta, A, B, bias, h,
        dim, d_state, length,
        *u.stride(), *delta.stride(), *A.stride(), *B.stride(), bias.stride(0), *h.stride(),
        HAS_BIAS=delta_bias is not None, SOFTPLUS=bool(delta_softplus),
        BLOCK_D=blocks.d, BLOCK_N=blocks.n, BLOCK_L=blocks.l, num_warps=blocks.warps,
    )
    return h
