"""Bad arguments to the public ops raise a clear error before any computation."""
import pytest
import torch

from mmspatialmamba.ops import selective_scan, state_fusion, structure_aware_ssm


def scan_args(batch=2, dim=4, d_state=1, length=6):
    return dict(u=torch.randn(batch, dim, length), delta=torch.randn(batch, dim, length),
                A=-torch.rand(dim, d_state), B=torch.randn(batch, d_state, length),
                delta_bias=torch.randn(dim))


def fusion_args(dim=4):
    return dict(k1=torch.randn(dim, 1, 3, 3), k3=torch.randn(dim, 1, 3, 3),
                k5=torch.randn(dim, 1, 3, 3), alpha=torch.randn(3))


def sasf_args(batch=2, dim=4, hw=(2, 3)):
    args = scan_args(batch, dim, 1, hw[0] * hw[1])
    args.update(C=torch.randn(batch, 1, hw[0] * hw[1]), D=torch.randn(dim), hw=hw)
    args.update(fusion_args(dim))
    return args


@pytest.mark.parametrize('change, match', [
    (dict(u=torch.randn(2, 4)), r'u must have 3 dimensions'),
    (dict(delta=torch.randn(2, 4, 7)), r'delta must have shape \(batch, D, L\)'),
    (dict(A=-torch.rand(5, 1)), r'A must have shape \(D, N\) with D = 4'),
    (dict(B=torch.randn(2, 2, 6)), r'B must have shape \(batch, N, L\)'),
    (dict(delta_bias=torch.randn(3)), r'delta_bias must have shape \(D,\)'),
    (dict(u=torch.randn(2, 4, 6, dtype=torch.float64)), r'u must be float32, float16'),
    (dict(delta=torch.randn(2, 4, 6).half()), r'activations must share one dtype'),
    (dict(u=torch.randint(0, 3, (2, 4, 6))), r'u must be float32'),
    (dict(B=[1, 2]), r'B must be a torch.Tensor'),
], ids=['rank', 'delta-shape', 'A-dim', 'B-state', 'bias', 'float64', 'mixed', 'int', 'list'])
def test_selective_scan_rejects(change, match):
    args = scan_args()
    args.update(change)
    with pytest.raises((ValueError, TypeError), match=match):
        selective_scan(**args)


def test_unknown_backend_lists_choices():
    with pytest.raises(ValueError, match=r"unknown backend 'cuda'.*'torch', 'triton'"):
        selective_scan(**scan_args(), backend='cuda')


def test_triton_on_cpu_without_interpreter_says_how(monkeypatch):
    monkeypatch.setenv('TRITON_INTERPRET', '0')
    with pytest.raises(ValueError, match=r'TRITON_INTERPRET=1'):
        state_fusion(torch.randn(1, 4, 3, 3), **fusion_args(), backend='triton')


@pytest.mark.parametrize('change, match', [
    (dict(h=torch.randn(4, 3, 3)), r'h must have 4 dimensions'),
    (dict(k3=torch.randn(4, 1, 5, 5)), r'k3 must have shape \(D, 1, 3, 3\)'),
    (dict(k1=torch.randn(3, 1, 3, 3)), r'k1 must have shape \(D, 1, 3, 3\) = \(4, 1, 3, 3\)'),
    (dict(alpha=torch.randn(2)), r'alpha must have shape \(3,\)'),
    (dict(alpha=torch.randn(3, device='meta')), r'all tensors must be on one device'),
])
def test_state_fusion_rejects(change, match):
    args = dict(h=torch.randn(1, 4, 3, 3), **fusion_args())
    args.update(change)
    with pytest.raises(ValueError, match=match):
        state_fusion(**args)


@pytest.mark.parametrize('change, match', [
    (dict(hw=(3, 3)), r'H\*W = 9, but u has L = 6'),
    (dict(hw=6), r'hw must be a pair of positive ints'),
    (dict(hw=(torch.tensor(2.0), torch.tensor(3.0))), r'hw must be a pair of positive ints'),
    (dict(C=torch.randn(2, 1, 5)), r'C must have shape \(batch, N, L\)'),
    (dict(D=torch.randn(5)), r'D must have shape \(D,\)'),
    (dict(A=-torch.rand(4, 2), B=torch.randn(2, 2, 6)), r'needs d_state N = 1'),
])
def test_structure_aware_ssm_rejects(change, match):
    args = sasf_args()
    args.update(change)
    with pytest.raises(ValueError, match=match):
        structure_aware_ssm(**args)


def test_traced_sizes_are_accepted():
    """Under ``torch.jit.trace`` (TorchScript ONNX export) sizes read from a shape are 0-dim
    integer tensors: they work like ints."""
    args = sasf_args()
    expected = structure_aware_ssm(**args, backend='torch')
    args['hw'] = (torch.tensor(2), torch.tensor(3))
    torch.testing.assert_close(structure_aware_ssm(**args, backend='torch'), expected)
