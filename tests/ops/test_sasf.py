"""``structure_aware_ssm`` (scan, fusion, observation) on both backends against the float64
oracle: values and every gradient.

The Triton cases run under the interpreter on CPU (conftest.py), with NaN-poisoned outputs.
"""
import pytest
import torch
from op_utils import (GPU_DTYPES, GPU_MAP_SHAPES, MODEL_MAP_SHAPES, SASF_NAMES, case, case_id,
                      compare, compare_backends, sasf_inputs)
from spec_oracle import sasf_oracle

from mmspatialmamba.ops import _utils, structure_aware_ssm

DIMS = 'BDHW'
CASES = [
    *(case('torch', DIMS, shape) for shape in [(1, 4, 1, 1), (2, 8, 1, 13), (2, 8, 13, 1),
                                               (1, 6, 3, 2), (2, 8, 7, 9)]),
    case('triton', DIMS, (1, 4, 1, 1)),
    case('triton', DIMS, (2, 8, 7, 9)),
    case('triton', DIMS, (1, 16, 3, 2), bias=False, layout='strided'),
    case('triton', DIMS, (2, 20, 1, 13), softplus=False),   # two channel groups for dC
    case('triton', DIMS, (1, 5, 11, 1), layout='strided'),
    case('triton', DIMS, (2, 6, 5, 7), torch.bfloat16, layout='strided'),
    case('triton', DIMS, (1, 6, 4, 9), torch.float16),
]


@pytest.mark.parametrize('backend,shape,dtype,options', CASES)
def test_structure_aware_ssm(backend, shape, dtype, options, seed):
    batch, dim, height, width = shape
    compare(structure_aware_ssm, sasf_oracle, sasf_inputs(*shape, dtype, **options),
            SASF_NAMES, dtype, seed, backends=[backend], hw=(height, width),
            delta_softplus=options.get('softplus', True))


def test_gpu_block_sizes(monkeypatch, seed):
    """The block sizes the launchers pick for CUDA tensors (``ops/_utils.py``), run under the
    interpreter: one channel per fusion and scan program, several tiles per map."""
    monkeypatch.setattr(_utils, 'gpu_capability', lambda device: (8, 0))
    compare(structure_aware_ssm, sasf_oracle, sasf_inputs(1, 2, 3, 70, torch.float32),
            SASF_NAMES, torch.float32, seed, backends=['triton'], hw=(3, 70))


def test_forward_copies_u_once(monkeypatch):
    """u with channels innermost (as the model's time-major activations): the forward's two
    launches, the scan and the fusion's observation epilogue, read one row-major copy."""
    real = _utils.inner_contiguous
    copied = []

    def counting(x):
        out = real(x)
        if out is not x:
            copied.append(x.data_ptr())
        return out

    monkeypatch.setattr(_utils, 'inner_contiguous', counting)
    inputs = sasf_inputs(1, 4, 3, 5, torch.float32, layout='strided')
    with torch.no_grad():
        structure_aware_ssm(*inputs, hw=(3, 5), backend='triton')
    assert copied.count(inputs[0].data_ptr()) == 1, copied


@pytest.mark.cuda
@GPU_DTYPES
@pytest.mark.parametrize('shape', GPU_MAP_SHAPES, ids=[case_id(DIMS, s) for s in GPU_MAP_SHAPES])
def test_cuda_matches_oracle(shape, dtype, seed):
    """Both backends on CUDA tensors against the oracle."""
    compare(structure_aware_ssm, sasf_oracle, sasf_inputs(*shape, dtype, torch.device('cuda')),
            SASF_NAMES, dtype, seed, backends=['torch', 'triton'], hw=shape[2:])


@pytest.mark.cuda
@GPU_DTYPES
@pytest.mark.parametrize('shape', MODEL_MAP_SHAPES,
                         ids=[case_id(DIMS, s) for s in MODEL_MAP_SHAPES])
def test_cuda_triton_matches_torch(shape, dtype, seed):
    """Triton against the PyTorch path on CUDA at the models' shapes (224 classification
    batch 128 stage 1; 800x1344 detection stages 1 and 4)."""
    compare_backends(structure_aware_ssm, sasf_inputs(*shape, dtype, torch.device('cuda')),
                     SASF_NAMES, dtype, seed, hw=shape[2:])
