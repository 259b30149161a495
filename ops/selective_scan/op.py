"""The Triton selective scan as ``torch.library`` custom ops with a registered autograd.

``mmspatialmamba::selective_scan_fwd`` and ``mmspatialmamba::selective_scan_bwd`` are opaque
to ``torch.compile`` (their fake implementations give the output metadata), so a compiled
model traces through them without a graph break. Registered for every device: on CPU they
run under the Triton interpreter (``TRITON_INTERPRET=1``), which is how CI tests them. With
``may_fall_back`` each op runs the PyTorch reference where its kernels cannot compile or
launch (``.._fallback``).
"""
from typing import Optional, Tuple

import torch

from .._fallback import reference_grads, run_kernels
from .reference import selective_scan_ref
from .triton_bwd import selective_scan_bwd
from .triton_fwd import selective_scan_fwd


@torch.library.custom_op('mmspatialmamba::selective_scan_fwd', mutates_args=())
def _scan_fwd(u: torch.Tensor, delta: torch.Tensor, A: torch.Tensor, B: torch.Tensor,
              delta_bias: Optional[torch.Tensor], delta_softplus: bool,
              may_fall_back: bool) -> torch.Tensor:
    return run_kernels(
        'selective_scan_fwd', u.device, may_fall_back,
        lambda: selective_scan_fwd(u, delta, A, B, delta_bias, delta_softplus),
        lambda: selective_scan_ref(u, delta, A, B, delta_bias, delta_softplus))


@_scan_fwd.register_fake
def _(u, delta, A, B, delta_bias, delta_softplus, may_fall_back):
    return u.new_empty(u.shape[0], u.shape[1], A.shape[1], u.shape[2])


@torch.library.custom_op('mmspatialmamba::selective_scan_bwd', mutates_args=())
def _scan_bwd(dh: torch.Tensor, u: torch.Tensor, delta: torch.Tensor, A: torch.Tensor,
              B: torch.Tensor, delta_bias: Optional[torch.Tensor], h: torch.Tensor,
              delta_softplus: bool, may_fall_back: bool
              ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    def kernels():
        return selective_scan_bwd(dh, u, delta, A, B, delta_bias, h, delta_softplus)[:5]

    def reference():
        return reference_grads(
            lambda *args: selective_scan_ref(*args, delta_softplus=delta_softplus),
            (u, delta, A, B, delta_bias), dh)

    du, ddelta, dA, dB, dbias = run_kernels('selective_scan_bwd', u.device, may_fall_back,
                                            kernels, reference)
    # A custom op cannot return None: an absent bias gets an empty gradient.
    return du, ddelta, dA, dB, dbias if dbias is not None else u.new_empty(0)


@_scan_bwd.register_fake
def _(dh, u, delta, A, B, delta_bias, h, delta_softplus, may_fall_back):
    dbias = delta_bias.new_empty(delta_bias.shape) if delta_bias is not None else u.new_empty(0)
    return (u.new_empty(u.shape), delta.new_empty(delta.shape), A.new_empty(A.shape),
            B.new_empty(B.shape), dbias)


def _setup_context(ctx, inputs, output):
    u, delta, A, B, delta_bias, delta_softplus, may_fall_back = inputs
    ctx.save_for_backward(u, delta, A, B, delta_bias, output)
    ctx.delta_softplus = delta_softplus
    ctx.may_fall_back = may_fall_back


def _backward(ctx, dh):
    u, delta, A, B, delta_bias, h = ctx.saved_tensors
    du, ddelta, dA, dB, dbias = _scan_bwd(dh, u, delta, A, B, delta_bias, h,
                                          ctx.delta_softplus, ctx.may_fall_back)
    return du, ddelta, dA, dB, (dbias if delta_bias is not None else None), None, None


_scan_fwd.register_autograd(_backward, setup_context=_setup_context)


def selective_scan_triton(u: torch.Tensor, delta: torch.Tensor, A: torch.Tensor,
                          B: torch.Tensor, delta_bias: Optional[torch.Tensor] = None,
                          delta_softplus: bool = True, may_fall_back: bool = False
                          ) -> torch.Tensor:
    """Selective scan on the Triton kernels; arguments as ``mmspatialmamba.ops.selective_scan``
    (validated by the caller), and ``may_fall_back``: run the PyTorch reference where the
    kernels cannot compile or launch. Returns h, (batch, D, N, L), dtype of ``u``."""
    return _scan_fwd(u, delta, A, B, delta_bias, bool(delta_softplus), bool(may_fall_back))
