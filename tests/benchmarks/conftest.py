"""Set-up of the GPU check's tests (``test_gpu_*.py``): their marker, no TF32, memory back.

``gpu_check`` marks the tests that ``benchmarks/gpu_check.sh`` selects beside the ``cuda``
ones: on a GPU they are ``cuda`` tests too; in the check's dry run (``MMSM_GPU_CHECK=dry``)
they run on the CPU, the kernels interpreted, at the dry plan's sizes.
"""
import pytest
import torch


def pytest_configure(config):
    config.addinivalue_line('markers', 'gpu_check: run by benchmarks/gpu_check.sh (its verdict)')


@pytest.fixture(autouse=True)
def no_tf32_and_memory_back(monkeypatch):
    """No TF32 in float32 convolutions (cuDNN's default on Ampere and newer GPUs: about 1e-3
    relative error, which would fail float32 comparisons; matrix products default to full
    precision); after the test, the caching allocator's blocks go back, so the workers
    sharing one GPU do not hold their peaks."""
    monkeypatch.setattr(torch.backends.cudnn, 'allow_tf32', False)
    yield
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
