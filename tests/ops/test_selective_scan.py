"""``selective_scan`` on both backends against the float64 oracle: values and every gradient.

On CPU the Triton cases run under the interpreter (``TRITON_INTERPRET=1``, set by conftest.py),
which tests the kernels' logic: masks, strides, carries across blocks. Outputs are
NaN-poisoned (conftest.py), so an element a kernel never writes fails. Triton shapes stay
small because the interpreter is slow; ``test_long_sequence`` covers L = 67,200.
"""
import pytest
import torch
from op_utils import (GPU_DTYPES, SCAN_NAMES, TOL, assert_close, case, case_id, compare,
                      compare_backends, scan_inputs)
from spec_oracle import scan_oracle

from mmspatialmamba.ops import selective_scan
from mmspatialmamba.ops.selective_scan.reference import linear_scan

DIMS = 'BDNL'
CASES = [
    *(case('torch', DIMS, shape, softplus=softplus)
      for shape in [(1, 1, 1, 1), (2, 4, 1, 37), (1, 3, 2, 64), (2, 8, 3, 1025), (1, 2, 1, 5000)]
      for softplus in (True, False)),
    case('torch', DIMS, (2, 8, 1, 200), torch.bfloat16),
    case('torch', DIMS, (2, 8, 1, 200), torch.float16),
    case('triton', DIMS, (1, 4, 1, 1)),
    case('triton', DIMS, (2, 8, 1, 37)),
    case('triton', DIMS, (1, 3, 3, 50), bias=False, layout='strided'),   # N > 1, odd D
    case('triton', DIMS, (2, 5, 1, 45), softplus=False),
    case('triton', DIMS, (1, 18, 2, 21), layout='strided'),   # D not a multiple of a block
    case('triton', DIMS, (2, 6, 1, 33), torch.bfloat16),
    case('triton', DIMS, (1, 6, 2, 29), torch.float16, layout='strided'),
]


@pytest.mark.parametrize('backend,shape,dtype,options', CASES)
def test_selective_scan(backend, shape, dtype, options, seed):
    compare(selective_scan, scan_oracle, scan_inputs(*shape, dtype, **options), SCAN_NAMES,
            dtype, seed, backends=[backend], delta_softplus=options.get('softplus', True))


def test_large_step_sizes_without_bias(seed):
    """Step sizes above softplus's threshold (decays underflow to 0), no bias: the PyTorch
    scan stays finite and exact."""
    u, delta, A, B, _ = scan_inputs(1, 4, 1, 300, torch.float32)
    delta = 25 + torch.rand_like(delta)
    assert torch.isfinite(selective_scan(u, delta, A, B, None, True, backend='torch')).all()
    compare(selective_scan, scan_oracle, [u, delta, A, B, None], SCAN_NAMES, torch.float32,
            seed, backends=['torch'])


def scan_float64(u, delta, A, B, delta_bias=None, delta_softplus=True):
    """docs/model.md step 5 in float64 through the chunked ``linear_scan`` of the reference.

    Used for gradients at L = 67,200 only: autograd through the oracle's 67,200-step Python
    loop takes minutes, this takes a second. Its discretisation is written here from the
    equations; the short cases check every gradient against the oracle itself.
    """
    dt = delta.double() + (delta_bias.double()[:, None] if delta_bias is not None else 0)
    if delta_softplus:
        dt = torch.where(dt <= 20, torch.log1p(torch.exp(dt)), dt)
    decay = torch.exp(dt[:, :, None] * A.double()[None, :, :, None])    # (batch, D, N, L)
    inp = (dt * u.double())[:, :, None] * B.double()[:, None]
    time_major = [x.flatten(1, 2).transpose(1, 2) for x in (decay, inp)]
    return linear_scan(*time_major).transpose(1, 2).view(decay.shape)


def test_long_sequence(seed):
    """L = 67,200 (800x1344 detection, stage 1) on the Triton kernels: the scan's carry across
    many blocks. Values against the oracle, gradients against ``scan_float64``."""
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


GPU_SHAPES = [(2, 8, 2, 37), (2, 64, 2, 56 * 57), (1, 16, 2, 200 * 336), (2, 512, 2, 7 * 12)]


@pytest.mark.cuda
@GPU_DTYPES
@pytest.mark.parametrize('shape', GPU_SHAPES, ids=[case_id(DIMS, s) for s in GPU_SHAPES])
def test_cuda_matches_oracle(shape, dtype, seed):
    """Both backends on CUDA tensors (channels-innermost strides) against the oracle."""
    compare(selective_scan, scan_oracle,
            scan_inputs(*shape, dtype, torch.device('cuda'), layout='strided'),
            SCAN_NAMES, dtype, seed, backends=['torch', 'triton'])


MODEL_SHAPES = [(128, 64, 1, 56 * 56), (2, 64, 1, 200 * 336), (2, 512, 1, 25 * 42)]


@pytest.mark.cuda
@GPU_DTYPES
@pytest.mark.parametrize('shape', MODEL_SHAPES, ids=[case_id(DIMS, s) for s in MODEL_SHAPES])
def test_cuda_triton_matches_torch(shape, dtype, seed):
    """Triton against the PyTorch path on CUDA at the models' shapes (224 classification
    batch 128 stage 1; 800x1344 detection stages 1 and 4), too long for the oracle."""
    compare_backends(selective_scan, scan_inputs(*shape, dtype, torch.device('cuda')),
                     SCAN_NAMES, dtype, seed)
