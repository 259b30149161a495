"""The PyTorch backend of every op against the float64 SPEC oracle: values and gradients."""
import pytest
import torch
from spec_oracle import fusion_oracle, sasf_oracle, scan_oracle

from mmspatialmamba.ops import selective_scan, state_fusion, structure_aware_ssm

TOL = {torch.float32: (1e-5, 1e-4), torch.float64: (1e-10, 1e-10),
       torch.bfloat16: (1e-2, 1e-2), torch.float16: (1e-2, 1e-2)}  # (values, grads), rel. L2


def rel_err(actual: torch.Tensor, expected: torch.Tensor) -> float:
    assert not torch.isnan(expected).any(), 'oracle produced NaN'
    diff = actual.double() - expected.double()
    return (diff.norm() / expected.double().norm().clamp_min(1e-30)).item()


def assert_close(name, actual, expected, tol, seed):
    err = rel_err(actual, expected)
    max_abs = (actual.double() - expected.double()).abs().max().item()
    assert err < tol, f'{name}: rel L2 {err:.3g} >= {tol} (max abs {max_abs:.3g}), seed {seed}'


def scan_inputs(batch, dim, d_state, length, dtype):
    u = torch.randn(batch, dim, length).to(dtype)
    delta = (0.5 * torch.randn(batch, dim, length)).to(dtype)
    A = -torch.exp(0.5 * torch.randn(dim, d_state))
    B = torch.randn(batch, d_state, length).to(dtype)
    bias = 0.5 * torch.randn(dim)
    return [t.requires_grad_() for t in (u, delta, A, B, bias)]


def fusion_params(dim):
    ks = [(0.3 * torch.randn(dim, 1, 3, 3)).requires_grad_() for _ in range(3)]
    return ks + [torch.randn(3).requires_grad_()]


SCAN_SHAPES = [(1, 1, 1, 1), (2, 4, 1, 37), (1, 3, 2, 64), (2, 8, 3, 1025), (1, 2, 1, 5000)]


@pytest.mark.parametrize('shape', SCAN_SHAPES, ids=lambda s: 'B{}-D{}-N{}-L{}'.format(*s))
@pytest.mark.parametrize('softplus', [True, False], ids=['softplus', 'raw'])
def test_selective_scan_matches_oracle(shape, softplus, seed):
    u, delta, A, B, bias = scan_inputs(*shape, torch.float32)
    if not softplus:  # raw step sizes must be positive for a decaying recurrence
        delta, bias = (t.detach().abs().requires_grad_() for t in (delta, bias))
    out = selective_scan(u, delta, A, B, bias, softplus, backend='torch')
    leaves = [t.detach().double().requires_grad_() for t in (u, delta, A, B, bias)]
    ref = scan_oracle(*leaves, delta_softplus=softplus)
    assert out.shape == ref.shape and out.dtype == torch.float32
    assert_close('h', out, ref, 1e-5, seed)
    grad = torch.randn_like(ref)
    out.backward(grad.float())
    ref.backward(grad)
    for name, t, r in zip(('u', 'delta', 'A', 'B', 'delta_bias'), (u, delta, A, B, bias), leaves):
        assert_close(f'd{name}', t.grad, r.grad, 1e-4, seed)


def test_selective_scan_without_bias_and_long_decay(seed):
    """Large step sizes (decays underflow to 0) and no bias: stays finite and exact."""
    u, delta, A, B, _ = scan_inputs(1, 4, 1, 300, torch.float32)
    delta = (25 + torch.rand_like(delta)).requires_grad_()  # above softplus's threshold
    out = selective_scan(u, delta, A, B, None, True, backend='torch')
    ref = scan_oracle(u.double(), delta.double(), A.double(), B.double(), None, True)
    assert torch.isfinite(out).all()
    assert_close('h', out, ref, 1e-5, seed)


@pytest.mark.parametrize('dtype', [torch.bfloat16, torch.float16], ids=['bf16', 'fp16'])
def test_selective_scan_low_precision(dtype, seed):
    u, delta, A, B, bias = scan_inputs(2, 8, 1, 200, dtype)
    out = selective_scan(u, delta, A, B, bias, backend='torch')
    ref = scan_oracle(u.detach(), delta.detach(), A.detach(), B.detach(), bias.detach())
    assert out.dtype == dtype
    assert_close('h', out, ref, 1e-2, seed)


FUSION_SHAPES = [(1, 4, 1, 1), (2, 8, 1, 37), (2, 8, 37, 1), (1, 16, 3, 2), (2, 16, 7, 9),
                 (1, 4, 23, 17)]


@pytest.mark.parametrize('shape', FUSION_SHAPES, ids=lambda s: 'B{}-D{}-H{}-W{}'.format(*s))
def test_state_fusion_matches_oracle(shape, seed):
    h = torch.randn(*shape).requires_grad_()
    params = fusion_params(shape[1])
    out = state_fusion(h, *params, backend='torch')
    leaves = [t.detach().double().requires_grad_() for t in [h] + params]
    ref = fusion_oracle(*leaves)
    assert out.shape == h.shape
    assert_close('fused', out, ref, 1e-5, seed)
    grad = torch.randn_like(ref)
    out.backward(grad.float())
    ref.backward(grad)
    for name, t, r in zip(('h', 'k1', 'k3', 'k5', 'alpha'), [h] + params, leaves):
        assert_close(f'd{name}', t.grad, r.grad, 1e-4, seed)


def test_state_fusion_accepts_non_contiguous(seed):
    h = torch.randn(2, 9, 11, 8).transpose(2, 3)          # (2, 8, 11, 9) after the next line
    h = h.permute(0, 3, 2, 1)
    params = fusion_params(h.shape[1])
    out = state_fusion(h, *params, backend='torch')
    assert_close('fused', out, fusion_oracle(h, *params), 1e-5, seed)


SASF_SHAPES = [(1, 4, 1, 1), (2, 8, 1, 13), (2, 8, 13, 1), (1, 6, 3, 2), (2, 8, 7, 9)]


@pytest.mark.parametrize('shape', SASF_SHAPES, ids=lambda s: 'B{}-D{}-H{}-W{}'.format(*s))
def test_structure_aware_ssm_matches_oracle(shape, seed):
    batch, dim, height, width = shape
    length = height * width
    u, delta, A, B, bias = scan_inputs(batch, dim, 1, length, torch.float32)
    C = torch.randn(batch, 1, length).requires_grad_()
    D = torch.randn(dim).requires_grad_()
    params = fusion_params(dim)
    inputs = [u, delta, A, B, C, D, bias] + params
    out = structure_aware_ssm(*inputs, (height, width), backend='torch')
    leaves = [t.detach().double().requires_grad_() for t in inputs]
    ref = sasf_oracle(*leaves, (height, width))
    assert_close('y', out, ref, 1e-5, seed)
    grad = torch.randn_like(ref)
    out.backward(grad.float())
    ref.backward(grad)
    names = ('u', 'delta', 'A', 'B', 'C', 'D', 'delta_bias', 'k1', 'k3', 'k5', 'alpha')
    for name, t, r in zip(names, inputs, leaves):
        assert_close(f'd{name}', t.grad, r.grad, 1e-4, seed)
