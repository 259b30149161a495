"""The structure-aware SSM token mixer (docs/model.md "The token mixer").

All of the scan, fusion and observation math runs through :mod:`mmspatialmamba.ops`, so the
mixer runs on the Triton kernels for CUDA tensors and on the PyTorch reference on CPU.
Parameter names follow the published checkpoints exactly (docs/model.md "Checkpoint compatibility").
"""
import contextlib
import math
from contextvars import ContextVar
from typing import Callable, Iterator, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...errors import BadInputError
from ...ops import structure_aware_ssm
from .profiling import profile_range

# The function every StructureAwareSSM runs as its SASF core; None means the op itself.
_sasf_core: ContextVar[Optional[Callable[..., Tensor]]] = ContextVar('sasf_core', default=None)


@contextlib.contextmanager
def sasf_core_override(core: Callable[..., Tensor]) -> Iterator[None]:
    """Run ``core`` instead of the SASF op in every :class:`StructureAwareSSM` in the block.

    ``core`` is called exactly as :func:`~mmspatialmamba.ops.structure_aware_ssm` and must
    return its output, (batch, D, L). This is how FLOP counting
    (:func:`mmspatialmamba.analysis.sasf_counting`) puts one traceable node in the place of
    the core. The override is held in a ``contextvars.ContextVar``: it applies to the current
    thread (and asyncio task) only, and is undone on exit, also on errors.

    Example:
        >>> with sasf_core_override(lambda u, *args, **kwargs: u.clone()):
        ...     y = mixer(x)
    """
    token = _sasf_core.set(core)
    try:
        yield
    finally:
        _sasf_core.reset(token)


class StateFusion(nn.Module):
    """Parameters of the structure-aware state fusion (docs/model.md step 6).

    Three depthwise 3x3 kernels and their mixing weights, all initialised to ones as in the
    release: ``kernel_3`` is applied at dilation 1, ``kernel_3_1`` at dilation 3 and
    ``kernel_3_2`` at dilation 5, mixed by ``alpha[0..2]`` in that order. The names are the
    published checkpoints' and cannot change; there they read
    ``layers.<i>.blocks.<j>.self_attention.state_fusion.kernel_3``, where ``self_attention``
    is the block's SSM mixer (:class:`StructureAwareSSM`), not attention. The fusion itself
    runs inside :func:`~mmspatialmamba.ops.structure_aware_ssm`, which reads these parameters
    on every call (no merged kernel is cached, so evaluation never sees stale weights).

    Args:
        dim: Number of state channels D.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.kernel_3 = nn.Parameter(torch.ones(dim, 1, 3, 3))
        self.kernel_3_1 = nn.Parameter(torch.ones(dim, 1, 3, 3))
        self.kernel_3_2 = nn.Parameter(torch.ones(dim, 1, 3, 3))
        self.alpha = nn.Parameter(torch.ones(3))


class StructureAwareSSM(nn.Module):
    """Structure-aware state space mixer on channels-last maps.

    ``in_proj`` -> (x, z); x -> depthwise conv3x3 + SiLU -> per-position projections
    (dt, B, C) -> scan + structure-aware fusion + observation (one op) -> ``out_norm`` ->
    times SiLU(z) -> ``out_proj``. A block holds it as ``self_attention`` (the release's
    name, kept for its checkpoints), though it is an SSM, not attention. Each step runs in a
    profiler range named after it (:mod:`.profiling`).

    Args:
        d_model: Channels C of the input and output.
        d_state: State size N; every published model uses 1, the only size the fused op takes.
        expand: Inner width D = expand * C.
        dt_rank: Rank R of the dt projection; 'auto' gives ceil(C / 16).
        dt_min, dt_max, dt_init_floor: Range of the initial step sizes softplus(dt_projs_bias).
        backend: Ops backend: None (Triton on CUDA, PyTorch on CPU), 'torch' or 'triton'.
    """

    def __init__(self, d_model: int, d_state: int = 1, expand: int = 2,
                 dt_rank='auto', dt_min: float = 1e-3, dt_max: float = 0.1,
                 dt_init_floor: float = 1e-4, backend: Optional[str] = None) -> None:
        super().__init__()
        if d_state != 1:
            raise BadInputError(f'd_state must be 1 (every published Spatial-Mamba uses 1 and '
                                'the state fusion is defined for one state per channel), got '
                                f'{d_state}')
        d_inner = expand * d_model
        self.d_inner = d_inner
        self.d_state = d_state
        self.dt_rank = math.ceil(d_model / 16) if dt_rank == 'auto' else int(dt_rank)
        self.backend = backend

        self.in_proj = nn.Linear(d_model, 2 * d_inner, bias=False)
        self.conv2d = nn.Conv2d(d_inner, d_inner, 3, padding=1, groups=d_inner, bias=True)
        self.x_proj_weight = nn.Parameter(torch.empty(self.dt_rank + 2 * d_state, d_inner))
        nn.init.kaiming_uniform_(self.x_proj_weight, a=math.sqrt(5))  # nn.Linear's default
        std = self.dt_rank ** -0.5
        self.dt_projs_weight = nn.Parameter(torch.empty(d_inner, self.dt_rank).uniform_(-std, std))
        self.dt_projs_bias = nn.Parameter(
            self._init_dt_bias(d_inner, dt_min, dt_max, dt_init_floor))
        # S4D-real initialisation A = -(1..N), stored as log; skip weights D = 1.
        self.A_logs = nn.Parameter(
            torch.log(torch.arange(1, d_state + 1, dtype=torch.float32)).repeat(d_inner, 1))
        self.Ds = nn.Parameter(torch.ones(d_inner))
        self.A_logs._no_weight_decay = True
        self.Ds._no_weight_decay = True
        self.state_fusion = StateFusion(d_inner)
        self.out_norm = nn.LayerNorm(d_inner)
        self.out_proj = nn.Linear(d_inner, d_model, bias=False)

    @staticmethod
    def _init_dt_bias(d_inner: int, dt_min: float, dt_max: float, floor: float) -> Tensor:
        """Bias whose softplus is log-uniform in [dt_min, dt_max] (Mamba's dt initialisation)."""
        dt = torch.exp(torch.rand(d_inner) * (math.log(dt_max) - math.log(dt_min))
                       + math.log(dt_min)).clamp(min=floor)
        return dt + torch.log(-torch.expm1(-dt))  # inverse of softplus

    def forward(self, x: Tensor) -> Tensor:
        """Mix tokens of a channels-last map.

        Args:
            x: (batch, H, W, C).

        Returns:
            (batch, H, W, C).
        """
        batch, height, width, _ = x.shape
        length = height * width
        # in_proj as two GEMMs, one per half of its weight: each half comes out contiguous,
        # where chunking one output would leave strided halves (the depthwise conv would copy
        # x). x is then a dense channels-last map (the fast depthwise path), and u below a
        # time-major view (batch, D, L), the layout of the CPU scan.
        with profile_range('in_proj'):
            w_x, w_z = self.in_proj.weight.chunk(2, dim=0)
            x, z = F.linear(x, w_x), F.linear(x, w_z)
        with profile_range('conv2d+silu'):
            x = F.silu(self.conv2d(x.permute(0, 3, 1, 2)))           # (batch, D, H, W)
            u = x.reshape(batch, self.d_inner, length)
        with profile_range('x_proj+dt'):
            x_dbl = torch.matmul(self.x_proj_weight, u)              # (batch, R + 2N, L)
            dt_low, B, C = torch.split(x_dbl, [self.dt_rank, self.d_state, self.d_state],
                                       dim=1)
            # Time-major like u, as one GEMM over positions: (batch, D, L) contiguous would
            # be transposed back by the CPU scan (two copies of a (batch, L, D) map per
            # block); the GPU kernels copy to their layout either way
            # (ops/_utils.inner_contiguous).
            delta = F.linear(dt_low.transpose(1, 2), self.dt_projs_weight).transpose(1, 2)
        with profile_range('sasf_core'):
            sf = self.state_fusion
            # Dynamo cannot trace a ContextVar; the override is for eager analysis only.
            core = structure_aware_ssm if torch.compiler.is_compiling() else \
                (_sasf_core.get() or structure_aware_ssm)
            y = core(
                u, delta, -torch.exp(self.A_logs.float()), B, C, self.Ds, self.dt_projs_bias,
                sf.kernel_3, sf.kernel_3_1, sf.kernel_3_2, sf.alpha, (height, width),
                delta_softplus=True, backend=self.backend)
        with profile_range('out_norm'):
            y = self.out_norm(y.transpose(1, 2).reshape(batch, height, width, self.d_inner))
        with profile_range('gate'):
            y = y * F.silu(z)
        with profile_range('out_proj'):
            return self.out_proj(y)
