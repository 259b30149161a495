"""PyTorch reference of the selective scan that returns every state (docs/model.md step 5).

This is the CPU path and the fallback of the kernels. It works time-major: states are
(batch, L, width) with the channels innermost, so each step of the recurrence reads and writes
contiguous rows of channels, and a channels-last map from the model's convolution needs no
copy. The sequence is cut into chunks of ``CHUNK`` positions (fewer for short sequences).
A first Python loop walks the positions of all chunks at once, keeping only each chunk's
final state (started from zero) and the product of its decays; the same scan over those
summaries, one level up (recursively, so L = 67,200 takes 4 levels), gives the state entering
each chunk; a last loop walks the positions again from each chunk's incoming state and writes
every state once. That is about ``3 * CHUNK`` small PyTorch operations per level (about 110 at
L = 3,136) instead of one per position, each on (batch, L / CHUNK, width) rows large enough
for ATen to split across threads, and five passes over the (batch, L, width) tensors: the two
inputs read twice, the states written once. Decays ``exp(dt * A)`` lie in [0, 1] for
``dt * A <= 0`` and only their products are formed, so nothing overflows at any length.

The backward is the same scan run in reverse over the output gradient (the adjoint of a
linear recurrence is a linear recurrence), written out in :class:`_LinearScan` rather than
left to autograd, which would keep every step's intermediate and replay ~4 operations per
step. Every operation is a standard ONNX operator (``docs/deploy.md``).
"""
import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor

CHUNK = 16   # positions per chunk at most: 3 * CHUNK operations per level on L / CHUNK rows


def _chunked_scan(a: Tensor, b: Tensor, reverse: bool = False) -> Tensor:
    """``h_t = a_t * h_{t-1} + b_t`` (``reverse``: ``h_t = a_t * h_{t+1} + b_t``) along dim 1.

    Args:
        a, b: Decays and inputs, (batch, L, width), contiguous, same dtype.
        reverse: Scan from the last position to the first.

    Returns:
        Every state, (batch, L, width); the state before the first step is zero.
    """
    batch, length, width = b.shape
    size = min(CHUNK, math.isqrt(max(length - 1, 0)) + 1)     # positions per chunk
    n_chunks = -(-length // size)
    pad = n_chunks * size - length
    if pad:   # zero inputs after the end: the padded states never reach a real position
        a, b = F.pad(a, (0, 0, 0, pad)), F.pad(b, (0, 0, 0, pad))
    # Per position t: (batch, n_chunks, width) views of every chunk's t-th position.
    a_t, b_t = (x.view(batch, n_chunks, size, width).unbind(2) for x in (a, b))
    order = range(size - 1, -1, -1) if reverse else range(size)
    # Pass 1: each chunk's final state started from zero, and the product of its decays,
    # (batch, n_chunks, width); no per-position output.
    h = e = None
    for t in order:
        if h is None:
            h, e = b_t[t], a_t[t]
        else:
            h, e = torch.addcmul(b_t[t], a_t[t], h), e * a_t[t]
    # Carry across chunks: the same scan over the chunks' summaries gives the state after
    # each chunk; shifted by one chunk, the state entering it.
    if n_chunks == 1:
        incoming = torch.zeros_like(h)
    else:
        after = _chunked_scan(e.contiguous(), h.contiguous(), reverse)
        incoming = F.pad(after[:, 1:], (0, 0, 0, 1)) if reverse else \
            F.pad(after[:, :-1], (0, 0, 1, 0))
    # Pass 2: every chunk again, from its incoming state, writing each state once.
    prev = incoming
    if torch.compiler.is_compiling():
        # Traced (torch.compile, ONNX export): functional steps, stacked once. An out= write
        # into a strided slice breaks Dynamo's graph and exports as one ScatterElements of
        # the whole state tensor per step.
        steps = [None] * size
        for t in order:
            prev = steps[t] = torch.addcmul(b_t[t], a_t[t], prev)
        states = torch.stack(steps, 2)
    else:   # eager: straight into the output (no autograd runs here, see _LinearScan)
        states = torch.empty_like(b).view(batch, n_chunks, size, width)
        h_t = states.unbind(2)
        for t in order:
            prev = torch.addcmul(b_t[t], a_t[t], prev, out=h_t[t])
    return states.view(batch, n_chunks * size, width)[:, :length]


class _LinearScan(torch.autograd.Function):
    """:func:`linear_scan` with its adjoint: for ``h_t = a_t h_{t-1} + b_t`` and upstream
    ``g``, ``db_t = s_t`` with ``s_t = g_t + a_{t+1} s_{t+1}`` (a reverse scan) and
    ``da_t = s_t h_{t-1}``."""

    @staticmethod
    def forward(a: Tensor, b: Tensor) -> Tensor:
        return _chunked_scan(a, b)

    @staticmethod
    def setup_context(ctx, inputs, output):    # separate, so torch.func transforms work
        ctx.save_for_backward(inputs[0], output)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: Tensor):
        a, h = ctx.saved_tensors
        a_next = F.pad(a[:, 1:], (0, 0, 0, 1))
        grad_b = _chunked_scan(a_next, grad.contiguous(), reverse=True)
        grad_a = F.pad(grad_b[:, 1:] * h[:, :-1], (0, 0, 1, 0))
        return grad_a, grad_b


def linear_scan(a: Tensor, b: Tensor) -> Tensor:
    """Inclusive scan ``h_t = a_t * h_{t-1} + b_t`` along dim 1, ``h_{-1} = 0``.

    Args:
        a: Decays, (batch, L, width), any float dtype; in [0, 1] for stability.
        b: Inputs, same shape and dtype as ``a``.

    Returns:
        Every state h_t, (batch, L, width), contiguous.
    """
    return _LinearScan.apply(a.contiguous(), b.contiguous())


def discretize(u: Tensor, delta: Tensor, A: Tensor, B: Tensor, delta_bias: Optional[Tensor],
               delta_softplus: bool) -> tuple:
    """Decays ``exp(dt * A)`` and inputs ``dt * B * u`` of the scan, time-major, in float32.

    Args:
        u, delta: (batch, D, L). A: (D, N). B: (batch, N, L). delta_bias: (D,) or None.
        delta_softplus: Apply softplus to ``delta + delta_bias`` (identity above 20).

    Returns:
        ``(decay, inp)``, each (batch, L, D * N) float32, contiguous.
    """
    dt = delta.float().transpose(1, 2)                               # (batch, L, D)
    if delta_bias is not None:
        dt = dt + delta_bias.float()
    if delta_softplus:
        dt = F.softplus(dt, beta=1.0, threshold=20.0)
    dt = dt.contiguous()
    decay = torch.exp(dt[..., None] * A.float())                     # (batch, L, D, N)
    inp = (dt * u.float().transpose(1, 2))[..., None] * B.float().transpose(1, 2)[:, :, None]
    return decay.flatten(2), inp.contiguous().flatten(2)


def scan_time_major(u: Tensor, delta: Tensor, A: Tensor, B: Tensor,
                    delta_bias: Optional[Tensor], delta_softplus: bool) -> Tensor:
    """Every state of the selective scan, time-major: (batch, L, D, N) float32, contiguous;
    arguments as :func:`selective_scan_ref`."""
    decay, inp = discretize(u, delta, A, B, delta_bias, delta_softplus)
    return linear_scan(decay, inp).view(*decay.shape[:2], *A.shape)


def selective_scan_ref(u: Tensor, delta: Tensor, A: Tensor, B: Tensor,
                       delta_bias: Optional[Tensor] = None,
                       delta_softplus: bool = True) -> Tensor:
    """Every state of the selective scan, computed in float32 (docs/model.md step 5).

    ``h_t = exp(dt_t * A) * h_{t-1} + dt_t * B_t * u_t`` with
    ``dt = softplus(delta + delta_bias)``.

    Args:
        u: Inputs, (batch, D, L). delta: Step sizes before bias/softplus, (batch, D, L).
        A: State matrix (negative), (D, N). B: Input projections, (batch, N, L).
        delta_bias: (D,) or None. delta_softplus: Whether to apply softplus.

    Returns:
        States h, (batch, D, N, L), dtype of ``u`` (a view of time-major memory).
    """
    h = scan_time_major(u, delta, A, B, delta_bias, delta_softplus)
    return h.permute(0, 2, 3, 1).to(u.dtype)
