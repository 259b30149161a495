"""What the ops are called with: the models' shapes and each public op's inputs, as the model
lays them out.

One definition serves three checks. The compile check (:mod:`.report`) calls the ops on fake
CUDA tensors (:func:`fake_leaf`) and compiles every launch they make; the GPU check
(``benchmarks/gpu_check.py``) records the same calls to compile every kernel variant before
anything runs, then calls them on real CUDA tensors with realistic values
(:func:`random_leaf`) to compare the Triton kernels with the PyTorch path and to time them.
So the kernels compiled ahead of time are exactly the ones the GPU runs.

Each call is built from named leaves (the tensors to differentiate); ``B`` and ``C`` are views
of one projection ``x_dbl`` and ``u``, ``delta`` of the SASF core are time-major views
(channels innermost), as the model passes them (``mmspatialmamba/models/layers/sasf.py``).
Activations take the case's dtype; parameters stay float32, as under autocast.
"""
import dataclasses
import math
from typing import Callable, Dict, List, Tuple

import torch
from torch import Tensor

from ..dispatch import selective_scan, state_fusion, structure_aware_ssm
from .fake_cuda import fake_cuda


@dataclasses.dataclass(frozen=True)
class Shape:
    """A state map of the model: ``batch`` images, ``dim`` = D channels, ``height x width``;
    ``d_state`` = N states per channel (the model has 1; the scan alone takes any)."""
    task: str
    batch: int
    dim: int
    height: int
    width: int
    d_state: int = 1

    def __str__(self) -> str:
        states = f' N={self.d_state}' if self.d_state != 1 else ''
        return f'{self.task} ({self.batch},{self.dim},{self.height},{self.width}){states}'


def _stages(task: str, batch: int, dim: int, height: int, width: int) -> Dict[int, Shape]:
    """The state maps of a model's four stages, from stage 1's: D doubles and the map
    halves from one stage to the next."""
    return {i: Shape(f'{task} stage {i}', batch, dim << (i - 1), height >> (i - 1),
                     width >> (i - 1)) for i in (1, 2, 3, 4)}


# Inner width D = 2 x the stage width: T 128/256/512/1024, B 192/384/768/1536
# (docs/model.md). Detection: 800x1344 images (stage-1 map 200x336) at batch 2, the batch of
# the Mask R-CNN configs, whose scan runs unchunked, and at batch 1, whose stage-1 scan is
# chunked (too few rows to fill the GPU). Segmentation: 512x512 crops, batch 16.
# Classification: 224 at batch 128 (training) and batch 8.
_T_DET = _stages('det 800x1344', 2, 128, 200, 336)
_B_DET = _stages('B det 800x1344', 2, 192, 200, 336)
_T_CLS = _stages('cls 224', 128, 128, 56, 56)
_T_CLS8 = _stages('cls 224 batch 8', 8, 128, 56, 56)
SHAPES = {
    'cls': _T_CLS[1],
    'det1': _T_DET[1],
    'det1b1': Shape('det 800x1344 stage 1 batch 1', 1, 128, 200, 336),
    'det2': _T_DET[2],
    'det3': _T_DET[3],
    'det4': _T_DET[4],
    'seg': Shape('seg 512 stage 1', 16, 128, 128, 128),
    **{f'cls{i}': _T_CLS[i] for i in (2, 3, 4)},
    **{f'cls{i}b8': _T_CLS8[i] for i in (1, 2, 3, 4)},
    'B-cls': Shape('B cls 224 stage 1', 128, 192, 56, 56),
    'B-det1': _B_DET[1],
    'B-det1b1': Shape('B det 800x1344 stage 1 batch 1', 1, 192, 200, 336),
    **{f'B-det{i}': _B_DET[i] for i in (2, 3, 4)},
    'B-seg': Shape('B seg 512 stage 1', 16, 192, 128, 128),
}
DTYPES = {'fp32': torch.float32, 'bf16': torch.bfloat16, 'fp16': torch.float16}

Leaf = Callable[[str, Tuple[int, ...], torch.dtype], Tensor]
"""``leaf(name, size, dtype)``: the input called ``name``, a tensor that requires grad."""


@dataclasses.dataclass
class Call:
    """One call of a public op: ``call(backend)`` returns its output; ``leaves`` are the
    tensors behind its arguments, by name, for gradients."""
    op: Callable[..., Tensor]
    args: tuple
    leaves: Dict[str, Tensor]

    def __call__(self, backend=None) -> Tensor:
        return self.op(*self.args, backend=backend)


def sasf_call(s: Shape, dtype: torch.dtype, leaf: Leaf) -> Call:
    """``structure_aware_ssm`` as the model's mixer calls it, N = 1: ``u`` and ``delta``
    time-major, ``B`` and ``C`` rows of the projection ``x_dbl`` after its ``dt_rank`` rows."""
    length, f32 = s.height * s.width, torch.float32
    rank = math.ceil(s.dim / 2 / 16)                      # dt_rank of the stage
    leaves = dict(u=leaf('u', (s.batch, length, s.dim), dtype),
                  delta=leaf('delta', (s.batch, length, s.dim), dtype),
                  x_dbl=leaf('x_dbl', (s.batch, rank + 2, length), dtype),
                  A=leaf('A', (s.dim, 1), f32), D=leaf('D', (s.dim,), f32),
                  delta_bias=leaf('delta_bias', (s.dim,), f32),
                  **{k: leaf(k, (s.dim, 1, 3, 3), f32) for k in ('k1', 'k3', 'k5')},
                  alpha=leaf('alpha', (3,), f32))
    x_dbl = leaves['x_dbl']
    args = (leaves['u'].transpose(1, 2), leaves['delta'].transpose(1, 2), leaves['A'],
            x_dbl[:, rank:rank + 1], x_dbl[:, rank + 1:], leaves['D'], leaves['delta_bias'],
            leaves['k1'], leaves['k3'], leaves['k5'], leaves['alpha'], (s.height, s.width))
    return Call(structure_aware_ssm, args, leaves)


def scan_call(s: Shape, dtype: torch.dtype, leaf: Leaf) -> Call:
    """``selective_scan`` over the map's positions, contiguous inputs."""
    length, f32 = s.height * s.width, torch.float32
    leaves = dict(u=leaf('u', (s.batch, s.dim, length), dtype),
                  delta=leaf('delta', (s.batch, s.dim, length), dtype),
                  A=leaf('A', (s.dim, s.d_state), f32),
                  B=leaf('B', (s.batch, s.d_state, length), dtype),
                  delta_bias=leaf('delta_bias', (s.dim,), f32))
    return Call(selective_scan, tuple(leaves.values()), leaves)


def fusion_call(s: Shape, dtype: torch.dtype, leaf: Leaf) -> Call:
    """``state_fusion`` on the map, contiguous states."""
    leaves = dict(h=leaf('h', (s.batch, s.dim, s.height, s.width), dtype),
                  **{k: leaf(k, (s.dim, 1, 3, 3), torch.float32) for k in ('k1', 'k3', 'k5')},
                  alpha=leaf('alpha', (3,), torch.float32))
    return Call(state_fusion, tuple(leaves.values()), leaves)


CALLS: Dict[str, Callable[[Shape, torch.dtype, Leaf], Call]] = {
    'sasf': sasf_call, 'scan': scan_call, 'fusion': fusion_call}


def fake_leaf(name: str, size: Tuple[int, ...], dtype: torch.dtype) -> Tensor:
    """A fake CUDA leaf (:mod:`.fake_cuda`): shapes and strides, no memory."""
    return fake_cuda(size, dtype, requires_grad=True)


def random_leaf(device: torch.device) -> Leaf:
    """Leaves on ``device`` with the values training sees, drawn from torch's global RNG.

    Step sizes as the model initialises them: ``delta_bias`` is a fresh mixer's
    ``dt_projs_bias`` (Mamba's initialisation: ``softplus(delta_bias)`` log-uniform in
    [1e-3, 1e-1]) and ``A = -exp(A_logs)``, -1 for N = 1 (S4D-real: -1..-N), so ``dt`` is
    small, decays stay near 1 and the carry across a long sequence matters; ``delta`` (the dt
    projection's output) is N(0, 0.5^2). The rest is random where the model starts from
    constants (``D``, the fusion kernels and ``alpha`` start at ones), so that a transposed
    tap or a missing term shows: activations N(0, 1), kernels N(0, 1/9), ``alpha`` in
    [0.5, 1.5).
    """
    def make(name: str, size: Tuple[int, ...], dtype: torch.dtype) -> Tensor:
        if name == 'delta_bias':
            value = _model_dt_bias(size[0]).to(device)
        elif name == 'A':
            value = -torch.arange(1, size[1] + 1, device=device).repeat(size[0], 1)
        elif name in ('k1', 'k3', 'k5'):
            value = torch.randn(size, device=device) / 3
        elif name == 'alpha':
            value = torch.rand(size, device=device) + 0.5
        else:
            value = torch.randn(size, device=device) * (0.5 if name == 'delta' else 1.0)
        return value.to(dtype).requires_grad_(True)
    return make


def _model_dt_bias(dim: int) -> Tensor:
    """``dt_projs_bias`` of a freshly initialised mixer of inner width ``dim``: its
    initialisation with the mixer's defaults (``dt_min=1e-3, dt_max=0.1,
    dt_init_floor=1e-4``, which every block keeps)."""
    from mmspatialmamba.models.layers.sasf import StructureAwareSSM  # the model, not the ops
    return StructureAwareSSM._init_dt_bias(dim, dt_min=1e-3, dt_max=0.1, floor=1e-4)


@dataclasses.dataclass(frozen=True)
class Case:
    """One op call, forward and backward: op (key of :data:`CALLS`), shape, dtype (key of
    :data:`DTYPES`)."""
    op: str
    shape: Shape
    dtype: str

    def __str__(self) -> str:
        return f'{self.op} {self.dtype} {self.shape}'


Recorded = Tuple[Tensor, List[Tensor]]     # output, leaves that need gradients


def _fake_case(op: str) -> Callable[[Shape, torch.dtype], Recorded]:
    def run(s: Shape, dtype: torch.dtype) -> Recorded:
        call = CALLS[op](s, dtype, fake_leaf)
        return call(), list(call.leaves.values())
    run.__name__ = f'run_{op}'
    return run


# The compile check's cases: each op forward on fake CUDA tensors (backend=None, as a user
# calls it); the report back-propagates through the output.
OPS: Dict[str, Callable[[Shape, torch.dtype], Recorded]] = {op: _fake_case(op) for op in CALLS}
