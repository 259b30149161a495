"""PyTorch reference of the structure-aware SSM core: scan, fusion, observation (docs/model.md steps 5-7)."""
from typing import Optional, Sequence

from torch import Tensor

from ..selective_scan.reference import selective_scan_ref
from ..state_fusion.reference import state_fusion_ref


def sasf_states(u: Tensor, delta: Tensor, A: Tensor, B: Tensor, delta_bias: Optional[Tensor],
                delta_softplus: bool = True) -> Tensor:
    """The scan's states in float32, (batch, D, 1, L); arguments as
    ``structure_aware_ssm_ref``."""
    return selective_scan_ref(u.float(), delta.float(), A, B.float(), delta_bias, delta_softplus)


def fuse_and_observe(h: Tensor, u: Tensor, C: Tensor, D: Tensor, k1: Tensor, k3: Tensor,
                     k5: Tensor, alpha: Tensor, hw: Sequence[int]) -> Tensor:
    """``y = C * fusion(h) + D * u`` from the float32 states ``h``, (batch, D, 1, L); other
    arguments as ``structure_aware_ssm_ref``. Returns y, (batch, D, L), dtype of ``u``."""
    batch, dim, length = u.shape
    fused = state_fusion_ref(h.view(batch, dim, *hw), k1, k3, k5, alpha).view(batch, dim, length)
    y = fused * C.float() + u.float() * D.float()[:, None]
    return y.to(u.dtype)


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
        y, (batch, D, L), dtype of ``u``.
    """
    h = sasf_states(u, delta, A, B, delta_bias, delta_softplus)
    return fuse_and_observe(h, u, C, D, k1, k3, k5, alpha, hw)
