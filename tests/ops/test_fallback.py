"""The PyTorch path as the fallback: where a Triton kernel cannot compile or launch, the op
runs the PyTorch reference (forward and backward) with one warning; other errors propagate.

Failures are injected by replacing a kernel's launch (``kernel.run``, what ``kernel[grid](...)``
calls) with one that raises the exception Triton raises; the kernels run under the interpreter
(conftest.py). pytest.ini makes the fallback's warning an error everywhere else; the tests
that expect a fallback here record warnings themselves. Also: backend selection
(``MMSM_BACKEND``) and the PyTorch path on a device other than the CPU (``meta``).
"""
import re
import types
import warnings
from typing import Callable, NamedTuple

import pytest
import torch
from op_utils import forward_backward, fusion_inputs, sasf_inputs, scan_inputs
from triton.compiler.errors import CompilationError
from triton.runtime.errors import InterpreterError, OutOfResources, PTXASError

from mmspatialmamba.ops import _fallback, selective_scan, state_fusion, structure_aware_ssm
from mmspatialmamba.ops.dispatch import resolve_backend
from mmspatialmamba.ops.sasf.op import structure_aware_ssm_triton
from mmspatialmamba.ops.selective_scan import triton_bwd as scan_bwd_mod
from mmspatialmamba.ops.selective_scan import triton_fwd as scan_fwd_mod
from mmspatialmamba.ops.selective_scan.op import selective_scan_triton
from mmspatialmamba.ops.state_fusion import triton_bwd as fusion_bwd_mod
from mmspatialmamba.ops.state_fusion import triton_fwd as fusion_fwd_mod
from mmspatialmamba.ops.state_fusion.op import state_fusion_triton


def not_compiling() -> CompilationError:
    """The failure that stranded every GPU user: the fusion backward kernel did not compile."""
    return CompilationError(None, None, "NameError('Cannot access global variable N_TAPS from "
                                        "within @jit'ed function')")


class Op(NamedTuple):
    """One op as these tests drive it; ``inputs(device)`` is batch 1, D 3, a 4x5 map."""
    triton: Callable          # the Triton wrapper of op.py, which takes may_fall_back
    public: Callable          # the public op, for its backend='torch' result
    inputs: Callable
    extra: dict               # further keyword arguments of both
    fwd_op: str
    fwd_kernel: Callable      # -> the kernel its forward launches first
    bwd_op: str
    bwd_kernel: Callable      # -> the kernel its backward launches first


OPS = {
    'selective_scan': Op(
        selective_scan_triton, selective_scan,
        lambda device='cpu': scan_inputs(1, 3, 2, 20, torch.float32, torch.device(device)),
        {}, 'selective_scan_fwd', lambda: scan_fwd_mod._selective_scan_fwd_kernel,
        'selective_scan_bwd', lambda: scan_bwd_mod._selective_scan_bwd_kernel),
    'state_fusion': Op(
        state_fusion_triton, state_fusion,
        lambda device='cpu': fusion_inputs(1, 3, 4, 5, torch.float32, torch.device(device)),
        {}, 'state_fusion_fwd', lambda: fusion_fwd_mod._state_fusion_fwd_kernel,
        'state_fusion_bwd', lambda: fusion_bwd_mod._state_fusion_bwd_kernel),
    'structure_aware_ssm': Op(
        structure_aware_ssm_triton, structure_aware_ssm,
        lambda device='cpu': sasf_inputs(1, 3, 4, 5, torch.float32, torch.device(device)),
        {'hw': (4, 5)},
        'structure_aware_ssm_fwd', lambda: scan_fwd_mod._selective_scan_fwd_kernel,
        'structure_aware_ssm_bwd', lambda: fusion_bwd_mod._state_fusion_bwd_kernel),
}


@pytest.fixture(autouse=True)
def no_failed_ops(monkeypatch):
    """Each test starts with no op recorded as failed."""
    monkeypatch.setattr(_fallback, '_failed', set())


def break_kernel(monkeypatch, kernel, error: Exception) -> list:
    """Make every launch of ``kernel`` raise ``error``; returns the list of attempted launches."""
    launches = []

    def launch(*args, **kwargs):
        launches.append(kwargs.get('grid'))
        raise error

    monkeypatch.setattr(kernel, 'run', launch)
    return launches


def fallback_warnings(record) -> list:
    return [str(w.message) for w in record if issubclass(w.category,
                                                         _fallback.KernelFallbackWarning)]


def assert_names_kernel_and_fix(message: str, op: str, kernel, device: str = 'cpu') -> None:
    for part in (op, kernel.__name__, device, 'N_TAPS', "backend='torch'", 'MMSM_BACKEND=torch'):
        assert part in message, f'{part!r} missing from the warning: {message}'


@pytest.mark.parametrize('name', list(OPS))
def test_forward_failure_runs_torch_path(name, monkeypatch):
    op = OPS[name]
    inputs = op.inputs()
    launches = break_kernel(monkeypatch, op.fwd_kernel(), not_compiling())
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter('always')
        first = op.triton(*inputs, **op.extra, may_fall_back=True)
        second = op.triton(*inputs, **op.extra, may_fall_back=True)
    expected = op.public(*inputs, **op.extra, backend='torch')
    assert torch.equal(first, expected) and torch.equal(second, expected)
    messages = fallback_warnings(record)
    assert len(messages) == 1, messages
    assert_names_kernel_and_fix(messages[0], op.fwd_op, op.fwd_kernel())
    assert len(launches) == 1, 'a failed kernel must not be compiled again on every call'


@pytest.mark.parametrize('device', ['cpu', pytest.param('cuda', marks=pytest.mark.cuda)])
@pytest.mark.parametrize('name', list(OPS))
def test_backward_failure_runs_torch_path(name, device, monkeypatch):
    """Training survives a backward kernel that does not compile: the gradients are those of
    the PyTorch path on the same device, recomputed from the saved inputs."""
    op = OPS[name]
    inputs = op.inputs(device)
    break_kernel(monkeypatch, op.bwd_kernel(), not_compiling())
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter('always')
        out, grads, upstream = forward_backward(op.triton, inputs, **op.extra, may_fall_back=True)
        forward_backward(op.triton, inputs, upstream, **op.extra, may_fall_back=True)
    ref, ref_grads, _ = forward_backward(op.public, inputs, upstream, **op.extra, backend='torch')
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)  # forward: Triton kernels
    for g, g_ref in zip(grads, ref_grads):
        torch.testing.assert_close(g, g_ref, rtol=1e-6, atol=1e-7)
    messages = fallback_warnings(record)
    assert len(messages) == 1, messages
    assert_names_kernel_and_fix(messages[0], op.bwd_op, op.bwd_kernel(), device)


def test_backward_failure_inside_compiled_graph(monkeypatch):
    """A ``torch.compile(fullgraph=True)`` graph calls the custom ops directly, so the
    fallback lives inside them: a failing backward kernel falls back there too."""
    inputs = fusion_inputs(1, 3, 4, 5, torch.float32)
    break_kernel(monkeypatch, fusion_bwd_mod._state_fusion_bwd_kernel, not_compiling())
    torch._dynamo.reset()
    compiled = torch.compile(lambda *args: state_fusion_triton(*args, may_fall_back=True),
                             fullgraph=True)
    with pytest.warns(_fallback.KernelFallbackWarning, match='_state_fusion_bwd_kernel'):
        _, grads, upstream = forward_backward(compiled, inputs)
    _, ref_grads, _ = forward_backward(state_fusion, inputs, upstream, backend='torch')
    for g, g_ref in zip(grads, ref_grads):
        torch.testing.assert_close(g, g_ref, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize('error', [
    not_compiling(),
    OutOfResources(232448, 232448, 'shared memory'),
    PTXASError('`ptxas` failed with error code 255'),
    RuntimeError('PassManager::run failed'),
    RuntimeError('`ptxas` failed with error code 255: ptxas fatal: Register allocation failed'),
    RuntimeError('Triton Error [CUDA]: too many resources requested for launch'),
    RuntimeError('Triton Error [CUDA]: no kernel image is available for execution on the '
                 'device'),
], ids=['compile', 'out-of-resources', 'ptxas', 'mlir-pass', 'old-ptxas', 'launch-resources',
        'no-image'])
def test_every_compile_or_launch_failure_falls_back(error, monkeypatch):
    h, k1, k3, k5, alpha = fusion_inputs(1, 3, 4, 5, torch.float32)
    break_kernel(monkeypatch, fusion_fwd_mod._state_fusion_fwd_kernel, error)
    with pytest.warns(_fallback.KernelFallbackWarning, match=type(error).__name__):
        out = state_fusion_triton(h, k1, k3, k5, alpha, may_fall_back=True)
    assert torch.equal(out, state_fusion(h, k1, k3, k5, alpha, backend='torch'))


@pytest.mark.parametrize('error', [
    RuntimeError('Triton Error [CUDA]: an illegal memory access was encountered'),
    RuntimeError('Triton Error [CUDA]: invalid argument'),
    ValueError('operands could not be broadcast together'),
    IndexError('tuple index out of range'),
    InterpreterError('division by zero in the kernel'),
], ids=['illegal-access', 'invalid-argument', 'value', 'index', 'interpreter'])
def test_other_errors_propagate(error, monkeypatch):
    """Errors of the code, not of the GPU, reach the caller; ``invalid argument`` is what a
    wrong grid or launch configuration raises."""
    h, k1, k3, k5, alpha = fusion_inputs(1, 3, 4, 5, torch.float32)
    break_kernel(monkeypatch, fusion_fwd_mod._state_fusion_fwd_kernel, error)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter('always')
        with pytest.raises(type(error), match=re.escape(str(error))):
            state_fusion_triton(h, k1, k3, k5, alpha, may_fall_back=True)
    assert not fallback_warnings(record) and not _fallback._failed


def test_fallback_fails_the_test_suite(monkeypatch):
    """pytest.ini makes the fallback's warning an error, so a test (a GPU one above all) whose
    kernel cannot run fails instead of passing on the PyTorch path, and on every call: the
    failure is not recorded for later calls to run the reference silently."""
    break_kernel(monkeypatch, fusion_fwd_mod._state_fusion_fwd_kernel, not_compiling())
    inputs = fusion_inputs(1, 3, 4, 5, torch.float32)
    for _ in range(2):
        with pytest.raises(_fallback.KernelFallbackWarning, match='N_TAPS'):
            state_fusion_triton(*inputs, may_fall_back=True)
    assert not _fallback._failed


def test_forced_triton_raises_the_compile_error(monkeypatch):
    """``MMSM_BACKEND=triton`` (like ``backend='triton'``) shows the failure, no fallback."""
    monkeypatch.setenv('MMSM_BACKEND', 'triton')
    break_kernel(monkeypatch, fusion_fwd_mod._state_fusion_fwd_kernel, not_compiling())
    with pytest.raises(CompilationError, match='N_TAPS'):
        state_fusion(*fusion_inputs(1, 3, 4, 5, torch.float32))


CUDA_TENSOR = types.SimpleNamespace(is_cuda=True)  # all that resolve_backend reads


@pytest.mark.parametrize('backend, env, expected', [
    (None, None, ('triton', True)),        # automatic: Triton, falling back where it fails
    (None, 'torch', ('torch', False)),
    (None, 'triton', ('triton', False)),
    ('triton', 'torch', ('triton', False)),  # the argument beats the environment
    ('torch', None, ('torch', False)),
])
def test_backend_choice(backend, env, expected, monkeypatch):
    if env is None:
        monkeypatch.delenv('MMSM_BACKEND', raising=False)
    else:
        monkeypatch.setenv('MMSM_BACKEND', env)
    assert resolve_backend(backend, CUDA_TENSOR) == expected


def test_unknown_env_backend_says_how(monkeypatch):
    monkeypatch.setenv('MMSM_BACKEND', 'cuda')
    with pytest.raises(ValueError, match=r"MMSM_BACKEND='cuda' is not a backend; set it to "
                                         r"'torch' or 'triton', or unset it"):
        state_fusion(*fusion_inputs(1, 3, 4, 5, torch.float32))


@pytest.mark.parametrize('name', list(OPS))
def test_torch_path_stays_on_the_inputs_device(name):
    """The PyTorch path creates nothing on the CPU: on ``meta`` tensors (no data, any tensor
    made elsewhere would fail to mix with them) forward and backward keep device and shapes."""
    op = OPS[name]
    inputs = [t.to('meta') if t is not None else None for t in op.inputs()]
    out, grads, _ = forward_backward(op.public, inputs, **op.extra, backend='torch')
    assert out.device.type == 'meta'
    for g, t in zip(grads, [t for t in inputs if t is not None]):
        assert g.device.type == 'meta' and g.shape == t.shape
