"""What the compile check runs: the public ops, forward and backward, at the tasks' shapes.

Each case calls :func:`~mmspatialmamba.ops.structure_aware_ssm` (the model's path),
:func:`~mmspatialmamba.ops.selective_scan` or :func:`~mmspatialmamba.ops.state_fusion` with
``backend=None`` on fake CUDA tensors and returns the output and the leaves to differentiate;
the report back-propagates through it, so the kernels, grids and ``constexpr`` s recorded are
those a CUDA training step launches. Activations take the
case's dtype, parameters stay float32 (as under autocast); ``B`` and ``C`` are views of one
projection, as the model passes them (``docs/model.md``).
"""
import dataclasses
import math
from typing import Callable, Dict, List, Tuple

import torch

from ..dispatch import selective_scan, state_fusion, structure_aware_ssm
from .fake_cuda import fake_cuda


@dataclasses.dataclass(frozen=True)
class Shape:
    """A state map of the model: ``batch`` images, ``dim`` = D channels, ``height x width``."""
    task: str
    batch: int
    dim: int
    height: int
    width: int

    def __str__(self) -> str:
        return f'{self.task} ({self.batch},{self.dim},{self.height},{self.width})'


# Spatial-Mamba-T (docs/model.md): D = 2 x the stage width (64, 128, 256, 512).
SHAPES = {
    'cls': Shape('cls 224 stage 1', 128, 128, 56, 56),
    'det1': Shape('det 800x1344 stage 1', 2, 128, 200, 336),
    'det3': Shape('det 800x1344 stage 3', 2, 512, 50, 84),
    'det4': Shape('det 800x1344 stage 4', 2, 1024, 25, 42),
    'seg': Shape('seg 512 stage 1', 16, 128, 128, 128),
}
DTYPES = {'fp32': torch.float32, 'bf16': torch.bfloat16, 'fp16': torch.float16}


def _leaf(*shape, dtype=torch.float32):
    return fake_cuda(shape, dtype, requires_grad=True)


Case = Tuple[torch.Tensor, List[torch.Tensor]]     # output, leaves that need gradients


def run_sasf(s: Shape, dtype: torch.dtype) -> Case:
    """``structure_aware_ssm`` forward and backward, N = 1, as the model calls it."""
    length = s.height * s.width
    rank = math.ceil(s.dim / 2 / 16)                      # dt_rank of the stage
    u, delta = _leaf(s.batch, s.dim, length, dtype=dtype), _leaf(s.batch, s.dim, length,
                                                                  dtype=dtype)
    x_dbl = _leaf(s.batch, rank + 2, length, dtype=dtype)
    B, C = x_dbl[:, rank:rank + 1], x_dbl[:, rank + 1:]
    params = [_leaf(s.dim, 1), _leaf(s.dim), _leaf(s.dim)]                  # A, D, bias
    kernels = [_leaf(s.dim, 1, 3, 3) for _ in range(3)] + [_leaf(3)]        # k1, k3, k5, alpha
    y = structure_aware_ssm(u, delta, params[0], B, C, params[1], params[2], *kernels,
                            (s.height, s.width))
    return y, [u, delta, x_dbl] + params + kernels


def run_scan(s: Shape, dtype: torch.dtype) -> Case:
    """``selective_scan`` forward and backward over the map's positions, N = 1."""
    length = s.height * s.width
    u, delta = _leaf(s.batch, s.dim, length, dtype=dtype), _leaf(s.batch, s.dim, length,
                                                                  dtype=dtype)
    B, A, bias = _leaf(s.batch, 1, length, dtype=dtype), _leaf(s.dim, 1), _leaf(s.dim)
    return selective_scan(u, delta, A, B, bias), [u, delta, A, B, bias]


def run_fusion(s: Shape, dtype: torch.dtype) -> Case:
    """``state_fusion`` forward and backward on the map."""
    h = _leaf(s.batch, s.dim, s.height, s.width, dtype=dtype)
    kernels = [_leaf(s.dim, 1, 3, 3) for _ in range(3)] + [_leaf(3)]
    return state_fusion(h, *kernels), [h] + kernels


OPS: Dict[str, Callable[[Shape, torch.dtype], Case]] = {
    'sasf': run_sasf, 'scan': run_scan, 'fusion': run_fusion}
