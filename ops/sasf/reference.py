"""PyTorch reference of the structure-aware SSM core: scan, fusion, observation (docs/model.md
steps 5-7).

Time-major throughout: the scan's states (batch, L, D) are, viewed as (batch, D, H, W), a
channels-last map, which is what the fusion's convolutions want, and the output y is returned
as a (batch, D, L) view of (batch, L, D) memory, which the model reads back as channels-last
(batch, H, W, D) without a copy.
"""
from typing import Optional, Sequence

import torch
from torch import Tensor

from ..selective_scan.reference import scan_time_major
from ..state_fusion.reference import state_fusion_ref


def sasf_states(u: Tensor, delta: Tensor, A: Tensor, B: Tensor, delta_bias: Optional[Tensor],
                delta_softplus: bool = True) -> Tensor:
    """The scan's states in float32, (batch, D, 1, L) (a view of time-major memory);
    arguments as ``structure_aware_ssm_ref``."""
    return scan_time_major(u, delta, A, B, delta_bias, delta_softplus).permute(0, 2, 3, 1)


def _fuse_and_observe(h: Tensor, u: Tensor, C: Tensor, D: Tensor, k1: Tensor, k3: Tensor,
                      k5: Tensor, alpha: Tensor, hw: Sequence[int]) -> Tensor:
    """``y = C * fusion(h) + D * u`` from float32 states ``h`` (batch, L, D) time-major;
    returns y, (batch, D, L) float32, a view of (batch, L, D) memory."""
    batch, length, dim = h.shape
    maps = h.view(batch, *hw, dim).permute(0, 3, 1, 2)                  # channels-last
    fused = state_fusion_ref(maps, k1, k3, k5, alpha).permute(0, 2, 3, 1).reshape(h.shape)
    y = torch.addcmul(u.float().transpose(1, 2) * D.float(), fused, C.float().transpose(1, 2))
    return y.transpose(1, 2)


def fuse_and_observe(h: Tensor, u: Tensor, C: Tensor, D: Tensor, k1: Tensor, k3: Tensor,
                     k5: Tensor, alpha: Tensor, hw: Sequence[int]) -> Tensor:
    """``y = C * fusion(h) + D * u`` from the float32 states ``h``, (batch, D, 1, L); other
    arguments as ``structure_aware_ssm_ref``. Returns y, (batch, D, L), dtype of ``u``."""
    h = h.flatten(1, 2).transpose(1, 2).contiguous()
    return _fuse_and_observe(h, u, C, D, k1, k3, k5, alpha, hw).to(u.dtype)


def structure_aware_ssm_ref(u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor,
                            D: Tensor, delta_bias: Optional[Tensor], k1: Tensor, k3: Tensor,
                            k5: Tensor, alpha: Tensor, hw: Sequence[int],
                            delta_softplus: bool = True) -> Tensor:
    """``y = C * fusion(scan(u, delta, A, B)) + D * u`` for d_state N = 1, in float32.

    Args:
        u, delta: (batch, D, L) with L = H*W row-major. A: (D, 1). B, C: (batch, 1, L).
        D: Skip weights, (D,). delta_bias: (D,) or None. k1, k3, k5: (D, 1, 3, 3).
        alpha: (3,). hw: (H, W). delta_softplus: Whether to apply softplus to delta.

    Returns:
        y, (batch, D, L), dtype of ``u``: a view of (batch, L, D) memory.
    """
    h = scan_time_major(u, delta, A, B, delta_bias, delta_softplus).flatten(2)
    return _fuse_and_observe(h, u, C, D, k1, k3, k5, alpha, hw).to(u.dtype)
