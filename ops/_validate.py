"""Argument checks for the public ops, run once before any computation or kernel launch.

Each check raises ``ValueError`` (or ``TypeError`` for non-tensors) naming the argument,
the expected and the actual value, so a caller can fix the call without reading the code.
Nothing here imports Triton at module level: the PyTorch path (CPU) runs without it.
"""
import functools
from typing import Optional, Sequence, Tuple

import torch
from torch import Tensor

FLOAT_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
BACKENDS = (None, 'torch', 'triton')
ENV_VAR = 'MMSM_BACKEND'  # forces a backend where the caller passed backend=None
# The oldest Triton that compiles every kernel (docs/gpu.md: the compile check runs in CI
# under it); setup.py's 'triton' extra states the same bound.
MIN_TRITON = (3, 4)


class KernelFallbackWarning(RuntimeWarning):
    """A Triton op runs the PyTorch path on a GPU: its kernels cannot compile or launch there
    (``_fallback``), or the installed Triton is too old or missing (``dispatch``)."""


def installed_triton() -> Optional[str]:
    """The installed Triton's version string, e.g. '3.6.0', or None when there is none
    (a CPU-only environment: the PyTorch path needs no Triton)."""
    try:
        import triton
    except ImportError:
        return None
    return triton.__version__


@functools.lru_cache(maxsize=None)
def triton_version(version: str) -> Tuple[int, ...]:
    """A Triton release as numbers, e.g. (3, 6, 0) for '3.6.0' or '3.6.0+git1234'; cached
    by the version string (every Triton op call asks)."""
    release = version.split('+')[0].split('.')
    return tuple(int(p) for p in release if p.isdigit())


def old_triton_message() -> Optional[str]:
    """Why the Triton kernels cannot run with the installed Triton (too old, or none), and
    the fix; None when it is recent enough."""
    version = installed_triton()
    if version is not None and triton_version(version) >= MIN_TRITON:
        return None
    floor = '.'.join(map(str, MIN_TRITON))
    found = f'found {version} (its compiler rejects some of them)' if version else \
        'but it is not installed'
    return (f"mmspatialmamba's Triton kernels need triton>={floor}, {found}. Install one, e.g. "
            f"pip install 'triton>={floor}' (PyTorch 2.8 and later bring one), or run the "
            f"PyTorch path: backend='torch' on the op or the backbone, or {ENV_VAR}=torch.")


def check_tensor(name: str, t: Tensor, ndim: int) -> None:
    """Check that ``t`` is a floating tensor of rank ``ndim``."""
    if not isinstance(t, torch.Tensor):
        raise TypeError(f'{name} must be a torch.Tensor, got {type(t).__name__}')
    if t.dim() != ndim:
        raise ValueError(f'{name} must have {ndim} dimensions, got shape {tuple(t.shape)}')
    if t.dtype not in FLOAT_DTYPES:
        raise ValueError(f'{name} must be float32, float16 or bfloat16, got {t.dtype}')


def check_shape(name: str, t: Tensor, expected: Sequence[int], meaning: str) -> None:
    """Check ``t.shape == expected``; ``meaning`` spells the expected layout."""
    if tuple(t.shape) != tuple(expected):
        raise ValueError(f'{name} must have shape {meaning} = {tuple(expected)}, '
                         f'got {tuple(t.shape)}')


def check_same_device(**tensors: Optional[Tensor]) -> None:
    """Check that every given tensor lives on one device."""
    present = {k: v for k, v in tensors.items() if v is not None}
    devices = {v.device for v in present.values()}
    if len(devices) > 1:
        listing = ', '.join(f'{k} on {v.device}' for k, v in present.items())
        raise ValueError(f'all tensors must be on one device, got {listing}; '
                         'move them with .to(device)')


def check_activation_dtypes(**tensors: Tensor) -> None:
    """Check that the activations (not the parameters) share one dtype.

    Parameters (A, delta_bias, kernels, alpha, D) may stay float32 next to float16/bfloat16
    activations, as they do under autocast; activations of mixed dtypes are a caller bug.
    """
    dtypes = {v.dtype for v in tensors.values()}
    if len(dtypes) > 1:
        listing = ', '.join(f'{k} is {v.dtype}' for k, v in tensors.items())
        raise ValueError(f'activations must share one dtype, got {listing}; cast them to one')


def check_backend(backend: Optional[str]) -> None:
    """Check that ``backend`` is one of None, 'torch', 'triton'."""
    if backend not in BACKENDS:
        raise ValueError(f'unknown backend {backend!r}; choose one of {BACKENDS} '
                         '(None picks triton for CUDA tensors and torch otherwise)')


def check_env_backend(value: str) -> None:
    """Check the value of the environment variable ``MMSM_BACKEND``."""
    if value not in ('torch', 'triton'):
        raise ValueError(f"{ENV_VAR}={value!r} is not a backend; set it to 'torch' or "
                         "'triton', or unset it (Triton for CUDA tensors, else torch)")


def check_scan_args(u: Tensor, delta: Tensor, A: Tensor, B: Tensor,
                    delta_bias: Optional[Tensor]) -> None:
    """Validate the arguments of ``selective_scan`` (shapes in its docstring)."""
    check_tensor('u', u, 3)
    batch, dim, length = u.shape
    check_tensor('delta', delta, 3)
    check_shape('delta', delta, (batch, dim, length), '(batch, D, L) like u')
    check_tensor('A', A, 2)
    if A.shape[0] != dim:
        raise ValueError(f'A must have shape (D, N) with D = {dim} (u.shape[1]), '
                         f'got {tuple(A.shape)}')
    d_state = A.shape[1]
    check_tensor('B', B, 3)
    check_shape('B', B, (batch, d_state, length), '(batch, N, L)')
    if delta_bias is not None:
        check_tensor('delta_bias', delta_bias, 1)
        check_shape('delta_bias', delta_bias, (dim,), '(D,)')
    check_activation_dtypes(u=u, delta=delta, B=B)
    check_same_device(u=u, delta=delta, A=A, B=B, delta_bias=delta_bias)


def check_fusion_args(h: Tensor, k1: Tensor, k3: Tensor, k5: Tensor, alpha: Tensor) -> None:
    """Validate the arguments of ``state_fusion`` (shapes in its docstring)."""
    check_tensor('h', h, 4)
    dim = h.shape[1]
    for name, k in (('k1', k1), ('k3', k3), ('k5', k5)):
        check_tensor(name, k, 4)
        check_shape(name, k, (dim, 1, 3, 3), '(D, 1, 3, 3)')
    check_tensor('alpha', alpha, 1)
    check_shape('alpha', alpha, (3,), '(3,)')
    check_same_device(h=h, k1=k1, k3=k3, k5=k5, alpha=alpha)


def check_sasf_args(u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Tensor,
                    delta_bias: Optional[Tensor], k1: Tensor, k3: Tensor, k5: Tensor,
                    alpha: Tensor, hw: Sequence[int]) -> None:
    """Validate the arguments of ``structure_aware_ssm`` (shapes in its docstring)."""
    check_scan_args(u, delta, A, B, delta_bias)
    batch, dim, length = u.shape
    if A.shape[1] != 1:
        raise ValueError(f'structure_aware_ssm needs d_state N = 1 (every published variant), '
                         f'got A of shape {tuple(A.shape)}; for N > 1 call selective_scan '
                         'and state_fusion separately')
    check_tensor('C', C, 3)
    check_shape('C', C, (batch, 1, length), '(batch, N, L)')
    check_tensor('D', D, 1)
    check_shape('D', D, (dim,), '(D,)')
    # Under torch.jit.trace (TorchScript ONNX export) sizes read from ``x.shape`` are 0-dim
    # integer tensors; they are accepted like ints.
    if (not isinstance(hw, (tuple, list)) or len(hw) != 2
            or not all(_is_int(s) and s > 0 for s in hw)):
        raise ValueError(f'hw must be a pair of positive ints (H, W), got {hw!r}')
    if hw[0] * hw[1] != length:
        raise ValueError(f'hw = {tuple(hw)} gives H*W = {hw[0] * hw[1]}, '
                         f'but u has L = {length} positions')
    for name, k in (('k1', k1), ('k3', k3), ('k5', k5)):
        check_tensor(name, k, 4)
        check_shape(name, k, (dim, 1, 3, 3), '(D, 1, 3, 3)')
    check_tensor('alpha', alpha, 1)
    check_shape('alpha', alpha, (3,), '(3,)')
    check_activation_dtypes(u=u, delta=delta, B=B, C=C)
    check_same_device(u=u, C=C, D=D, k1=k1, k3=k3, k5=k5, alpha=alpha)


def _is_int(size) -> bool:
    """An int, or a 0-dim integer tensor (a traced size)."""
    if isinstance(size, Tensor):
        return size.dim() == 0 and not size.is_floating_point() and not size.is_complex()
    return isinstance(size, int)
