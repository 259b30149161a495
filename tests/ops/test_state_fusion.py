"""``state_fusion`` on both backends against the float64 oracle: values and every gradient.

The Triton cases run under the interpreter on CPU (conftest.py) and check the stencil's
border handling, tiling and partial-sum reductions, with NaN-poisoned outputs.
"""
import pytest
import torch
from op_utils import (FUSION_NAMES, GPU_DTYPES, GPU_MAP_SHAPES, MODEL_MAP_SHAPES, case, case_id,
                      compare, compare_backends, fusion_inputs)
from spec_oracle import fusion_oracle

from mmspatialmamba.ops import _utils, state_fusion

DIMS = 'BDHW'
CASES = [
    *(case('torch', DIMS, shape) for shape in [(1, 4, 1, 1), (2, 8, 1, 37), (2, 8, 37, 1),
                                               (1, 16, 3, 2), (2, 16, 7, 9), (1, 4, 23, 17)]),
    case('torch', DIMS, (2, 11, 8, 9), layout='transposed'),
    case('triton', DIMS, (1, 4, 1, 1)),
    case('triton', DIMS, (2, 8, 1, 37)),
    case('triton', DIMS, (2, 8, 37, 1), layout='strided'),
    case('triton', DIMS, (1, 16, 3, 2)),      # map smaller than the dilations
    case('triton', DIMS, (2, 5, 7, 9), layout='sliced'),
    case('triton', DIMS, (1, 3, 12, 70)),     # several tiles along W on the GPU
    case('triton', DIMS, (2, 6, 7, 9), torch.bfloat16, layout='strided'),
    case('triton', DIMS, (1, 6, 6, 11), torch.float16),
]


@pytest.mark.parametrize('backend,shape,dtype,options', CASES)
def test_state_fusion(backend, shape, dtype, options, seed):
    compare(state_fusion, fusion_oracle, fusion_inputs(*shape, dtype, **options), FUSION_NAMES,
            dtype, seed, backends=[backend])


def test_gpu_tiles(monkeypatch, seed):
    """The launch sizes for CUDA tensors, run under the interpreter: forward tiles of 512
    consecutive pixels that end mid-row (a 600-pixel map), backward tiles of 4 x 32 pixels
    and tap-sum chunks of 128-pixel steps."""
    monkeypatch.setattr(_utils, 'gpu_capability', lambda device: (9, 0))
    compare(state_fusion, fusion_oracle, fusion_inputs(1, 2, 20, 30, torch.float32),
            FUSION_NAMES, torch.float32, seed, backends=['triton'])


def test_tap_sums_over_chunks_of_several_steps(monkeypatch, seed):
    """The backward's tap sums with GPU-like chunking, made small: 2 images, each map
    (63 pixels) in chunks of 2 steps of 16 pixels, the last chunk and step partial."""
    monkeypatch.setattr(_utils, 'tap_sum_chunks',
                        lambda length, device: _utils.TapSumChunks(tiles=2, p=16))
    compare(state_fusion, fusion_oracle, fusion_inputs(2, 3, 7, 9, torch.float32),
            FUSION_NAMES, torch.float32, seed, backends=['triton'])


def test_full_detection_map(seed):
    """The Triton fusion on the whole 200x336 map of 800x1344 detection, stage 1."""
    compare(state_fusion, fusion_oracle, fusion_inputs(1, 1, 200, 336, torch.float32),
            FUSION_NAMES, torch.float32, seed, backends=['triton'])


@pytest.mark.cuda
@GPU_DTYPES
@pytest.mark.parametrize('shape', GPU_MAP_SHAPES, ids=[case_id(DIMS, s) for s in GPU_MAP_SHAPES])
def test_cuda_matches_oracle(shape, dtype, seed):
    """Both backends on CUDA tensors against the oracle."""
    compare(state_fusion, fusion_oracle, fusion_inputs(*shape, dtype, torch.device('cuda')),
            FUSION_NAMES, dtype, seed, backends=['torch', 'triton'])


@pytest.mark.cuda
@GPU_DTYPES
@pytest.mark.parametrize('shape', MODEL_MAP_SHAPES,
                         ids=[case_id(DIMS, s) for s in MODEL_MAP_SHAPES])
def test_cuda_triton_matches_torch(shape, dtype, seed):
    """Triton against the PyTorch path on CUDA at the models' shapes (224 classification
    batch 128 stage 1; 800x1344 detection stages 1 and 4)."""
    compare_backends(state_fusion, fusion_inputs(*shape, dtype, torch.device('cuda')),
                     FUSION_NAMES, dtype, seed)
