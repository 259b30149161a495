"""The Triton SASF core (scan, fusion, observation) as ``torch.library`` custom ops.

Forward: the scan kernel writes the states ``h`` in float32 (batch, D, 1, L), then one
stencil kernel fuses them and applies the observation ``y = C * fused + D * u`` in its
epilogue, so the fused states never reach memory. ``h`` is the only activation kept for the
backward. Backward: one kernel pass produces the fusion's adjoint ``dh`` (float32), the
kernel/alpha tap sums and ``dC``; the scan's backward then consumes that ``dh`` and also adds
the skip term (``du += dy * D``, ``dD = sum dy * u``).

Ops: ``mmspatialmamba::structure_aware_ssm_fwd`` (returns ``(y, h)``; ``h`` is internal and
not differentiable) and ``mmspatialmamba::structure_aware_ssm_bwd``; registered for every
device (CPU runs them under the Triton interpreter). With ``may_fall_back`` each op runs the
PyTorch reference where its kernels cannot compile or launch (``.._fallback``).
"""
from typing import List, Optional, Sequence, Tuple

import torch

from .. import _utils
from .._fallback import reference_grads, run_kernels
from ..selective_scan.triton_bwd import selective_scan_bwd
from ..selective_scan.triton_fwd import selective_scan_fwd
from ..state_fusion.triton_bwd import state_fusion_bwd
from ..state_fusion.triton_fwd import state_fusion_fwd
from .reference import fuse_and_observe, sasf_states, structure_aware_ssm_ref


@torch.library.custom_op('mmspatialmamba::structure_aware_ssm_fwd', mutates_args=())
def _sasf_fwd(u: torch.Tensor, delta: torch.Tensor, A: torch.Tensor, B: torch.Tensor,
              C: torch.Tensor, D: torch.Tensor, delta_bias: Optional[torch.Tensor],
              k1: torch.Tensor, k3: torch.Tensor, k5: torch.Tensor, alpha: torch.Tensor,
              height: int, width: int, delta_softplus: bool, may_fall_back: bool
              ) -> Tuple[torch.Tensor, torch.Tensor]:
    batch, dim, length = u.shape

    def kernels():
        u_rows = _utils.inner_contiguous(u)     # read by both launches: copied once at most
        h = selective_scan_fwd(u_rows, delta, A, B, delta_bias, delta_softplus,
                               out_dtype=torch.float32)
        y = state_fusion_fwd(h.view(batch, dim, height, width), k1, k3, k5, alpha,
                             obs=(C, u_rows, D), out_dtype=u.dtype)
        return y.view(batch, dim, length), h

    def reference():
        h = sasf_states(u, delta, A, B, delta_bias, delta_softplus)
        return fuse_and_observe(h, u, C, D, k1, k3, k5, alpha, (height, width)), h

    return run_kernels('structure_aware_ssm_fwd', u.device, may_fall_back, kernels, reference)


@_sasf_fwd.register_fake
def _(u, delta, A, B, C, D, delta_bias, k1, k3, k5, alpha, height, width, delta_softplus,
      may_fall_back):
    batch, dim, length = u.shape
    return u.new_empty(u.shape), u.new_empty(batch, dim, 1, length, dtype=torch.float32)


@torch.library.custom_op('mmspatialmamba::structure_aware_ssm_bwd', mutates_args=())
def _sasf_bwd(dy: torch.Tensor, u: torch.Tensor, delta: torch.Tensor, A: torch.Tensor,
              B: torch.Tensor, C: torch.Tensor, D: torch.Tensor,
              delta_bias: Optional[torch.Tensor], k1: torch.Tensor, k3: torch.Tensor,
              k5: torch.Tensor, alpha: torch.Tensor, h: torch.Tensor, height: int, width: int,
              delta_softplus: bool, may_fall_back: bool) -> List[torch.Tensor]:
    batch, dim, length = u.shape
    dy = _utils.inner_contiguous(dy)

    def kernels():
        dh, dk1, dk3, dk5, dalpha, dC = state_fusion_bwd(
            dy.unflatten(2, (height, width)), h.view(batch, dim, height, width), k1, k3, k5,
            alpha, C=C, dh_dtype=torch.float32)
        du, ddelta, dA, dB, dbias, dD = selective_scan_bwd(
            dh.view(batch, dim, 1, length), u, delta, A, B, delta_bias, h, delta_softplus,
            dy=dy, skip=D)
        return [du, ddelta, dA, dB, dC, dD, dbias, dk1, dk3, dk5, dalpha]

    def reference():
        inputs = (u, delta, A, B, C, D, delta_bias, k1, k3, k5, alpha)
        return reference_grads(
            lambda *args: structure_aware_ssm_ref(*args, (height, width), delta_softplus),
            inputs, dy)

    du, ddelta, dA, dB, dC, dD, dbias, dk1, dk3, dk5, dalpha = run_kernels(
        'structure_aware_ssm_bwd', u.device, may_fall_back, kernels, reference)
    # A custom op cannot return None: an absent bias gets an empty gradient.
    dbias = dbias if dbias is not None else u.new_empty(0)
    return [du, ddelta, dA, dB, dC, dD, dbias, dk1, dk3, dk5, dalpha]


@_sasf_bwd.register_fake
def _(dy, u, delta, A, B, C, D, delta_bias, k1, k3, k5, alpha, h, height, width,
      delta_softplus, may_fall_back):
    dbias = delta_bias.new_empty(delta_bias.shape) if delta_bias is not None else u.new_empty(0)
    return [t.new_empty(t.shape) for t in (u, delta, A, B, C, D)] + [dbias] + [
        t.new_empty(t.shape) for t in (k1, k3, k5, alpha)]


def _setup_context(ctx, inputs, output):
    *tensors, height, width, ctx.delta_softplus, ctx.may_fall_back = inputs
    _, h = output
    ctx.mark_non_differentiable(h)
    ctx.save_for_backward(*tensors, h)
    ctx.hw = (height, width)


def _backward(ctx, dy, _dh_unused):
    u, delta, A, B, C, D, delta_bias, k1, k3, k5, alpha, h = ctx.saved_tensors
    du, ddelta, dA, dB, dC, dD, dbias, dk1, dk3, dk5, dalpha = _sasf_bwd(
        dy, u, delta, A, B, C, D, delta_bias, k1, k3, k5, alpha, h, *ctx.hw,
        ctx.delta_softplus, ctx.may_fall_back)
    return (du, ddelta, dA, dB, dC, dD, (dbias if delta_bias is not None else None),
            dk1, dk3, dk5, dalpha, None, None, None, None)


_sasf_fwd.register_autograd(_backward, setup_context=_setup_context)


def structure_aware_ssm_triton(u: torch.Tensor, delta: torch.Tensor, A: torch.Tensor,
                               B: torch.Tensor, C: torch.Tensor, D: torch.Tensor,
                               delta_bias: Optional[torch.Tensor], k1: torch.Tensor,
                               k3: torch.Tensor, k5: torch.Tensor, alpha: torch.Tensor,
                               hw: Sequence[int], delta_softplus: bool = True,
                               may_fall_back: bool = False) -> torch.Tensor:
    """SASF core on the Triton kernels; arguments as
    ``mmspatialmamba.ops.structure_aware_ssm`` (validated by the caller), and
    ``may_fall_back``: run the PyTorch reference where the kernels cannot compile or launch.
    Returns y, (batch, D, L), dtype of ``u``."""
    y, _ = _sasf_fwd(u, delta, A, B, C, D, delta_bias, k1, k3, k5, alpha, int(hw[0]),
                     int(hw[1]), bool(delta_softplus), bool(may_fall_back))
    return y
