"""Parameters and FLOPs of Spatial-Mamba models with mmengine's complexity analysis.

Everything except the SASF core (scan + state fusion + observation, docs/model.md steps 5-7) is
counted by :class:`mmengine.analysis.FlopAnalyzer` (the fvcore port): convolutions, linear
layers and matmuls as multiply-adds, norms as a few operations per element, elementwise ops
(activations, residual adds, gating) as zero. The SASF core gets the release's formula:

* scan of a d_state-N SSM without the C-product: ``7 * batch * L * D * N`` multiply-adds
  (the fvcore handle the release registers for its scan op);
* structure-aware fusion, which the release runs in training mode as three depthwise 3x3
  convolutions that fvcore counts as convolutions: ``3 * 9 * batch * D * N * L``;
* the C-product and the D skip: elementwise, counted as zero (as fvcore does).

``aten::matmul`` gets :func:`matmul_flop_jit`, which counts broadcast batches that fvcore's
handle drops (identical at batch 1, where every published number was taken).

Tracing our reference scan instead would count its internal chunked matmuls (wrongly) and be
slow, so :func:`sasf_counting` has every mixer run :class:`SASFCount` as its core, through
the override the mixer offers (:func:`~mmspatialmamba.models.layers.sasf.sasf_core_override`,
for the current thread and the ``with`` block only). SASFCount is an ``autograd.Function``
that appears in the trace as ``prim::PythonOp.SASFCount`` and whose forward returns
``u.clone()``, a tensor of the right shape computed cheaply; mmengine's per-op handle
:func:`sasf_flop_jit` counts it. Counting does not need the true values; the one place they
could matter is a detector's proposals, whose number (reported by :func:`count_complexity` as
RoIs) sets the RoI heads' cost.
"""
import time
from dataclasses import dataclass, field
from typing import Any, ContextManager, Dict, List, Optional, Sequence, Tuple

import torch
from mmengine.analysis import FlopAnalyzer, parameter_count
from mmengine.analysis.jit_handles import get_shape
from torch import Tensor, nn

from ..models.layers.sasf import sasf_core_override

SASF_OP_NAME = 'prim::PythonOp.SASFCount'
_SASF_COUNTER_KEY = 'PythonOp.SASFCount'  # FlopAnalyzer.by_operator drops the 'prim::'
SCAN_MACS_PER_STATE = 7      # release's fvcore handle for its scan (no C-product)
FUSION_MACS_PER_STATE = 27   # three depthwise 3x3 convolutions (dilations 1, 3, 5)


def sasf_flops(batch: int, d_inner: int, length: int, d_state: int = 1) -> Dict[str, int]:
    """FLOPs (multiply-adds) of one SASF core call under the release's convention.

    Args:
        batch: Batch size. d_inner: Channels D. length: L = H * W. d_state: N.

    Returns:
        ``{'scan': 7*B*L*D*N, 'fusion': 27*B*D*N*L, 'total': their sum}``.

    Example:
        >>> sasf_flops(1, 128, 56 * 56)['total']
        13647872
    """
    scan = SCAN_MACS_PER_STATE * batch * length * d_inner * d_state
    fusion = FUSION_MACS_PER_STATE * batch * d_inner * d_state * length
    return {'scan': scan, 'fusion': fusion, 'total': scan + fusion}


def sasf_flop_jit(inputs: List[Any], outputs: List[Any]) -> int:
    """FlopAnalyzer handle for ``prim::PythonOp.SASFCount``.

    Args:
        inputs: The traced op's tensor inputs in call order: ``u`` (batch, D, L), ``delta``,
            ``A`` (D, N), ...; outputs: ``y`` (batch, D, L).

    Returns:
        :func:`sasf_flops` ``['total']`` for those shapes.
    """
    batch, d_inner, length = get_shape(inputs[0])
    d_state = get_shape(inputs[2])[1]
    return sasf_flops(batch, d_inner, length, d_state)['total']


def matmul_flop_jit(inputs: List[Any], outputs: List[Any]) -> int:
    """FlopAnalyzer handle for ``aten::matmul`` that counts broadcast batches.

    mmengine's (fvcore's) handle returns ``prod(shape_a) * shape_b[-1]``, which misses the
    batch when it sits on the second operand, as in the mixer's ``x_proj_weight @ u`` with
    ``u`` (batch, D, L). This one counts ``numel(output) * K`` (K the contracted size): the
    same at batch 1, the right value for any batch.
    """
    inner = get_shape(inputs[0])[-1]
    out_shape = get_shape(outputs[0]) or [1]
    numel = 1
    for size in out_shape:
        numel *= size
    return numel * inner


class SASFCount(torch.autograd.Function):
    """Stand-in for the SASF core while counting: right shape, cheap, not the real values.

    In a jit trace it is the single node ``prim::PythonOp.SASFCount`` whose inputs carry the
    shapes :func:`sasf_flop_jit` needs. Forward only (counting never backpropagates).
    """

    @staticmethod
    def forward(ctx, u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Tensor,
                *fusion_params: Tensor) -> Tensor:
        """Return ``u.clone()``: (batch, D, L), finite, in ``u``'s dtype."""
        return u.clone()


def _counting_sasf(u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Tensor,
                   delta_bias: Optional[Tensor], k1: Tensor, k3: Tensor, k5: Tensor,
                   alpha: Tensor, hw: Sequence[int], delta_softplus: bool = True,
                   backend: Optional[str] = None) -> Tensor:
    """Same signature as :func:`mmspatialmamba.ops.structure_aware_ssm`; runs SASFCount."""
    if u.dim() != 3 or A.dim() != 2 or int(hw[0]) * int(hw[1]) != u.shape[-1]:
        raise ValueError(f'SASF core called with u {tuple(u.shape)}, A {tuple(A.shape)}, '
                         f'hw {tuple(hw)}; expected u (batch, D, H*W) and A (D, N)')
    return SASFCount.apply(u, delta, A, B, C, D, k1, k3, k5, alpha)


def sasf_counting() -> ContextManager[None]:
    """Route every ``StructureAwareSSM`` through :class:`SASFCount` inside the block.

    Uses the mixer's :func:`~mmspatialmamba.models.layers.sasf.sasf_core_override`: only
    the calling thread is affected, and the real op is back on exit, also on errors.

    Example:
        >>> with sasf_counting():
        ...     analyzer = FlopAnalyzer(model, (images,))
    """
    return sasf_core_override(_counting_sasf)


@dataclass
class ComplexityReport:
    """Result of :func:`count_complexity`; FLOPs are multiply-adds (fvcore convention).

    Attributes:
        flops: Whole model. params: Whole model (all parameters, trainable or not).
        module_flops, module_params: Per requested submodule name (e.g. 'backbone').
        sasf_flops: The part of ``flops`` from the SASF formula.
        by_operator: Whole-model FLOPs per traced op kind.
        unsupported: Op kinds the analyzer met but does not count, with their call counts.
        rois: For detectors, RoIs seen by the bbox and mask heads (they set the heads' cost).
        seconds: Wall time of the trace.
    """

    flops: int
    params: int
    module_flops: Dict[str, int] = field(default_factory=dict)
    module_params: Dict[str, int] = field(default_factory=dict)
    sasf_flops: int = 0
    by_operator: Dict[str, int] = field(default_factory=dict)
    unsupported: Dict[str, int] = field(default_factory=dict)
    rois: Dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


def _roi_counters(model: nn.Module) -> Tuple[Dict[str, int], List[Any]]:
    """Forward hooks that record how many RoIs a detector's bbox/mask heads process."""
    rois: Dict[str, int] = {}
    handles = []
    for module in model.modules():
        if not hasattr(module, 'bbox_roi_extractor'):   # mmdet's RoI heads have one
            continue
        for name in ('bbox_head', 'mask_head'):
            head = getattr(module, name, None)
            if isinstance(head, nn.Module):
                def hook(head_module, args, output, key=name):
                    rois[key] = rois.get(key, 0) + int(args[0].shape[0])
                handles.append(head.register_forward_hook(hook))
    return rois, handles


def count_complexity(model: nn.Module, inputs: Tuple[Any, ...],
                     modules: Sequence[str] = ()) -> ComplexityReport:
    """Count parameters and FLOPs of ``model(*inputs)`` (one jit trace, CPU is fine).

    Args:
        model: Any module; Spatial-Mamba mixers inside it are counted with the SASF formula.
            Put it in eval mode first for inference FLOPs.
        inputs: Positional inputs of ``model.forward`` (e.g. ``(images,)`` with images
            (batch, 3, H, W)).
        modules: Submodule names (as in ``named_modules``) to report separately.

    Returns:
        A :class:`ComplexityReport`.

    Raises:
        KeyError: If a name in ``modules`` is not a submodule of ``model``.
    """
    names = dict(model.named_modules())
    missing = [m for m in modules if m not in names]
    if missing:
        raise KeyError(f'no submodules {missing} in {type(model).__name__}; '
                       f'top-level ones: {[n for n, _ in model.named_children()]}')
    rois, handles = _roi_counters(model)
    start = time.perf_counter()
    try:
        with sasf_counting(), torch.no_grad():
            analyzer = FlopAnalyzer(model, inputs)
            analyzer.set_op_handle(SASF_OP_NAME, sasf_flop_jit)
            analyzer.set_op_handle('aten::matmul', matmul_flop_jit)
            analyzer.unsupported_ops_warnings(False)
            analyzer.uncalled_modules_warnings(False)
            analyzer.tracer_warnings('none')
            total = analyzer.total()
            by_op = dict(analyzer.by_operator())
            unsupported = dict(analyzer.unsupported_ops())
            module_flops = {m: analyzer.total(m) for m in modules}
    finally:
        for handle in handles:
            handle.remove()
    seconds = time.perf_counter() - start
    params = parameter_count(model)
    return ComplexityReport(
        flops=total, params=params[''], module_flops=module_flops,
        module_params={m: params.get(m, 0) for m in modules},
        sasf_flops=by_op.get(_SASF_COUNTER_KEY, 0), by_operator=by_op, unsupported=unsupported,
        rois=rois, seconds=seconds)
