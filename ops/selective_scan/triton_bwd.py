"""Triton backward kernel of the selective scan (docs/model.md step 5).

With ``g_t = dL/dh_t`` the total gradient reaching state ``t`` (``dh_t`` plus what flows back
through later states), ``g_t = dh_t + a_{t+1} * g_{t+1}`` is a linear recurrence run in reverse.
One program owns ``BLOCK_D`` channels of one batch row and one chunk of the sequence, and
walks the chunk's blocks from its end, scanning each block with ``tl.associative_scan`` in
decreasing position order and carrying ``g`` at the block's lowest position into the next
block (not software-pipelined as the forward is: its SASF variant then spills on sm_80 in
bf16, and where it matters it is bandwidth-bound). The states ``h_{t-1}`` are read back from
the forward output instead of being recomputed. Then, with ``a_t = exp(dt_t A)`` and
``b_t = dt_t B_t u_t``:

``du = sum_n g dt B``, ``dB = sum_d g dt u``, ``ddt = sum_n g (B u + h_{t-1} a_t A)``,
``dA = sum_{b,t} g h_{t-1} a_t dt``, ``ddelta = ddt * sigmoid(delta + bias)`` (softplus
derivative; 1 above 20), ``dbias = sum_{b,t} ddelta``.

Reductions over channels (``dB``) and over positions (``dA``, ``dbias``, and the skip weight
``dD`` when the scan is part of the fused SASF op) are written as per-program partial sums and
summed by the launcher with ``torch.sum``: deterministic, no atomics.

Chunked scan (where ``_utils.scan_blocks`` says): the forward's two launches in reverse
(``triton_fwd``). The summary launch (``SUMMARY``; every chunk but the first) runs only the
adjoint recurrence over its chunk, from a zero ``g`` after it, and writes ``g`` at the
chunk's first position and ``sum(dt_{t+1})`` over the chunk's positions t (over ``A``, the
log-decay that carries ``g`` from the next chunk's first position back to this one's). The
main launch composes the summaries of the chunks after its own, from the last one down,
into ``g`` at the position after its chunk, then runs the full backward over the chunk.
Bytes, fp32, N = 1, (1, 128, 67200) in 6 chunks: the summary reads dh and delta of 5 chunks
(57 MB) next to the main launch's 241 MB (dh, u, delta, h read; du, ddelta and dB's partial
sums written). Running the full backward per chunk from a zero ``g`` and correcting after
would cost more: du, ddelta, dB, dA and dbias are all linear in ``g``, and correcting them
means reading u, B, h and delta again.
"""
from typing import Optional

import torch
import triton
import triton.language as tl

from .. import _utils
from .triton_fwd import _chunk_carry, _linear_combine, _step_size


@triton.jit(do_not_specialize=['L', 'chunk', 'n_bounds'])
def _selective_scan_bwd_kernel(
    dh_ptr, u_ptr, delta_ptr, A_ptr, B_ptr, bias_ptr, h_ptr, dy_ptr, skip_ptr,
    du_ptr, ddelta_ptr, dB_part_ptr, dA_part_ptr, dbias_part_ptr, dskip_part_ptr,
    dt_sum_ptr, start_ptr,
    D, N, L, batch, chunk, n_bounds,
    stride_dh_batch, stride_dh_d, stride_dh_n, stride_dh_l,
    stride_u_batch, stride_u_d, stride_u_l,
    stride_delta_batch, stride_delta_d, stride_delta_l,
    stride_A_d, stride_A_n,
    stride_B_batch, stride_B_n, stride_B_l,
    stride_bias_d,
    stride_h_batch, stride_h_d, stride_h_n, stride_h_l,
    stride_dy_batch, stride_dy_d, stride_dy_l,
    stride_skip_d,
    HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr, HAS_SKIP: tl.constexpr,
    SUMMARY: tl.constexpr, BOUNDS: tl.constexpr,
    BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_L: tl.constexpr,
):
    pid_d = tl.program_id(0)
    pid_b = tl.program_id(1).to(tl.int64)
    pid_c = tl.program_id(2)
    if SUMMARY:         # the summary launch covers chunks 1.. (summary i starts chunk i + 1)
        pid_c += 1
    offs_d = pid_d * BLOCK_D + tl.arange(0, BLOCK_D)
    offs_n = tl.arange(0, BLOCK_N)
    offs_l = tl.arange(0, BLOCK_L)
    mask_d = offs_d < D
    mask_n = offs_n < N
    mask_dn = mask_d[:, None] & mask_n[None, :]
    d64 = offs_d.to(tl.int64)
    n64 = offs_n.to(tl.int64)

    A = tl.load(A_ptr + offs_d[:, None] * stride_A_d + offs_n[None, :] * stride_A_n,
                mask=mask_dn, other=0.0).to(tl.float32)                       # [D, N]
    bias = tl.zeros([BLOCK_D], dtype=tl.float32)
    if HAS_BIAS:
        bias = tl.load(bias_ptr + offs_d * stride_bias_d, mask=mask_d, other=0.0).to(tl.float32)
    if HAS_SKIP:
        skip = tl.load(skip_ptr + offs_d * stride_skip_d, mask=mask_d, other=0.0).to(tl.float32)

    u_row = u_ptr + pid_b * stride_u_batch + d64[:, None] * stride_u_d
    delta_row = delta_ptr + pid_b * stride_delta_batch + d64[:, None] * stride_delta_d
    B_row = B_ptr + pid_b * stride_B_batch + n64[:, None] * stride_B_n
    dn_h = d64[:, None, None] * stride_h_d + n64[None, :, None] * stride_h_n
    h_row = h_ptr + pid_b * stride_h_batch + dn_h
    dh_row = (dh_ptr + pid_b * stride_dh_batch + d64[:, None, None] * stride_dh_d
              + n64[None, :, None] * stride_dh_n)
    dy_row = dy_ptr + pid_b * stride_dy_batch + d64[:, None] * stride_dy_d
    # Outputs du, ddelta are contiguous (batch, D, L); dB_part is (n_dblocks, batch, N, L).
    out_row = (pid_b * D + d64[:, None]) * L
    dB_row = ((pid_d * batch + pid_b) * N + n64[:, None]) * L
    row_d = pid_b * D + d64                                                    # [D]
    row_dn = row_d[:, None] * N + n64[None, :]                                 # [D, N]

    if BOUNDS > 0:      # g at the position after the chunk, from the chunks after it
        carry = _chunk_carry(A, dt_sum_ptr, start_ptr, row_dn, row_d, mask_dn, mask_d,
                             n_bounds - 1, -1, n_bounds - pid_c, n_bounds, BOUNDS)
    else:
        carry = tl.zeros([BLOCK_D, BLOCK_N], dtype=tl.float32)
    dA_acc = tl.zeros([BLOCK_D, BLOCK_N], dtype=tl.float32)
    dt_sum = tl.zeros([BLOCK_D], dtype=tl.float32)
    dbias_acc = tl.zeros([BLOCK_D], dtype=tl.float32)
    dskip_acc = tl.zeros([BLOCK_D], dtype=tl.float32)
    chunk_start = pid_c * chunk
    chunk_end = tl.minimum(chunk_start + chunk, L)
    for start in range(0, chunk_end - chunk_start, BLOCK_L):
        pos = (chunk_end - 1 - start - offs_l).to(tl.int64)   # decreasing positions
        mask_l = pos >= chunk_start
        mask_dl = mask_d[:, None] & mask_l[None, :]
        mask_dnl = mask_dn[:, :, None] & mask_l[None, None, :]

        mask_next = mask_dl & (pos[None, :] + 1 < L)        # dt_{t+1} exists
        dt_next = _step_size(tl.load(delta_row + (pos[None, :] + 1) * stride_delta_l,
                                     mask=mask_next, other=0.0).to(tl.float32),
                             bias, HAS_BIAS, SOFTPLUS)
        # Decay from position t to t+1; 1 on padding lanes so the carry passes through them.
        a_next = tl.where(mask_l[None, None, :], tl.exp(dt_next[:, None, :] * A[:, :, None]), 1.0)
        dh = tl.load(dh_row + pos[None, None, :] * stride_dh_l, mask=mask_dnl,
                     other=0.0).to(tl.float32)
        a_cum, b_cum = tl.associative_scan((a_next, dh), 2, _linear_combine)
        g = a_cum * carry[:, :, None] + b_cum                                # [D, N, L]
        carry = tl.sum(tl.where(offs_l[None, None, :] == BLOCK_L - 1, g, 0.0), axis=2)
        if SUMMARY:
            dt_sum += tl.sum(tl.where(mask_next, dt_next, 0.0), axis=1)
        else:
            g = tl.where(mask_dnl, g, 0.0)
            x = _step_size(tl.load(delta_row + pos[None, :] * stride_delta_l, mask=mask_dl,
                                   other=0.0).to(tl.float32), bias, HAS_BIAS, False)
            dt = _step_size(x, bias, False, SOFTPLUS)         # x before the softplus: its slope
            mask_nl = mask_n[:, None] & mask_l[None, :]
            u = tl.load(u_row + pos[None, :] * stride_u_l, mask=mask_dl, other=0.0).to(tl.float32)
            Bv = tl.load(B_row + pos[None, :] * stride_B_l, mask=mask_nl, other=0.0).to(tl.float32)
            h_prev = tl.load(h_row + (pos[None, None, :] - 1) * stride_h_l,
                             mask=mask_dnl & (pos[None, None, :] >= 1), other=0.0).to(tl.float32)
            a = tl.exp(dt[:, None, :] * A[:, :, None])
            gB = g * Bv[None, :, :]
            gha = g * h_prev * a                                                 # dL/d(dt*A)
            ddt = tl.sum(gB * u[:, None, :] + gha * A[:, :, None], axis=1)      # [D, L]
            du = tl.sum(gB, axis=1) * dt
            if HAS_SKIP:
                dy = tl.load(dy_row + pos[None, :] * stride_dy_l, mask=mask_dl,
                             other=0.0).to(tl.float32)
                du += dy * skip[:, None]
                dskip_acc += tl.sum(dy * u, axis=1)
            dB = tl.sum(g * (dt * u)[:, None, :], axis=0)                        # [N, L]
            dA_acc += tl.sum(gha * dt[:, None, :], axis=2)
            if SOFTPLUS:
                ddt = ddt * tl.where(x > 20.0, 1.0, tl.sigmoid(x))
            ddt = tl.where(mask_dl, ddt, 0.0)
            dbias_acc += tl.sum(ddt, axis=1)

            tl.store(du_ptr + out_row + pos[None, :], du.to(du_ptr.dtype.element_ty),
                     mask=mask_dl)
            tl.store(ddelta_ptr + out_row + pos[None, :], ddt.to(ddelta_ptr.dtype.element_ty),
                     mask=mask_dl)
            tl.store(dB_part_ptr + dB_row + pos[None, :], dB, mask=mask_nl)

    if SUMMARY:
        tl.store(dt_sum_ptr + row_d * n_bounds + pid_c - 1, dt_sum, mask=mask_d)
        tl.store(start_ptr + row_dn * n_bounds + pid_c - 1, carry, mask=mask_dn)
    else:
        # Partial sums are (n_chunks, batch, D[, N]).
        part = (pid_c * batch + pid_b) * D + d64
        tl.store(dA_part_ptr + part[:, None] * N + offs_n[None, :], dA_acc, mask=mask_dn)
        tl.store(dbias_part_ptr + part, dbias_acc, mask=mask_d)
        if HAS_SKIP:
            tl.store(dskip_part_ptr + part, dskip_acc, mask=mask_d)


def selective_scan_bwd(dh: torch.Tensor, u: torch.Tensor, delta: torch.Tensor, A: torch.Tensor,
                       B: torch.Tensor, delta_bias: Optional[torch.Tensor], h: torch.Tensor,
                       delta_softplus: bool, dy: Optional[torch.Tensor] = None,
                       skip: Optional[torch.Tensor] = None) -> tuple:
    """Gradients of the scan from ``dh`` (batch, D, N, L) and the forward's states ``h``.

    With ``dy`` (batch, D, L) and ``skip`` (D,) also adds the skip term ``y += skip * u`` of the
    SASF observation: ``du += dy * skip`` and returns ``dskip = sum dy * u``. Block sizes and
    chunks: ``_utils.scan_blocks``; with more than one chunk, a summary launch precedes the
    main one (module docstring).

    Returns:
        ``(du, ddelta, dA, dB, dbias, dskip)``: du/ddelta in the dtype of u/delta, dB in B's,
        dA in A's; ``dbias`` (delta_bias's dtype) and ``dskip`` (skip's dtype) are None when
        the input is absent.
    """
    dh, u, delta, B, h = (_utils.inner_contiguous(x) for x in (dh, u, delta, B, h))
    has_skip = dy is not None
    if has_skip:
        dy = _utils.inner_contiguous(dy)
    batch, dim, length = u.shape
    d_state = A.shape[1]
    blocks = _utils.scan_blocks(batch, dim, d_state, length, u.device, backward=True)
    n_dblocks = triton.cdiv(dim, blocks.d)
    n_chunks = triton.cdiv(length, blocks.chunk)
    n_bounds = n_chunks - 1
    device = u.device
    du = _utils.new_output(batch, dim, length, dtype=u.dtype, device=device)
    ddelta = _utils.new_output(batch, dim, length, dtype=delta.dtype, device=device)
    dB_part = _utils.new_output(n_dblocks, batch, d_state, length, dtype=torch.float32,
                                device=device)
    dA_part = _utils.new_output(n_chunks, batch, dim, d_state, dtype=torch.float32,
                                device=device)
    dbias_part = _utils.new_output(n_chunks, batch, dim, dtype=torch.float32, device=device)
    dskip_part = (_utils.new_output(n_chunks, batch, dim, dtype=torch.float32, device=device)
                  if has_skip else dbias_part)
    dt_sum, g_start = _utils.chunk_summaries(batch, dim, d_state, n_bounds, device,
                                             placeholder=dA_part)
    bias = delta_bias if delta_bias is not None else A    # placeholders are never read
    dy_arg = dy if has_skip else u
    skip_arg = skip if has_skip else A

    def launch(chunks: int, summary: bool, bounds: int) -> None:
        _selective_scan_bwd_kernel[(n_dblocks, batch, chunks)](
            dh, u, delta, A, B, bias, h, dy_arg, skip_arg,
            du, ddelta, dB_part, dA_part, dbias_part, dskip_part, dt_sum, g_start,
            dim, d_state, length, batch, blocks.chunk, n_bounds,
            *dh.stride(), *u.stride(), *delta.stride(), *A.stride(), *B.stride(),
            bias.stride(0), *h.stride(), *dy_arg.stride(), skip_arg.stride(0),
            HAS_BIAS=delta_bias is not None, SOFTPLUS=bool(delta_softplus), HAS_SKIP=has_skip,
            SUMMARY=summary, BOUNDS=bounds,
            BLOCK_D=blocks.d, BLOCK_N=blocks.n, BLOCK_L=blocks.l, num_warps=blocks.warps,
        )

    if n_bounds:
        launch(n_bounds, summary=True, bounds=0)
    launch(n_chunks, summary=False, bounds=triton.next_power_of_2(n_bounds) if n_bounds else 0)
    dB = dB_part.sum(0).to(B.dtype)
    dA = dA_part.sum((0, 1)).to(A.dtype)
    dbias = dbias_part.sum((0, 1)).to(delta_bias.dtype) if delta_bias is not None else None
    dskip = dskip_part.sum((0, 1)).to(skip.dtype) if has_skip else None
    return du, ddelta, dA, dB, dbias, dskip
