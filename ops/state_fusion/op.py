"""The Triton state fusion as ``torch.library`` custom ops with a registered autograd.

``mmspatialmamba::state_fusion_fwd`` / ``mmspatialmamba::state_fusion_bwd``: opaque to
``torch.compile`` through their fake implementations, registered for every device (CPU runs
them under the Triton interpreter). With ``may_fall_back`` each op runs the PyTorch reference
where its kernels cannot compile or launch (``.._fallback``).
"""
from typing import Tuple

import torch

from .._fallback import reference_grads, run_kernels
from .reference import state_fusion_ref
from .triton_bwd import state_fusion_bwd
from .triton_fwd import state_fusion_fwd


@torch.library.custom_op('mmspatialmamba::state_fusion_fwd', mutates_args=())
def _fusion_fwd(h: torch.Tensor, k1: torch.Tensor, k3: torch.Tensor, k5: torch.Tensor,
                alpha: torch.Tensor, may_fall_back: bool) -> torch.Tensor:
    return run_kernels('state_fusion_fwd', h.device, may_fall_back,
                       lambda: state_fusion_fwd(h, k1, k3, k5, alpha),
                       lambda: state_fusion_ref(h, k1, k3, k5, alpha))


@_fusion_fwd.register_fake
def _(h, k1, k3, k5, alpha, may_fall_back):
    return h.new_empty(h.shape)


@torch.library.custom_op('mmspatialmamba::state_fusion_bwd', mutates_args=())
def _fusion_bwd(dout: torch.Tensor, h: torch.Tensor, k1: torch.Tensor, k3: torch.Tensor,
                k5: torch.Tensor, alpha: torch.Tensor, may_fall_back: bool
                ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    inputs = (h, k1, k3, k5, alpha)
    return tuple(run_kernels('state_fusion_bwd', h.device, may_fall_back,
                             lambda: state_fusion_bwd(dout, *inputs)[:5],
                             lambda: reference_grads(state_fusion_ref, inputs, dout)))


@_fusion_bwd.register_fake
def _(dout, h, k1, k3, k5, alpha, may_fall_back):
    return (h.new_empty(h.shape), k1.new_empty(k1.shape), k3.new_empty(k3.shape),
            k5.new_empty(k5.shape), alpha.new_empty(alpha.shape))


def _setup_context(ctx, inputs, output):
    *tensors, ctx.may_fall_back = inputs
    ctx.save_for_backward(*tensors)


def _backward(ctx, dout):
    return (*_fusion_bwd(dout, *ctx.saved_tensors, ctx.may_fall_back), None)


_fusion_fwd.register_autograd(_backward, setup_context=_setup_context)


def state_fusion_triton(h: torch.Tensor, k1: torch.Tensor, k3: torch.Tensor, k5: torch.Tensor,
                        alpha: torch.Tensor, may_fall_back: bool = False) -> torch.Tensor:
    """State fusion on the Triton kernels; arguments as ``mmspatialmamba.ops.state_fusion``
    (validated by the caller), and ``may_fall_back``: run the PyTorch reference where the
    kernels cannot compile or launch. Returns (batch, D, H, W), dtype of ``h``."""
    return _fusion_fwd(h, k1, k3, k5, alpha, bool(may_fall_back))
