"""The Triton state fusion as ``torch.library`` custom ops with a registered autograd.

``mmspatialmamba::state_fusion_fwd`` / ``mmspatialmamba::state_fusion_bwd``: opaque to
``torch.compile`` through their fake implementations, registered for every device (CPU runs
them under the Triton interpreter).
"""
from typing import Tuple

import torch

from .triton_bwd import state_fusion_bwd
from .triton_fwd import state_fusion_fwd


@torch.library.custom_op('mmspatialmamba::state_fusion_fwd', mutates_args=())
def _fusion_fwd(h: torch.Tensor, k1: torch.Tensor, k3: torch.Tensor, k5: torch.Tensor,
                alpha: torch.Tensor) -> torch.Tensor:
    return state_fusion_fwd(h, k1, k3, k5, alpha)


@_fusion_fwd.register_fake
def _(h, k1, k3, k5, alpha):
    return h.new_empty(h.shape)


@torch.library.custom_op('mmspatialmamba::state_fusion_bwd', mutates_args=())
def _fusion_bwd(dout: torch.Tensor, h: torch.Tensor, k1: torch.Tensor, k3: torch.Tensor,
                k5: torch.Tensor, alpha: torch.Tensor
                ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    dh, dk1, dk3, dk5, dalpha, _ = state_fusion_bwd(dout, h, k1, k3, k5, alpha)
    return dh, dk1, dk3, dk5, dalpha


@_fusion_bwd.register_fake
def _(dout, h, k1, k3, k5, alpha):
    return (h.new_empty(h.shape), k1.new_empty(k1.shape), k3.new_empty(k3.shape),
            k5.new_empty(k5.shape), alpha.new_empty(alpha.shape))


def _setup_context(ctx, inputs, output):
    ctx.save_for_backward(*inputs)


def _backward(ctx, dout):
    return _fusion_bwd(dout, *ctx.saved_tensors)


_fusion_fwd.register_autograd(_backward, setup_context=_setup_context)


def state_fusion_triton(h: torch.Tensor, k1: torch.Tensor, k3: torch.Tensor, k5: torch.Tensor,
                        alpha: torch.Tensor) -> torch.Tensor:
    """State fusion on the Triton kernels; arguments as ``mmspatialmamba.ops.state_fusion``
    (validated by the caller). Returns (batch, D, H, W), dtype of ``h``."""
    return _fusion_fwd(h, k1, k3, k5, alpha)
