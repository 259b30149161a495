"""Never strand a user: where a Triton kernel cannot compile or launch, run the PyTorch path.

Every Triton custom op (``*/op.py``) computes its result through ``run_kernels``, which runs
the kernels under their tensors' CUDA device (``_utils.launch_device``). When the backend was
chosen automatically (``backend=None`` on CUDA tensors) and the kernels raise one of the
failures that say this GPU or this Triton cannot build or load them (``is_kernel_failure``:
a compilation error, out of resources, a ptxas failure, an architecture or driver the
generated code does not run on), the op warns once per op and device, with the op, the
kernel, the error and how to force a backend, and from then on computes that op on that
device with the PyTorch reference (``*/reference.py``). Backward ops get their gradients by
``torch.func.vjp`` over the reference (``reference_grads``): autograd does not record inside
a custom op's implementation, and the fallback has to live there so that ``torch.compile``
graphs, which call the ops directly, fall back too. A forced ``backend='triton'`` never falls
back, and nothing else is caught: wrong values, NaN, shape errors, ordinary Python errors,
CUDA faults such as illegal memory accesses, and ``invalid argument`` from a launch (what a
wrong grid or launch configuration raises: a bug in a launcher, not a limit of the GPU)
propagate.
"""
import warnings
from typing import Callable, List, Optional, Sequence, TypeVar

import torch
from torch import Tensor
from triton.compiler.errors import CompilationError
from triton.runtime import KernelInterface
from triton.runtime import errors as runtime_errors

from . import _utils
from ._validate import ENV_VAR, KernelFallbackWarning

# CompilationError wraps every error raised while Triton turns a kernel's Python into IR
# (e.g. a global that is not a tl.constexpr); OutOfResources: shared memory, threads;
# PTXASError (Triton >= 3.2): the assembler rejected the generated PTX for this architecture.
FAILURE_TYPES = (CompilationError, runtime_errors.OutOfResources) + tuple(
    getattr(runtime_errors, name) for name in ('PTXASError',) if hasattr(runtime_errors, name))
# Failures that Triton reports as a plain RuntimeError, told apart by their message: an MLIR
# pass of Triton's compiler failed, ptxas failed (Triton < 3.2, before PTXASError), or the
# CUDA driver cannot load the kernel on this GPU or needs more registers per block than the
# GPU has (the prefix is that of Triton's launcher, ``gpuAssert`` in
# backends/nvidia/driver.c).
FAILURE_MESSAGES = (
    'PassManager::run failed',
    '`ptxas` failed with error code',
    'Internal Triton PTX codegen error',
    'Triton Error [CUDA]: too many resources requested for launch',
    'Triton Error [CUDA]: no kernel image is available',
    'Triton Error [CUDA]: device kernel image is invalid',
    'Triton Error [CUDA]: the provided PTX was compiled with an unsupported toolchain',
    'Triton Error [CUDA]: a PTX JIT compilation failed',
)

T = TypeVar('T')
_failed = set()  # (op, device) pairs whose kernels failed: they run the reference


def is_kernel_failure(error: BaseException) -> bool:
    """Whether ``error`` says a Triton kernel cannot compile or launch (see module doc)."""
    if isinstance(error, FAILURE_TYPES):
        return True
    return type(error) is RuntimeError and any(m in str(error) for m in FAILURE_MESSAGES)


def _kernel_name(error: BaseException) -> str:
    """The name of the first Triton kernel on ``error``'s traceback: the one a launcher
    called (found there so that launchers need not know about the fallback)."""
    tb = error.__traceback__
    while tb is not None:
        owner = tb.tb_frame.f_locals.get('self')
        if isinstance(owner, KernelInterface) and hasattr(owner, '__name__'):
            return owner.__name__
        tb = tb.tb_next
    return 'unknown kernel'


def _warning(op: str, device: torch.device, error: BaseException) -> str:
    return (f'mmspatialmamba: the Triton kernel {_kernel_name(error)} of op {op} cannot run on '
            f'{device} ({type(error).__name__}: {error}). {op} now runs the PyTorch reference on '
            f'{device} (same results, slower). To choose a backend yourself, pass '
            "backend='torch' (or 'triton', which raises the error instead of falling back) to "
            "the op or the backbone (model.backbone.backend), or set the environment variable "
            f'{ENV_VAR}=torch or {ENV_VAR}=triton.')


def run_kernels(op: str, device: torch.device, may_fall_back: bool, kernels: Callable[[], T],
                reference: Callable[[], T]) -> T:
    """``kernels()``, or ``reference()`` where the kernels cannot compile or launch.

    Args:
        op: The custom op's name, for the warning and the record of failed ops.
        device: Device of the op's inputs; ``kernels()`` runs with it as the current CUDA
            device, where Triton launches.
        may_fall_back: False when the user forced ``backend='triton'``: failures propagate.
        kernels: Computes the result with the Triton kernels.
        reference: Computes the same result (same shapes and dtypes) with the PyTorch path.

    Returns:
        The result of ``kernels()``, or of ``reference()`` (made contiguous) after a kernel
        failure (warned once per op and device; later calls go straight to the reference).
    """
    key = (op, str(device))
    if may_fall_back and key in _failed:
        return _contiguous(reference())
    try:
        with _utils.launch_device(device):
            return kernels()
    except Exception as error:  # re-raised below unless it is a kernel failure
        if not (may_fall_back and is_kernel_failure(error)):
            raise
        # Warned before it is recorded: where the warning is an error (the test suite's
        # pytest.ini), every call raises instead of later ones running the reference.
        warnings.warn(_warning(op, device, error), KernelFallbackWarning, stacklevel=2)
        _failed.add(key)
    return _contiguous(reference())


def _contiguous(result: T) -> T:
    """The reference's tensors made contiguous, as the custom ops' fake kernels declare them
    (the PyTorch path may compute in another memory layout, e.g. time-major or channels-last);
    ``result`` is a tensor or a list/tuple of tensors and None."""
    if isinstance(result, Tensor):
        return result.contiguous()
    return type(result)(t.contiguous() if isinstance(t, Tensor) else t for t in result)


def reference_grads(fn: Callable[..., Tensor], inputs: Sequence[Optional[Tensor]],
                    grad_output: Tensor) -> List[Optional[Tensor]]:
    """Gradients of ``fn(*inputs)`` for the upstream gradient ``grad_output``.

    Computed by ``torch.func.vjp``, which works inside a custom op's implementation where
    autograd records nothing.

    Args:
        fn: A PyTorch reference taking ``inputs`` positionally.
        inputs: Its tensor arguments; None stays None (an absent optional input).
        grad_output: Gradient w.r.t. ``fn``'s output; same shape and dtype as that output.

    Returns:
        One gradient per input, with that input's shape and dtype; None for None inputs.
    """
    present = [i for i, t in enumerate(inputs) if t is not None]

    def of_present(*tensors: Tensor) -> Tensor:
        args = list(inputs)
        for i, t in zip(present, tensors):
            args[i] = t
        return fn(*args)

    _, vjp = torch.func.vjp(of_present, *(inputs[i] for i in present))
    grads = iter(vjp(grad_output))
    return [next(grads) if t is not None else None for t in inputs]
