"""Shared test set-up: Triton interpreter, NaN-poisoned outputs, replayable seeds, markers.

``TRITON_INTERPRET=1`` must be set before anything imports triton, so CI runs the Triton
kernels' logic on CPU tensors. ``TRITON_F32_DEFAULT=ieee`` keeps TF32 out of comparisons on
GPU. pytest puts this folder on ``sys.path`` (a conftest outside any package), so tests import
``spec_oracle`` and ``model_utils`` by name.
"""
import os
import random

os.environ.setdefault('TRITON_INTERPRET', '1')
os.environ.setdefault('TRITON_F32_DEFAULT', 'ieee')

import pytest  # noqa: E402
import torch  # noqa: E402


def pytest_configure(config):
    config.addinivalue_line('markers', 'cuda: needs a CUDA GPU (skipped without one)')
    config.addinivalue_line('markers', 'slow: long-running; deselect with -m "not slow"')


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason='needs a CUDA GPU')
    for item in items:
        if 'cuda' in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def seed(request):
    """A fresh seed per test, seeded into torch and random; put it in assertion messages."""
    value = random.SystemRandom().randrange(2**31)
    torch.manual_seed(value)
    random.seed(value)
    return value


@pytest.fixture(autouse=True)
def poison_outputs(monkeypatch):
    """Fill every buffer the ops allocate with NaN, so unwritten elements fail the test."""
    from mmspatialmamba.ops import _utils
    real = _utils.new_output
    monkeypatch.setattr(_utils, 'new_output',
                        lambda *a, **k: real(*a, **k).fill_(float('nan')))
