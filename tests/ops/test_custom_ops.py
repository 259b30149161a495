"""The Triton custom ops as ``torch.library`` sees them: schemas, fake implementations and
autograd registration (``opcheck``), and ``torch.compile(fullgraph=True)`` through them."""
import pytest
import torch
from op_utils import SASF_NAMES, assert_close, fusion_inputs, sasf_inputs, scan_inputs

from mmspatialmamba.ops import selective_scan, state_fusion, structure_aware_ssm


def _opcheck_cases(layout):
    scan = scan_inputs(1, 3, 2, 9, torch.float32, layout=layout)
    fusion = fusion_inputs(1, 3, 4, 5, torch.float32, layout=layout)
    sasf = sasf_inputs(1, 3, 4, 5, torch.float32, layout=layout)
    h_scan = torch.randn(1, 3, 2, 9)
    h_sasf = torch.randn(1, 3, 1, 20)
    softplus, may_fall_back = True, True
    ops = torch.ops.mmspatialmamba
    return [
        (ops.selective_scan_fwd.default, (*scan, softplus, may_fall_back)),
        (ops.selective_scan_bwd.default,
         (torch.randn(1, 3, 2, 9), *scan, h_scan, softplus, may_fall_back)),
        (ops.state_fusion_fwd.default, (*fusion, may_fall_back)),
        (ops.state_fusion_bwd.default, (torch.randn(1, 3, 4, 5), *fusion, may_fall_back)),
        (ops.structure_aware_ssm_fwd.default, (*sasf, 4, 5, softplus, may_fall_back)),
        (ops.structure_aware_ssm_bwd.default,
         (torch.randn(1, 3, 20), *sasf, h_sasf, 4, 5, softplus, may_fall_back)),
    ]


@pytest.mark.parametrize('layout', ['contiguous', 'strided'])
def test_opcheck(layout):
    """Schema, fake (meta) implementations and autograd registration of every custom op."""
    from mmspatialmamba.ops.sasf import op as _sasf_op  # noqa: F401  (registers the ops)
    from mmspatialmamba.ops.selective_scan import op as _scan_op  # noqa: F401
    from mmspatialmamba.ops.state_fusion import op as _fusion_op  # noqa: F401
    for op, args in _opcheck_cases(layout):
        fwd = op.name().endswith('_fwd')
        args = tuple(a.detach().requires_grad_(fwd) if isinstance(a, torch.Tensor) else a
                     for a in args)
        torch.library.opcheck(op, args)


def test_compile_fullgraph(seed):
    """``torch.compile(fullgraph=True)`` (Inductor, CPU) traces through the custom ops,
    forward and backward, without a graph break and gives the eager results; the kernels
    themselves run interpreted inside the compiled graph."""
    batch, dim, height, width = 1, 4, 3, 5
    inputs = sasf_inputs(batch, dim, height, width, torch.float32)
    leaves = [t.detach().requires_grad_(True) if t is not None else None for t in inputs]

    def core(*args):
        y = structure_aware_ssm(*args, hw=(height, width), backend='triton')
        h = selective_scan(args[0], args[1], args[2], args[3], args[6], backend='triton')
        fused = state_fusion(h.view(batch, dim, height, width), *args[7:], backend='triton')
        return y.square().sum() + fused.sum()

    torch._dynamo.reset()
    compiled = torch.compile(core, fullgraph=True)
    loss = compiled(*leaves)
    grads = torch.autograd.grad(loss, leaves)
    eager_leaves = [t.detach().requires_grad_(True) for t in inputs]
    eager_loss = core(*eager_leaves)
    eager_grads = torch.autograd.grad(eager_loss, eager_leaves)
    assert_close('loss', loss.detach(), eager_loss.detach(), 1e-6, seed)
    for name, g, g_ref in zip(SASF_NAMES, grads, eager_grads):
        assert_close(f'd{name}', g, g_ref, 1e-6, seed)


@pytest.mark.parametrize('backend', ['triton', 'torch'])
def test_compile_fullgraph_whole_block(seed, backend):
    """A whole Spatial-Mamba block compiles with ``fullgraph=True`` (nothing in the block, e.g.
    the mixer's FLOP-counting override, breaks the graph) and matches eager, gradients of the
    input and of every parameter included: on the Triton path through the custom ops, on the
    PyTorch path through the reference, whose replicate pad Inductor could not differentiate
    (``ops/state_fusion/reference.py``, ``_replicate_pad``)."""
    from mmspatialmamba.models.layers import SpatialMambaBlock
    block = SpatialMambaBlock(16, backend=backend)
    x = torch.randn(1, 6, 7, 16, requires_grad=True)
    names, params = zip(*block.named_parameters())
    torch._dynamo.reset()
    compiled = torch.compile(block, fullgraph=True)
    y = compiled(x)
    grads = torch.autograd.grad(y.sum(), (x, *params))
    y_ref = block(x)
    grads_ref = torch.autograd.grad(y_ref.sum(), (x, *params))
    assert_close('y', y.detach(), y_ref.detach(), 1e-6, seed)
    for name, g, g_ref in zip(('x', *names), grads, grads_ref):
        assert_close(f'd{name}', g, g_ref, 1e-5, seed)
