"""Helpers shared by the op tests: inputs, test ids and the comparison with the float64 oracle.

Every op test builds its inputs here, runs one or both backends and compares values and every
gradient with ``spec_oracle`` (float64, from the same rounded inputs), or, at shapes too long
for the oracle, Triton with the PyTorch path. Test ids follow one style,
``B2-D8-H7-W9-bf16`` plus tags for the non-default options (``nobias``, ``raw`` for no
softplus, the memory layout), e.g. ``triton-B1-D3-N3-L50-fp32-nobias-strided``.
"""
from typing import Callable, Optional, Sequence

import pytest
import torch
from torch import Tensor

TOL = {torch.float32: (1e-5, 1e-4), torch.float16: (5e-3, 5e-3),
       torch.bfloat16: (1e-2, 1e-2)}  # (values, gradients): relative L2 error
DTYPE_IDS = {torch.float32: 'fp32', torch.float16: 'fp16', torch.bfloat16: 'bf16'}
CPU = torch.device('cpu')

SCAN_NAMES = ['u', 'delta', 'A', 'B', 'delta_bias']
FUSION_NAMES = ['h', 'k1', 'k3', 'k5', 'alpha']
SASF_NAMES = ['u', 'delta', 'A', 'B', 'C', 'D', 'delta_bias', 'k1', 'k3', 'k5', 'alpha']

# GPU cases of the map ops (batch, D, H, W): odd and long maps against the oracle, and the
# models' shapes (224 classification batch 128 stage 1; 800x1344 detection stages 1 and 4)
# for Triton against the PyTorch path.
GPU_MAP_SHAPES = [(2, 8, 1, 37), (2, 64, 56, 57), (1, 16, 200, 336), (2, 512, 7, 12)]
MODEL_MAP_SHAPES = [(128, 64, 56, 56), (2, 64, 200, 336), (2, 512, 25, 42)]
GPU_DTYPES = pytest.mark.parametrize('dtype', [torch.float32, torch.bfloat16],
                                     ids=['fp32', 'bf16'])


def case_id(dims: str, shape: Sequence[int], dtype: Optional[torch.dtype] = None,
            bias: bool = True, softplus: bool = True, layout: str = 'contiguous') -> str:
    """The id of one case, e.g. ``case_id('BDHW', (2, 8, 7, 9), torch.bfloat16)`` is
    ``B2-D8-H7-W9-bf16``; options away from their defaults are appended as tags."""
    parts = [f'{d}{s}' for d, s in zip(dims, shape)] + ([DTYPE_IDS[dtype]] if dtype else [])
    parts += [tag for tag, on in (('nobias', not bias), ('raw', not softplus),
                                  (layout, layout != 'contiguous')) if on]
    return '-'.join(parts)


def case(backend: str, dims: str, shape: Sequence[int], dtype: torch.dtype = torch.float32,
         **options):
    """One ``pytest.param(backend, shape, dtype, options)`` with its ``case_id``; ``options``
    (``bias``, ``softplus``, ``layout``) go to the input builders below."""
    return pytest.param(backend, shape, dtype, options,
                        id=f'{backend}-{case_id(dims, shape, dtype, **options)}')


def relative_error(out: Tensor, ref: Tensor) -> float:
    """Relative L2 error of ``out`` against ``ref``, in float64: ``|out - ref| / |ref|`` (a
    reference of norm zero counts as 1e-30)."""
    out, ref = out.double(), ref.double()
    return ((out - ref).norm() / ref.norm().clamp_min(1e-30)).item()


def assert_close(name: str, out: Tensor, ref: Tensor, tol: float, seed: int,
                 err: Optional[float] = None) -> None:
    """Relative L2 error below ``tol``; the message names the seed and the max abs error.

    ``err``: ``relative_error(out, ref)`` where the caller has computed it already (on large
    tensors it costs a float64 copy of both).
    """
    assert not torch.isnan(ref).any(), f'{name}: the oracle holds NaN (seed {seed})'
    assert out.shape == ref.shape, f'{name}: shape {tuple(out.shape)} != {tuple(ref.shape)}'
    if err is None:
        err = relative_error(out, ref)
    assert err < tol, _closeness_failure(name, out, ref, err, tol, seed)


def _closeness_failure(name: str, out: Tensor, ref: Tensor, err: float, tol: float,
                       seed: int) -> str:
    """``assert_close``'s message, built only when the check fails."""
    out, ref = out.double(), ref.double()
    max_abs = (out - ref).abs().max().item() if out.numel() else 0.0
    return (f'{name}: relative L2 error {err:.3g} >= {tol:g}, max abs error '
            f'{max_abs:.3g}, NaN in output: {bool(torch.isnan(out).any())} '
            f'(seed {seed}; replay with torch.manual_seed({seed}))')


def forward_backward(fn: Callable, inputs: Sequence[Optional[Tensor]],
                     upstream: Optional[Tensor] = None, **kwargs) -> tuple:
    """``fn(*inputs, **kwargs)`` and its gradients w.r.t. every input that is not None.

    ``upstream`` (cast to the output's dtype) is backpropagated; None draws a random one,
    rounded to the output's dtype. Returns ``(output, grads, upstream)``.
    """
    leaves = [t.detach().requires_grad_(True) if t is not None else None for t in inputs]
    out = fn(*leaves, **kwargs)
    if upstream is None:
        upstream = torch.randn(out.shape, dtype=torch.float64, device=out.device)
    upstream = upstream.to(out.dtype)
    grads = torch.autograd.grad(out, [t for t in leaves if t is not None], upstream)
    return out.detach(), grads, upstream


def check_outputs(out: Tensor, grads: Sequence[Tensor], ref: Tensor, ref_grads: Sequence[Tensor],
                  inputs: Sequence[Optional[Tensor]], names: Sequence[str], dtype: torch.dtype,
                  seed: int) -> None:
    """The output has the dtype of ``inputs[0]``, each gradient that of its input, and every
    value and gradient is within ``TOL[dtype]`` of the reference ``ref``, ``ref_grads``."""
    tol_val, tol_grad = TOL[dtype]
    assert out.dtype == inputs[0].dtype, f'output has dtype {out.dtype}, input {inputs[0].dtype}'
    assert_close('output', out, ref, tol_val, seed)
    present = [(n, t) for n, t in zip(names, inputs) if t is not None]
    for (name, leaf), g, g_ref in zip(present, grads, ref_grads):
        assert g.dtype == leaf.dtype, f'd{name} has dtype {g.dtype}, input {leaf.dtype}'
        assert_close(f'd{name}', g, g_ref, tol_grad, seed)


def compare(op: Callable, oracle: Callable, inputs: Sequence[Optional[Tensor]],
            names: Sequence[str], dtype: torch.dtype, seed: int, backends: Sequence[str],
            **kwargs) -> None:
    """Run ``op`` on each of ``backends`` and ``oracle`` (once, in float64) on the same
    rounded inputs, backpropagate one random upstream gradient (rounded to ``dtype``) through
    each and compare outputs and gradients (``check_outputs``). ``kwargs`` go to both."""
    upstream, results = None, []
    for backend in backends:
        out, grads, upstream = forward_backward(op, inputs, upstream, backend=backend, **kwargs)
        results.append((out, grads))
    ref_inputs = [t.double() if t is not None else None for t in inputs]
    ref, ref_grads, _ = forward_backward(oracle, ref_inputs, upstream.double(), **kwargs)
    for out, grads in results:
        check_outputs(out, grads, ref, ref_grads, inputs, names, dtype, seed)


def compare_backends(op: Callable, inputs: Sequence[Optional[Tensor]], names: Sequence[str],
                     dtype: torch.dtype, seed: int, **kwargs) -> None:
    """The Triton backend against the PyTorch one (values and gradients, ``check_outputs``),
    for shapes where the float64 oracle's per-position loop would be too slow."""
    ref, ref_grads, upstream = forward_backward(op, inputs, backend='torch', **kwargs)
    out, grads, _ = forward_backward(op, inputs, upstream, backend='triton', **kwargs)
    check_outputs(out, grads, ref, ref_grads, inputs, names, dtype, seed)


def channels_last(x: Tensor) -> Tensor:
    """Same values as ``x`` (batch, C, ...), stored with the channel dimension innermost."""
    return x.movedim(1, -1).contiguous().movedim(-1, 1)


def scan_inputs(batch: int, dim: int, d_state: int, length: int, dtype: torch.dtype,
                device: torch.device = CPU, bias: bool = True, layout: str = 'contiguous',
                softplus: bool = True) -> list:
    """``[u, delta, A, B, delta_bias]`` of ``selective_scan``.

    With softplus, every 7th step size is above softplus's threshold (its identity branch);
    without, ``delta + delta_bias`` stays positive so the decays stay below 1. ``layout``:
    'contiguous', or 'strided' (channels innermost; A and delta_bias with non-unit strides).
    """
    u = torch.randn(batch, dim, length, device=device)
    delta = 0.5 * torch.randn(batch, dim, length, device=device)
    delta_bias = 0.5 * torch.randn(dim, device=device) - 1.0 if bias else None
    if softplus:
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


def fusion_inputs(batch: int, dim: int, height: int, width: int, dtype: torch.dtype,
                  device: torch.device = CPU, layout: str = 'contiguous') -> list:
    """``[h, k1, k3, k5, alpha]`` of ``state_fusion``.

    ``layout``: 'contiguous'; 'strided' (channels innermost, kernels and alpha with non-unit
    strides); 'sliced' (innermost stride 1, other strides not those of a packed map);
    'transposed' (H innermost, then D, then W: W's stride is not 1).
    """
    h = torch.randn(batch, dim, height, width, device=device).to(dtype)
    kernels = [torch.randn(dim, 1, 3, 3, device=device) / 3 for _ in range(3)]
    alpha = torch.rand(3, device=device) + 0.5
    if layout == 'strided':
        h = channels_last(h)
        kernels = [k.transpose(2, 3).contiguous().transpose(2, 3) for k in kernels]
        alpha = torch.stack([alpha, alpha], dim=1)[:, 0]
    elif layout == 'sliced':
        h = torch.randn(batch, 2 * dim, height, width + 3, device=device).to(dtype)
        h = h[:, ::2, :, 1:width + 1]
    elif layout == 'transposed':
        h = torch.randn(batch, width, dim, height, device=device).to(dtype).permute(0, 2, 3, 1)
    return [h, *kernels, alpha]


def sasf_inputs(batch: int, dim: int, height: int, width: int, dtype: torch.dtype,
                device: torch.device = CPU, bias: bool = True, layout: str = 'contiguous',
                softplus: bool = True) -> list:
    """``[u, delta, A, B, C, D, delta_bias, k1, k3, k5, alpha]`` of ``structure_aware_ssm``
    (N = 1, L = height * width); options as ``scan_inputs`` and ``fusion_inputs``."""
    length = height * width
    u, delta, A, B, delta_bias = scan_inputs(batch, dim, 1, length, dtype, device, bias, layout,
                                             softplus)
    C = torch.randn(batch, 1, length, device=device).to(dtype)
    D = torch.randn(dim, device=device)
    _, k1, k3, k5, alpha = fusion_inputs(batch, dim, height, width, dtype, device, layout)
    if layout == 'strided':
        C = channels_last(C)
    return [u, delta, A, B, C, D, delta_bias, k1, k3, k5, alpha]
