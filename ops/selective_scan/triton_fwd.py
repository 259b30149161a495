"""Triton forward kernel of the selective scan that returns every state (docs/model.md step 5).

One program owns ``BLOCK_D`` channels and all ``N`` states of one batch row, and one chunk of
``chunk`` positions of the sequence, which it walks in blocks of ``BLOCK_L`` positions. Inside
a block the linear recurrence ``h_t = a_t * h_{t-1} + b_t`` is one ``tl.associative_scan`` over
``(a, b)`` pairs; the state at the block's last position is carried into the next block.
The loop prefetches the next block's inputs while it scans the current one (``tl.range`` with
``num_stages=2``: cp.async into shared memory on sm_80 and later, for 4-byte inputs; the
compiler leaves bf16 loads as they are), so a program's serial step is about the longer of
the memory latency and the block's scan, not their sum.
``delta + delta_bias`` and the softplus are applied on the loads, so ``dt`` never exists in
memory. Only products of decays ``exp(dt * A) <= 1`` inside one block are formed, so nothing
overflows at any length.

Chunked scan. When the rows (batch x channel blocks) cannot keep the memory busy (detection
stage 1 at batch 1, ``(1, 128, 67200)``: 128 rows), the sequence is cut into chunks of whole
blocks (``_utils.scan_blocks``) and the scan runs as two launches of this kernel:

1. summary (``SUMMARY``; every chunk but the last): walk the chunk from a zero state; write
   its end state and ``sum(dt)`` over it (float32, per row). With the chunk's log-decay
   ``A * sum(dt) <= 0`` they are the chunk as one step ``h -> exp(A sum dt) * h + end``.
2. main (every chunk): compose the summaries of the chunks before this one (one
   ``tl.associative_scan`` over at most ``_utils.MAX_SCAN_CHUNKS`` pairs, in registers) into
   the state entering the chunk, then scan the chunk from it and write h, as the one-chunk
   scan does.

Bytes, fp32, N = 1, (1, 128, 67200) in 6 chunks (u, delta and h are 34.4 MB each): the
summary reads u and delta of 5 chunks (57 MB), the main launch reads them all and writes h
(103 MB): 160 MB, against 103 MB for one chunk. The other way, writing each chunk's states
from a zero start and then fixing up every chunk but the first with
``h += exp(A cumsum(dt)) * carry``, moves 189 MB (103 MB, then h and delta read and h written
again for 5 chunks): recomputing is cheaper, since a summary writes nothing. What the chunks
buy is serial depth: a program walks 11 blocks of 1024 positions instead of 66, in 640 and
768 programs instead of 128 (model: docs/kernels.md, "Chunked scan").
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


@triton.jit
def _step_size(delta, bias, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr):
    """``dt = softplus(delta + bias)`` from loaded float32 ``delta`` [D, L] and ``bias`` [D]
    (not read without ``HAS_BIAS``); the softplus only with ``SOFTPLUS``."""
    if HAS_BIAS:
        delta = delta + bias[:, None]
    if SOFTPLUS:
        delta = _softplus(delta)
    return delta


@triton.jit
def _chunk_carry(A, dt_sum_ptr, end_ptr, row_dn, row_d, mask_dn, mask_d, first, step, count,
                 n_bounds, BOUNDS: tl.constexpr):
    """State entering a chunk, from the summaries of the chunks that lead to it.

    Summary ``i`` (of ``n_bounds``, at ``dt_sum_ptr + row_d * n_bounds + i`` and
    ``end_ptr + row_dn * n_bounds + i``) is the map ``h -> exp(A * dt_sum_i) * h + end_i``.
    Composes the ``count`` summaries ``first, first + step, ...`` in that order, starting
    from a zero state: ``[BLOCK_D, BLOCK_N]`` float32. ``BOUNDS``: a power of two >= count.
    Reads only the program's channels and states (``mask_dn`` [D, N], ``mask_d`` [D]): the
    padding lanes of a channel or state block point past the summaries.
    Log-decays are summed within one chunk only, so nothing overflows.
    """
    offs = tl.arange(0, BOUNDS)
    idx = first + step * offs
    valid = offs < count
    dt_sum = tl.load(dt_sum_ptr + row_d[:, None, None] * n_bounds + idx[None, None, :],
                     mask=mask_d[:, None, None] & valid[None, None, :], other=0.0)  # [D, 1, C]
    end = tl.load(end_ptr + row_dn[:, :, None] * n_bounds + idx[None, None, :],
                  mask=mask_dn[:, :, None] & valid[None, None, :], other=0.0)       # [D, N, C]
    # Invalid summaries are the identity (a = 1, b = 0): the last scanned pair is the carry.
    a = tl.where(valid[None, None, :], tl.exp(A[:, :, None] * dt_sum), 1.0)
    _, carried = tl.associative_scan((a, end), 2, _linear_combine)
    return tl.sum(tl.where(offs[None, None, :] == BOUNDS - 1, carried, 0.0), axis=2)


@triton.jit(do_not_specialize=['L', 'chunk', 'n_bounds'])
def _selective_scan_fwd_kernel(
    u_ptr, delta_ptr, A_ptr, B_ptr, bias_ptr, h_ptr, dt_sum_ptr, end_ptr,
    D, N, L, chunk, n_bounds,
    stride_u_batch, stride_u_d, stride_u_l,
    stride_delta_batch, stride_delta_d, stride_delta_l,
    stride_A_d, stride_A_n,
    stride_B_batch, stride_B_n, stride_B_l,
    stride_bias_d,
    stride_h_batch, stride_h_d, stride_h_n, stride_h_l,
    HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr, SUMMARY: tl.constexpr,
    BOUNDS: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_L: tl.constexpr,
):
    pid_d = tl.program_id(0)
    pid_b = tl.program_id(1).to(tl.int64)
    pid_c = tl.program_id(2)
    offs_d = pid_d * BLOCK_D + tl.arange(0, BLOCK_D)
    offs_n = tl.arange(0, BLOCK_N)
    offs_l = tl.arange(0, BLOCK_L)
    mask_d = offs_d < D
    mask_n = offs_n < N
    mask_dn = mask_d[:, None] & mask_n[None, :]

    A = tl.load(A_ptr + offs_d[:, None] * stride_A_d + offs_n[None, :] * stride_A_n,
                mask=mask_dn, other=0.0).to(tl.float32)                       # [D, N]
    bias = tl.zeros([BLOCK_D], dtype=tl.float32)
    if HAS_BIAS:
        bias = tl.load(bias_ptr + offs_d * stride_bias_d, mask=mask_d, other=0.0).to(tl.float32)

    u_row = u_ptr + pid_b * stride_u_batch + offs_d[:, None].to(tl.int64) * stride_u_d
    delta_row = (delta_ptr + pid_b * stride_delta_batch
                 + offs_d[:, None].to(tl.int64) * stride_delta_d)
    B_row = B_ptr + pid_b * stride_B_batch + offs_n[:, None].to(tl.int64) * stride_B_n
    h_row = (h_ptr + pid_b * stride_h_batch
             + offs_d[:, None, None].to(tl.int64) * stride_h_d
             + offs_n[None, :, None].to(tl.int64) * stride_h_n)
    # Summaries are contiguous (batch, D[, N], n_bounds); summary i is that of chunk i.
    row_d = pid_b * D + offs_d                                                 # [D]
    row_dn = row_d[:, None] * N + offs_n[None, :]                              # [D, N]

    # BOUNDS > 0: the main launch of a chunked scan, which starts from the summaries before.
    if BOUNDS > 0:
        carry = _chunk_carry(A, dt_sum_ptr, end_ptr, row_dn, row_d, mask_dn, mask_d, 0, 1,
                             pid_c, n_bounds, BOUNDS)
    else:
        carry = tl.zeros([BLOCK_D, BLOCK_N], dtype=tl.float32)
    dt_sum = tl.zeros([BLOCK_D], dtype=tl.float32)
    chunk_start = pid_c * chunk
    chunk_end = tl.minimum(chunk_start + chunk, L)
    for start in tl.range(0, chunk_end - chunk_start, BLOCK_L, num_stages=2):
        pos = (chunk_start + start + offs_l).to(tl.int64)
        mask_l = pos < chunk_end
        mask_dl = mask_d[:, None] & mask_l[None, :]
        u = tl.load(u_row + pos[None, :] * stride_u_l, mask=mask_dl, other=0.0).to(tl.float32)
        dt = _step_size(tl.load(delta_row + pos[None, :] * stride_delta_l, mask=mask_dl,
                                other=0.0).to(tl.float32), bias, HAS_BIAS, SOFTPLUS)
        Bv = tl.load(B_row + pos[None, :] * stride_B_l, mask=mask_n[:, None] & mask_l[None, :],
                     other=0.0).to(tl.float32)                                # [N, L]
        # Positions past the chunk get a = 1, b = 0, so the carry is the state at its last one.
        a = tl.where(mask_l[None, None, :], tl.exp(dt[:, None, :] * A[:, :, None]), 1.0)
        b = (dt * u)[:, None, :] * Bv[None, :, :]                             # [D, N, L]
        a_cum, b_cum = tl.associative_scan((a, b), 2, _linear_combine)
        h = a_cum * carry[:, :, None] + b_cum
        if SUMMARY:
            dt_sum += tl.sum(tl.where(mask_dl, dt, 0.0), axis=1)
        else:
            tl.store(h_row + pos[None, None, :] * stride_h_l, h.to(h_ptr.dtype.element_ty),
                     mask=mask_dn[:, :, None] & mask_l[None, None, :])
        carry = tl.sum(tl.where(offs_l[None, None, :] == BLOCK_L - 1, h, 0.0), axis=2)

    if SUMMARY:
        tl.store(dt_sum_ptr + row_d * n_bounds + pid_c, dt_sum, mask=mask_d)
        tl.store(end_ptr + row_dn * n_bounds + pid_c, carry, mask=mask_dn)


def selective_scan_fwd(u: torch.Tensor, delta: torch.Tensor, A: torch.Tensor, B: torch.Tensor,
                       delta_bias: Optional[torch.Tensor], delta_softplus: bool,
                       out_dtype: Optional[torch.dtype] = None) -> torch.Tensor:
    """Launch the forward scan; returns h, (batch, D, N, L), in ``out_dtype`` (default u's).

    Arguments are those of ``mmspatialmamba.ops.selective_scan`` (already validated); any
    strides (``_utils.inner_contiguous``). Block sizes and chunks: ``_utils.scan_blocks``;
    with more than one chunk, a summary launch precedes the main one (module docstring).
    """
    u, delta, B = (_utils.inner_contiguous(x) for x in (u, delta, B))
    batch, dim, length = u.shape
    d_state = A.shape[1]
    device = u.device
    h = _utils.new_output(batch, dim, d_state, length, dtype=out_dtype or u.dtype, device=device)
    blocks = _utils.scan_blocks(batch, dim, d_state, length, device)
    n_chunks = triton.cdiv(length, blocks.chunk)
    n_bounds = n_chunks - 1
    dt_sum, end = _utils.chunk_summaries(batch, dim, d_state, n_bounds, device, placeholder=h)
    bias = delta_bias if delta_bias is not None else A  # never read when HAS_BIAS is False

    def launch(chunks: int, summary: bool, bounds: int) -> None:
        _selective_scan_fwd_kernel[(triton.cdiv(dim, blocks.d), batch, chunks)](
            u, delta, A, B, bias, h, dt_sum, end,
            dim, d_state, length, blocks.chunk, n_bounds,
            *u.stride(), *delta.stride(), *A.stride(), *B.stride(), bias.stride(0),
            *h.stride(),
            HAS_BIAS=delta_bias is not None, SOFTPLUS=bool(delta_softplus), SUMMARY=summary,
            BOUNDS=bounds, BLOCK_D=blocks.d, BLOCK_N=blocks.n, BLOCK_L=blocks.l,
            num_warps=blocks.warps,
        )

    if n_bounds:
        launch(n_bounds, summary=True, bounds=0)
    launch(n_chunks, summary=False, bounds=triton.next_power_of_2(n_bounds) if n_bounds else 0)
    return h
