"""Every kernel launches under its tensors' device: Triton launches on the current CUDA
device, so without that, tensors on ``cuda:1`` while ``cuda:0`` is current fail.

On the CPU, ``_utils.launch_device`` (what every op runs its kernels in) is replaced by a
context that records the device it was given, and every interpreted launch records the
device in effect; every op, forward and backward (the chunked scan's summary launches
included), must launch each kernel inside it, for the device of its inputs. On a machine
with two GPUs the ops run on ``cuda:1`` against the PyTorch path.
"""
import contextlib
import dataclasses

import pytest
import torch
from op_utils import (FUSION_NAMES, SASF_NAMES, SCAN_NAMES, compare_backends, forward_backward,
                      fusion_inputs, sasf_inputs, scan_inputs)
from triton.runtime.interpreter import InterpretedFunction

from mmspatialmamba.ops import _utils, selective_scan, state_fusion, structure_aware_ssm

KERNELS = {'_selective_scan_fwd_kernel', '_selective_scan_bwd_kernel',
           '_state_fusion_fwd_kernel', '_state_fusion_bwd_kernel',
           '_state_fusion_tap_sums_kernel', '_state_fusion_bwd_border_kernel'}


def op_cases(device: torch.device) -> list:
    """``(op, inputs, names, keyword arguments)`` of every op, small, on ``device``."""
    return [
        (selective_scan, scan_inputs(1, 3, 2, 40, torch.float32, device), SCAN_NAMES, {}),
        (state_fusion, fusion_inputs(1, 3, 4, 5, torch.float32, device), FUSION_NAMES, {}),
        (structure_aware_ssm, sasf_inputs(1, 3, 4, 5, torch.float32, device), SASF_NAMES,
         {'hw': (4, 5)}),
    ]


def test_every_launch_runs_under_its_tensors_device(monkeypatch):
    current = []          # the device of the innermost launch_device context, if any
    launches = []         # (kernel, device in effect at its launch)

    @contextlib.contextmanager
    def recording_device(device):
        current.append(device)
        try:
            yield
        finally:
            current.pop()

    real_run = InterpretedFunction.run

    def run(self, *args, **kwargs):
        launches.append((self.__name__, current[-1] if current else None))
        return real_run(self, *args, **kwargs)

    monkeypatch.setattr(_utils, 'launch_device', recording_device)
    monkeypatch.setattr(InterpretedFunction, 'run', run)
    real_blocks = _utils.scan_blocks          # chunks of 16, so summary launches run too
    monkeypatch.setattr(_utils, 'scan_blocks', lambda *a, **k: dataclasses.replace(
        real_blocks(*a, **k), l=16, chunk=16))
    for op, inputs, _, kwargs in op_cases(torch.device('cpu')):
        forward_backward(op, inputs, backend='triton', **kwargs)
    assert {kernel for kernel, _ in launches} == KERNELS, launches
    outside = [(k, d) for k, d in launches if d != torch.device('cpu')]
    assert not outside, f'launched outside the device of their tensors: {outside}'
    assert not current


def test_no_device_to_select_on_the_cpu():
    assert isinstance(_utils.launch_device(torch.device('cpu')), contextlib.nullcontext)


@pytest.mark.cuda
@pytest.mark.skipif(torch.cuda.device_count() < 2, reason='needs two CUDA GPUs')
def test_ops_on_the_second_gpu(seed):
    """Tensors on ``cuda:1`` while ``cuda:0`` is current: Triton against the PyTorch path,
    forward and backward, and the current device unchanged after."""
    torch.cuda.set_device(0)
    for op, inputs, names, kwargs in op_cases(torch.device('cuda', 1)):
        compare_backends(op, inputs, names, torch.float32, seed, **kwargs)
        assert torch.cuda.current_device() == 0
