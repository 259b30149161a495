"""PyTorch reference of the selective scan that returns every state (docs/model.md step 5).

This is the CPU path and the ground truth the kernels are checked against. It loops in
Python over a fixed chunk size, never over every position: the sequence is cut into chunks of
``CHUNK`` positions, each chunk is scanned with a vectorised ``CHUNK``-step recurrence (all
chunks of all rows at once), the chunk-end states are combined by the same scan one level up
(recursively, so L = 67,200 costs 3 levels), and every chunk adds its incoming state times the
running product of its decays. The scan works on log-decays ``dt * A <= 0``: the product of
the decays within a chunk is ``exp(cumsum(dt * A))``, an exponent <= 0 that sums at most one
chunk, so nothing overflows at any length. ``cumsum`` and ``exp`` (rather than ``cumprod``,
which has no ONNX operator) keep the path exportable to standard ONNX (``docs/deploy.md``).
"""
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor

CHUNK = 32


def linear_scan(log_a: Tensor, b: Tensor, chunk: int = CHUNK) -> Tensor:
    """Inclusive scan ``h_t = exp(log_a_t) * h_{t-1} + b_t`` along the last dim, ``h_{-1} = 0``.

    Args:
        log_a: Log-decays, (..., L), any float dtype; expected <= 0 for stability.
        b: Inputs, (..., L), same shape and dtype as ``log_a``.
        chunk: Positions per chunk (the length of the Python loop at each level).

    Returns:
        Every state h_t, (..., L).
    """
    length = log_a.shape[-1]
    if length <= chunk:
        a = torch.exp(log_a)
        states = []
        h = torch.zeros_like(b[..., 0])
        for t in range(length):
            h = a[..., t] * h + b[..., t]
            states.append(h)
        return torch.stack(states, dim=-1)

    pad = -length % chunk
    la_c = F.pad(log_a, (0, pad), value=0.0).unflatten(-1, (-1, chunk))  # (..., n_chunks, chunk)
    b_c = F.pad(b, (0, pad), value=0.0).unflatten(-1, (-1, chunk))
    local = linear_scan(la_c, b_c, chunk)          # states of each chunk started from zero
    log_decay = torch.cumsum(la_c, dim=-1)         # log decay from the chunk's start
    # State at each chunk's end, carried across chunks by the same recurrence one level up.
    carried = linear_scan(log_decay[..., -1], local[..., -1], chunk)
    incoming = F.pad(carried[..., :-1], (1, 0))   # state entering each chunk (zero for the first)
    h = local + torch.exp(log_decay) * incoming.unsqueeze(-1)
    return h.flatten(-2)[..., :length]


def discretize(u: Tensor, delta: Tensor, A: Tensor, B: Tensor, delta_bias: Optional[Tensor],
               delta_softplus: bool) -> tuple:
    """Log-decays ``dt * A`` and inputs ``dt * B * u`` of the scan, in float32.

    Args:
        u, delta: (batch, D, L). A: (D, N). B: (batch, N, L). delta_bias: (D,) or None.
        delta_softplus: Apply softplus to ``delta + delta_bias`` (identity above 20).

    Returns:
        ``(log_decay, inp)``, each (batch, D, N, L) float32.
    """
    dt = delta.float()
    if delta_bias is not None:
        dt = dt + delta_bias.float()[:, None]
    if delta_softplus:
        dt = F.softplus(dt, beta=1.0, threshold=20.0)
    log_decay = dt[:, :, None, :] * A.float()[None, :, :, None]
    inp = (dt * u.float())[:, :, None, :] * B.float()[:, None, :, :]
    return log_decay, inp


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
        States h, (batch, D, N, L), dtype of ``u``.
    """
    log_decay, inp = discretize(u, delta, A, B, delta_bias, delta_softplus)
    return linear_scan(log_decay, inp).to(u.dtype)
