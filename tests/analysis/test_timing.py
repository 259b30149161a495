"""mmspatialmamba.analysis.timing: the median, the warm-up, the steps' autocast, bad input."""
import time

import pytest
import torch
from torch import nn

from mmspatialmamba.analysis.timing import measure, step_functions


def test_measure_takes_the_median_after_warm_up():
    """Warm-up calls are not timed; one slow timed call does not move the median."""
    calls = []

    def fn():
        calls.append(len(calls))
        time.sleep(0.2 if len(calls) in (1, 4) else 0.01)   # slow: the warm-up, timed call 3

    timing = measure(fn, 'cpu', warmup=1, iters=5)
    assert len(calls) == 6
    assert 0.005 < timing.median_s < 0.1
    assert timing.peak_mem_mib > 0 and timing.peak_mem_kind == 'cpu process peak RSS'


@pytest.mark.parametrize('warmup, iters', [(0, 0), (-1, 3)])
def test_measure_rejects_bad_counts(warmup, iters):
    with pytest.raises(ValueError, match='iters >= 1 and warmup >= 0'):
        measure(lambda: None, 'cpu', warmup=warmup, iters=iters)


def test_step_functions_autocast_the_forward_and_step():
    """bf16 autocast reaches the forward; the training step updates the weights."""
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 1000))
    images = torch.randn(2, 3, 2, 2)
    fns = step_functions(model, 'classification', images, None, amp='bf16')
    assert fns['inference']().dtype == torch.bfloat16
    before = model[1].weight.detach().clone()
    loss = fns['train']()
    assert loss.dtype == torch.float32 and not torch.equal(model[1].weight, before)


def test_fp16_step_scales_the_loss(monkeypatch):
    """fp16 training goes through a GradScaler (as mixed-precision training does)."""
    scaled = []
    real_scale = torch.amp.GradScaler.scale

    def scale(self, loss):
        scaled.append(self.is_enabled())
        return real_scale(self, loss)
    monkeypatch.setattr(torch.amp.GradScaler, 'scale', scale)
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 1000))
    fns = step_functions(model, 'classification', torch.randn(2, 3, 2, 2), None, amp='fp16')
    assert fns['inference']().dtype == torch.float16
    fns['train']()
    assert scaled == [True]


def test_step_functions_rejects_unknown_amp():
    with pytest.raises(ValueError, match="unknown amp 'fp8'"):
        step_functions(nn.Linear(1, 1), 'backbone', torch.randn(1, 3, 2, 2), None, amp='fp8')
