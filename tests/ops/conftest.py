"""Op-test set-up on top of ../conftest.py: no TF32 in the PyTorch path's convolutions.

cuDNN runs float32 convolutions in TF32 by default on Ampere and newer GPUs (about 1e-3
relative error), which would fail the float32 tolerances of the PyTorch path on CUDA tensors;
``TRITON_F32_DEFAULT=ieee`` does the same for the kernels.
"""
import pytest
import torch


@pytest.fixture(autouse=True)
def no_tf32(monkeypatch):
    monkeypatch.setattr(torch.backends.cudnn, 'allow_tf32', False)
