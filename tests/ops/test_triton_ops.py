"""The Triton kernels against the float64 oracle of SPEC steps 5-7.

On CPU these run under the Triton interpreter (``TRITON_INTERPRET=1``, set by conftest.py), so
they test the kernels' logic: masks, strides, carries across blocks, border folding,
partial-sum reductions. Outputs are NaN-poisoned before each call (conftest.py), so an element
a kernel never writes fails. Shapes stay small because the interpreter is slow (its
``tl.associative_scan`` runs per element); ``test_long_sequence`` covers L = 67,200.
GPU runs of the same checks carry ``@pytest.mark.cuda``.
"""
import pytest
import torch
from spec_oracle import fusion_oracle, sasf_oracle, scan_oracle

from mmspatialmamba.ops import _utils, selective_scan, state_fusion, structure_aware_ssm
from mmspatialmamba.ops.selective_scan.reference import linear_scan

TOL = {torch.float32: (1e-5, 1e-4), torch.float16: (5e-3, 5e-3),
       torch.bfloat16: (1e-2, 1e-2)}  # (values, gradients): relative L2 error
DTYPE_IDS = {torch.float32: 'fp32', torch.float16: 'fp16', torch.bfloat16: 'bf16'}
CPU = torch.device('cpu')


def assert_close(name, out, ref, tol, seed):
    """Relative L2 error below ``tol``; the message names the seed and the max abs error."""
    assert not torch.isnan(ref).any(), f'{name}: the oracle holds NaN (seed {seed})'
    assert out.shape == ref.shape, f'{name}: shape {tuple(out.shape)} != {tuple(ref.shape)}'
    out, ref = out.double(), ref.double()
    err = (out - ref).norm() / ref.norm().clamp_min(1e-30)
    max_abs = (out - ref).abs().max().item() if out.numel() else 0.0
    assert err < tol, (f'{name}: relative L2 error {err:.3g} >= {tol:g}, max abs error '
                       f'{max_abs:.3g}, NaN in output: {bool(torch.isnan(out).any())} '
                       f'(seed {seed}; replay with torch.manual_seed({seed}))')


def compare(op, oracle, inputs, names, dtype, seed, **kwargs):
    """Run ``op`` and ``oracle`` on the same rounded inputs; compare values and gradients."""
    tol_val, tol_grad = TOL[dtype]
    leaves = [t.detach().requires_grad_(t.is_floating_point()) if t is not None else None
              for t in inputs]
    out = op(*leaves, **kwargs)
    upstream = torch.randn(out.shape, dtype=torch.float64, device=out.device)
    present = [t for t in leaves if t is not None]
    grads = torch.autograd.grad(out, present, upstream.to(out.dtype))
    ref_leaves = [t.detach().double().requires_grad_(True) if t is not None else None
                  for t in inputs]
    ref = oracle(*ref_leaves, **{k: v for k, v in kwargs.items() if k != 'backend'})
    ref_grads = torch.autograd.grad(ref, [t for t in ref_leaves if t is not None], upstream)
    assert out.dtype == inputs[0].dtype
    assert_close('output', out, ref, tol_val, seed)
    present_names = [n for n, t in zip(names, inputs) if t is not None]
    for name, leaf, g, g_ref in zip(present_names, present, grads, ref_grads):
        assert g.dtype == leaf.dtype, f'd{name} has dtype {g.dtype}, input {leaf.dtype}'
        assert_close(f'd{name}', g, g_ref, tol_grad, seed)


def channels_last(x):
    """Same values as ``x`` (batch, C, ...), stored with the channel dimension innermost."""
    return x.movedim(1, -1).contiguous().movedim(-1, 1)


def scan_inputs(batch, dim, d_state, length, dtype, device=CPU, bias=True, layout='contiguous',
                softplus=True):
    """Scan inputs; without softplus, delta + bias stays positive so the decays stay < 1."""
    u = torch.randn(batch, dim, length, device=device)
    delta = 0.5 * torch.randn(batch, dim, length, device=device)
    delta_bias = 0.5 * torch.randn(dim, device=device) - 1.0 if bias else None
    if softplus:  # exercise softplus's identity branch (argument > 20)
        delta[..., ::7] += 25.0
    else:
        delta = delta.abs()
        delta_bias = delta_bias.abs() if bias else None
    A = -torch.empty(dim, d_state, device=device).uniform_(0.5, 2.0)
    B = torch.randn(batch, d_state, length, device=device)
    u, delta, B = u.to(dtype), delta.to(dtype), B.to(dtype)
    if layout == 'strided':
        u, delta, B = channels_last(u), channels_last(delta), channels_last(B)
        A = A.t().contiguous().t()
        if delta_bias is not None:
            delta_bias = torch.stack([delta_bias, delta_bias], dim=1)[:, 0]
    return [u, delta, A, B, delta_bias]


def fusion_inputs(batch, dim, height, width, dtype, device=CPU, layout='contiguous'):
    h = torch.randn(batch, dim, height, width, device=device).to(dtype)
    kernels = [torch.randn(dim, 1, 3, 3, device=device) / 3 for _ in range(3)]
    alpha = torch.rand(3, device=device) + 0.5
    if layout == 'strided':
        h = channels_last(h)
        kernels = [k.transpose(2, 3).contiguous().transpose(2, 3) for k in kernels]
        alpha = torch.stack([alpha, alpha], dim=1)[:, 0]
    elif layout == 'sliced':  # innermost stride 1, other strides not those of a packed map
        h = torch.randn(batch, 2 * dim, height, width + 3, device=device).to(dtype)
        h = h[:, ::2, :, 1:width + 1]
    return [h, *kernels, alpha]


def sasf_inputs(batch, dim, height, width, dtype, device=CPU, bias=True, layout='contiguous',
                softplus=True):
    length = height * width
    u, delta, A, B, delta_bias = scan_inputs(batch, dim, 1, length, dtype, device, bias, layout,
                                             softplus)
    C = torch.randn(batch, 1, length, device=device).to(dtype)
    D = torch.randn(dim, device=device)
    _, k1, k3, k5, alpha = fusion_inputs(batch, dim, height, width, dtype, device, layout)
    if layout == 'strided':
        C = channels_last(C)
    return [u, delta, A, B, C, D, delta_bias, k1, k3, k5, alpha]


SCAN_NAMES = ['u', 'delta', 'A', 'B', 'delta_bias']
FUSION_NAMES = ['h', 'k1', 'k3', 'k5', 'alpha']
SASF_NAMES = ['u', 'delta', 'A', 'B', 'C', 'D', 'delta_bias', 'k1', 'k3', 'k5', 'alpha']

SCAN_CASES = [  # (batch, D, N, L), dtype, delta_bias, softplus, layout
    ((1, 4, 1, 1), torch.float32, True, True, 'contiguous'),
    ((2, 8, 1, 37), torch.float32, True, True, 'contiguous'),
    ((1, 3, 3, 50), torch.float32, False, True, 'strided'),     # N > 1, odd D
    ((2, 5, 1, 45), torch.float32, True, False, 'contiguous'),
    ((1, 18, 2, 21), torch.float32, True, True, 'strided'),     # D not a multiple of a block
    ((2, 6, 1, 33), torch.bfloat16, True, True, 'contiguous'),
    ((1, 6, 2, 29), torch.float16, True, True, 'strided'),
]


@pytest.mark.parametrize('shape,dtype,bias,softplus,layout', SCAN_CASES,
                         ids=[f'{"x".join(map(str, c[0]))}-{DTYPE_IDS[c[1]]}-bias{int(c[2])}'
                              f'-sp{int(c[3])}-{c[4]}' for c in SCAN_CASES])
def test_selective_scan(shape, dtype, bias, softplus, layout, seed):
    inputs = scan_inputs(*shape, dtype, bias=bias, layout=layout, softplus=softplus)
    compare(selective_scan, scan_oracle, inputs, SCAN_NAMES, dtype, seed,
            delta_softplus=softplus, backend='triton')


FUSION_CASES = [  # (batch, D, H, W), dtype, layout
    ((1, 4, 1, 1), torch.float32, 'contiguous'),
    ((2, 8, 1, 37), torch.float32, 'contiguous'),
    ((2, 8, 37, 1), torch.float32, 'strided'),
    ((1, 16, 3, 2), torch.float32, 'contiguous'),     # map smaller than the dilations
    ((2, 5, 7, 9), torch.float32, 'sliced'),
    ((1, 3, 12, 70), torch.float32, 'contiguous'),    # several tiles along W on the GPU
    ((2, 6, 7, 9), torch.bfloat16, 'strided'),
    ((1, 6, 6, 11), torch.float16, 'contiguous'),
]


@pytest.mark.parametrize('shape,dtype,layout', FUSION_CASES,
                         ids=[f'{"x".join(map(str, c[0]))}-{DTYPE_IDS[c[1]]}-{c[2]}'
                              for c in FUSION_CASES])
def test_state_fusion(shape, dtype, layout, seed):
    compare(state_fusion, fusion_oracle, fusion_inputs(*shape, dtype, layout=layout),
            FUSION_NAMES, dtype, seed, backend='triton')


SASF_CASES = [  # (batch, D, H, W), dtype, delta_bias, softplus, layout
    ((1, 4, 1, 1), torch.float32, True, True, 'contiguous'),
    ((2, 8, 7, 9), torch.float32, True, True, 'contiguous'),
    ((1, 16, 3, 2), torch.float32, False, True, 'strided'),
    ((2, 20, 1, 13), torch.float32, True, False, 'contiguous'),   # two channel groups for dC
    ((1, 5, 11, 1), torch.float32, True, True, 'strided'),
    ((2, 6, 5, 7), torch.bfloat16, True, True, 'strided'),
    ((1, 6, 4, 9), torch.float16, True, True, 'contiguous'),
]


@pytest.mark.parametrize('shape,dtype,bias,softplus,layout', SASF_CASES,
                         ids=[f'{"x".join(map(str, c[0]))}-{DTYPE_IDS[c[1]]}-bias{int(c[2])}'
                              f'-sp{int(c[3])}-{c[4]}' for c in SASF_CASES])
def test_structure_aware_ssm(shape, dtype, bias, softplus, layout, seed):
    batch, dim, height, width = shape
    inputs = sasf_inputs(batch, dim, height, width, dtype, bias=bias, layout=layout,
                         softplus=softplus)
    compare(structure_aware_ssm, sasf_oracle, inputs, SASF_NAMES, dtype, seed,
            hw=(height, width), delta_softplus=softplus, backend='triton')


def scan_float64(u, delta, A, B, delta_bias=None, delta_softplus=True):
    """SPEC step 5 in float64 through the chunked ``linear_scan`` of the reference.

    Used for gradients at L = 67,200 only: autograd through the oracle's 67,200-step Python
    loop takes minutes, this takes a second. Its discretisation is written here from the
    equations; the short cases check every gradient against the oracle itself.
    """
    dt = delta.double() + (delta_bias.double()[:, None] if delta_bias is not None else 0)
    if delta_softplus:
        dt = torch.where(dt <= 20, torch.log1p(torch.exp(dt)), dt)
    decay = torch.exp(dt[:, :, None] * A.double()[None, :, :, None])
    inp = (dt * u.double())[:, :, None] * B.double()[:, None]
    return linear_scan(decay, inp)


def test_long_sequence(seed):
    """L = 67,200 (800x1344 detection, stage 1): the scan's carry across many blocks, and the
    fusion on the full 200x336 map. Scan values against the oracle, scan gradients against
    ``scan_float64``; fusion values and gradients against the oracle."""
    inputs = scan_inputs(1, 1, 1, 200 * 336, torch.float32)
    leaves = [t.detach().requires_grad_(True) for t in inputs]
    h = selective_scan(*leaves, backend='triton')
    upstream = torch.randn(h.shape, dtype=torch.float64)
    grads = torch.autograd.grad(h, leaves, upstream.float())
    with torch.no_grad():
        assert_close('output', h, scan_oracle(*inputs), TOL[torch.float32][0], seed)
    ref_leaves = [t.detach().double().requires_grad_(True) for t in inputs]
    ref_grads = torch.autograd.grad(scan_float64(*ref_leaves), ref_leaves, upstream)
    for name, g, g_ref in zip(SCAN_NAMES, grads, ref_grads):
        assert_close(f'd{name}', g, g_ref, TOL[torch.float32][1], seed)
    compare(state_fusion, fusion_oracle, fusion_inputs(1, 1, 200, 336, torch.float32),
            FUSION_NAMES, torch.float32, seed, backend='triton')


def test_gpu_block_sizes(monkeypatch, seed):
    """The block sizes the launchers pick for CUDA tensors (``_utils``), run under the
    interpreter: one channel per fusion and scan program, several tiles per map."""
    monkeypatch.setattr(_utils, 'gpu_capability', lambda device: (8, 0))
    inputs = sasf_inputs(1, 2, 3, 70, torch.float32)
    compare(structure_aware_ssm, sasf_oracle, inputs, SASF_NAMES, torch.float32, seed,
            hw=(3, 70), backend='triton')


def _opcheck_cases(layout):
    scan = scan_inputs(1, 3, 2, 9, torch.float32, layout=layout)
    fusion = fusion_inputs(1, 3, 4, 5, torch.float32, layout=layout)
    sasf = sasf_inputs(1, 3, 4, 5, torch.float32, layout=layout)
    h_scan = torch.randn(1, 3, 2, 9)
    h_sasf = torch.randn(1, 3, 1, 20)
    ops = torch.ops.mmspatialmamba
    return [
        (ops.selective_scan_fwd.default, (*scan, True)),
        (ops.selective_scan_bwd.default, (torch.randn(1, 3, 2, 9), *scan, h_scan, True)),
        (ops.state_fusion_fwd.default, tuple(fusion)),
        (ops.state_fusion_bwd.default, (torch.randn(1, 3, 4, 5), *fusion)),
        (ops.structure_aware_ssm_fwd.default, (*sasf, 4, 5, True)),
        (ops.structure_aware_ssm_bwd.default, (torch.randn(1, 3, 20), *sasf, h_sasf, 4, 5, True)),
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


GPU_SHAPES = [(2, 8, 1, 37), (2, 64, 56, 57), (1, 16, 200, 336), (2, 512, 7, 12)]


@pytest.mark.cuda
@pytest.mark.parametrize('dtype', [torch.float32, torch.bfloat16], ids=['fp32', 'bf16'])
@pytest.mark.parametrize('shape', GPU_SHAPES, ids=['x'.join(map(str, s)) for s in GPU_SHAPES])
def test_cuda_matches_oracle(shape, dtype, seed):
    batch, dim, height, width = shape
    cuda = torch.device('cuda')
    compare(selective_scan, scan_oracle,
            scan_inputs(batch, dim, 2, height * width, dtype, cuda, layout='strided'),
            SCAN_NAMES, dtype, seed)
    compare(state_fusion, fusion_oracle, fusion_inputs(*shape, dtype, cuda), FUSION_NAMES,
            dtype, seed)
    compare(structure_aware_ssm, sasf_oracle, sasf_inputs(*shape, dtype, cuda), SASF_NAMES,
            dtype, seed, hw=(height, width))
