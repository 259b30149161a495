"""The public ops: validate the arguments once, then run the chosen backend.

Backends:
    ``'torch'``: plain PyTorch (``*/reference.py``); autograd and ``torch.compile`` see
        straight through it. The CPU path.
    ``'triton'``: JIT-compiled Triton kernels registered as ``torch.library`` custom ops
        (``*/op.py``). Runs on CUDA tensors, and on CPU tensors when the Triton interpreter
        is on (``TRITON_INTERPRET=1`` set before Triton is imported), which is how CI
        tests the kernels' logic.
    ``None``: Triton for CUDA tensors, PyTorch otherwise, unless the environment variable
        ``MMSM_BACKEND`` is set to 'torch' or 'triton'. On this automatic choice an op whose
        Triton kernels cannot compile or launch on the device runs the PyTorch path there
        instead, with one warning (``_fallback``); a forced 'triton' raises the error.
"""
import os
import warnings
from typing import Optional, Sequence, Tuple

from torch import Tensor

from . import _validate
from .sasf.reference import structure_aware_ssm_ref
from .selective_scan.reference import selective_scan_ref
from .state_fusion.reference import state_fusion_ref


def _interpreter_on() -> bool:
    return os.environ.get('TRITON_INTERPRET', '0') == '1'


def resolve_backend(backend: Optional[str], x: Tensor) -> Tuple[str, bool]:
    """Pick the backend for a call whose main input is ``x``.

    An explicit ``backend`` wins, then the environment variable ``MMSM_BACKEND``, then the
    automatic choice (Triton for CUDA tensors, else torch).

    Returns:
        ``(backend, may_fall_back)``: ``'torch'`` or ``'triton'``, and whether a Triton op
        may run the PyTorch path where its kernels fail (only on the automatic choice).

    With a Triton older than ``_validate.MIN_TRITON``, or none installed, the automatic
    choice for CUDA tensors is torch, with one warning that names the fix, and a forced
    'triton' raises.

    Raises:
        ValueError: For an unknown backend or ``MMSM_BACKEND`` value, or ``'triton'`` on CPU
            tensors without the interpreter.
        RuntimeError: For ``'triton'`` with a Triton too old for the kernels, or none.
    """
    _validate.check_backend(backend)
    if backend is None and os.environ.get(_validate.ENV_VAR):
        backend = os.environ[_validate.ENV_VAR]
        _validate.check_env_backend(backend)
    # The Triton version is looked up only where it decides: CPU tensors and 'torch' never
    # import Triton for it.
    if backend is None:
        if not x.is_cuda:
            return 'torch', False
        old_triton = _validate.old_triton_message()
        if old_triton:
            _warn_once(old_triton)
            return 'torch', False
        return 'triton', True
    if backend == 'triton':
        old_triton = _validate.old_triton_message()
        if old_triton:
            raise RuntimeError(old_triton)
        if not x.is_cuda and not _interpreter_on():
            raise ValueError(
                "backend='triton' needs CUDA tensors; for CPU tensors either use "
                "backend='torch' or set TRITON_INTERPRET=1 before importing triton (slow, for "
                'testing kernels)')
    return backend, False


_warned = set()   # messages warned in this process


def _warn_once(message: str) -> None:
    """Warn ``message`` as a ``KernelFallbackWarning``, once per process."""
    if message not in _warned:
        _warned.add(message)
        warnings.warn(message, _validate.KernelFallbackWarning, stacklevel=4)


def selective_scan(u: Tensor, delta: Tensor, A: Tensor, B: Tensor,
                   delta_bias: Optional[Tensor] = None, delta_softplus: bool = True,
                   backend: Optional[str] = None) -> Tensor:
    """Selective scan returning every state (docs/model.md step 5).

    ``dt = softplus(delta + delta_bias)`` (identity above 20),
    ``h_t = exp(dt_t * A) * h_{t-1} + dt_t * B_t * u_t``, ``h_{-1} = 0``.

    Args:
        u: Inputs, (batch, D, L); float32, float16 or bfloat16; any strides.
        delta: Step sizes before bias and softplus, (batch, D, L), dtype of ``u``.
        A: State matrix, (D, N); negative (``-exp(A_logs)``); any float dtype.
        B: Input projections, (batch, N, L), dtype of ``u``.
        delta_bias: (D,) or None.
        delta_softplus: Apply softplus to ``delta + delta_bias``.
        backend: 'torch', 'triton' or None (``MMSM_BACKEND`` if set, else Triton for CUDA
            tensors, with the PyTorch path where a kernel cannot run, and torch otherwise).

    Returns:
        States h, (batch, D, N, L), dtype of ``u``; accumulated in float32.

    Raises:
        ValueError: On mismatched shapes, dtypes or devices, or an unknown ``backend`` or
            ``MMSM_BACKEND``.

    Examples::
        >>> u, delta = torch.randn(2, 8, 100), torch.randn(2, 8, 100)
        >>> A, B = -torch.rand(8, 1), torch.randn(2, 1, 100)
        >>> selective_scan(u, delta, A, B).shape
        torch.Size([2, 8, 1, 100])
    """
    _validate.check_scan_args(u, delta, A, B, delta_bias)
    backend, may_fall_back = resolve_backend(backend, u)
    if backend == 'torch':
        return selective_scan_ref(u, delta, A, B, delta_bias, delta_softplus)
    from .selective_scan.op import selective_scan_triton
    return selective_scan_triton(u, delta, A, B, delta_bias, delta_softplus, may_fall_back)


def state_fusion(h: Tensor, k1: Tensor, k3: Tensor, k5: Tensor, alpha: Tensor,
                 backend: Optional[str] = None) -> Tensor:
    """Fuse SSM states with depthwise 3x3 kernels at dilations 1, 3, 5 (docs/model.md step 6).

    ``h~ = sum_k alpha_k * dwconv3x3_dilation_k(h)``, each with replicate padding of size k.

    Args:
        h: States, (batch, D, H, W); float32, float16 or bfloat16; any strides.
        k1, k3, k5: Depthwise kernels, each (D, 1, 3, 3). alpha: Mixing weights, (3,).
        backend: 'torch', 'triton' or None (``MMSM_BACKEND`` if set, else Triton for CUDA
            tensors, with the PyTorch path where a kernel cannot run, and torch otherwise).

    Returns:
        Fused states, (batch, D, H, W), dtype of ``h``.

    Raises:
        ValueError: On mismatched shapes, dtypes or devices, or an unknown ``backend`` or
            ``MMSM_BACKEND``.
    """
    _validate.check_fusion_args(h, k1, k3, k5, alpha)
    backend, may_fall_back = resolve_backend(backend, h)
    if backend == 'torch':
        return state_fusion_ref(h, k1, k3, k5, alpha)
    from .state_fusion.op import state_fusion_triton
    return state_fusion_triton(h, k1, k3, k5, alpha, may_fall_back)


def structure_aware_ssm(u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Tensor,
                        delta_bias: Optional[Tensor], k1: Tensor, k3: Tensor, k5: Tensor,
                        alpha: Tensor, hw: Sequence[int], delta_softplus: bool = True,
                        backend: Optional[str] = None) -> Tensor:
    """The SASF core: scan, structure-aware fusion and observation (docs/model.md steps 5-7), N = 1.

    ``y = C * state_fusion(selective_scan(u, delta, A, B).view(H, W)) + D * u``.

    Args:
        u, delta: (batch, D, L), L = H*W in row-major order; float32, float16 or bfloat16.
        A: (D, 1). B, C: (batch, 1, L), dtype of ``u``. D: Skip weights, (D,).
        delta_bias: (D,) or None. k1, k3, k5: Fusion kernels, each (D, 1, 3, 3).
        alpha: (3,). hw: (H, W) of the state map.
        delta_softplus: Apply softplus to ``delta + delta_bias``.
        backend: 'torch', 'triton' or None (``MMSM_BACKEND`` if set, else Triton for CUDA
            tensors, with the PyTorch path where a kernel cannot run, and torch otherwise).

    Returns:
        y, (batch, D, L), dtype of ``u``.

    Raises:
        ValueError: On mismatched shapes, dtypes or devices, N != 1, ``hw`` that does not
            match L, or an unknown ``backend`` or ``MMSM_BACKEND``.
    """
    _validate.check_sasf_args(u, delta, A, B, C, D, delta_bias, k1, k3, k5, alpha, hw)
    hw = (int(hw[0]), int(hw[1]))
    backend, may_fall_back = resolve_backend(backend, u)
    if backend == 'torch':
        return structure_aware_ssm_ref(u, delta, A, B, C, D, delta_bias, k1, k3, k5, alpha, hw,
                                       delta_softplus)
    from .sasf.op import structure_aware_ssm_triton
    return structure_aware_ssm_triton(u, delta, A, B, C, D, delta_bias, k1, k3, k5, alpha, hw,
                                      delta_softplus, may_fall_back)
