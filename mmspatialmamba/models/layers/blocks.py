"""Stem, downsampling, MLP and the Spatial-Mamba block (docs/model.md "Block, stages, stem").

Activations between modules are channels last, (batch, H, W, C), as in the release.
Attribute names are part of the checkpoint interface and follow docs/model.md exactly.
"""
from typing import Optional

import torch
import torch.nn.functional as F
from mmcv.cnn import build_norm_layer
from mmcv.cnn.bricks import DropPath
from torch import Tensor, nn

from .profiling import profile_range
from .sasf import StructureAwareSSM


class ConvNormAct(nn.Module):
    """Conv2d, then an optional norm layer (``.norm``) and an optional ReLU.

    Our own small module rather than mmcv's ``ConvModule``, because ConvModule names its norm
    after the norm type (``.bn``, ``.gn``), while published checkpoints use ``.norm``.

    Args:
        in_channels, out_channels, kernel_size, stride, padding, groups, bias: As nn.Conv2d.
        norm_cfg: mmcv norm config (e.g. ``dict(type='BN')``, ``dict(type='SyncBN')``) or None.
        act: Append a ReLU.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 padding: int = 0, groups: int = 1, bias: bool = True,
                 norm_cfg: Optional[dict] = None, act: bool = True) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding,
                              groups=groups, bias=bias)
        self.norm = build_norm_layer(norm_cfg, out_channels)[1] if norm_cfg else None
        self.act = act

    def forward(self, x: Tensor) -> Tensor:
        conv = self.conv
        if conv.kernel_size == (1, 1) and conv.stride == (1, 1) and conv.padding == (0, 0) \
                and conv.groups == 1:
            # A pointwise convolution is a matrix product over channels: as F.linear on the
            # channels-last view it is one GEMM (ATen's CPU 1x1 convolution on channels-last
            # input takes its slow im2col path, forward and backward; docs/stack.md).
            x = F.linear(x.permute(0, 2, 3, 1), conv.weight.flatten(1), conv.bias)
            x = x.permute(0, 3, 1, 2)
        else:
            x = conv(x)
        if self.norm is not None:
            x = self.norm(x)
        if self.act:
            # In place when no graph is recorded: the input is this module's own fresh
            # output, and a new map of the stem's or the downsampling's size costs page
            # faults on first touch (docs/stack.md). Not in training: on the pointwise path
            # x is a permuted view, and an in-place op on a view makes autograd replay it.
            x = F.relu(x, inplace=not (torch.is_grad_enabled() and x.requires_grad))
        return x


class Stem(nn.Module):
    """Stride-4 convolutional stem (``patch_embed``): (batch, 3, H, W) -> (batch, H/4, W/4, E).

    conv1: conv3x3 s2 (3 -> E/2) + norm + ReLU; conv2: a residual pair of conv3x3 (E/2);
    conv3: conv3x3 s2 (E/2 -> 4E) + norm + ReLU, conv1x1 (4E -> E) + norm. No conv biases.
    Odd sizes round up (padding 1), so any input size works.

    Args:
        in_channels: Image channels. embed_dim: E. norm_cfg: Norm config for every conv.
    """

    def __init__(self, in_channels: int, embed_dim: int, norm_cfg: dict) -> None:
        super().__init__()
        half = embed_dim // 2
        self.conv1 = ConvNormAct(in_channels, half, 3, 2, 1, bias=False, norm_cfg=norm_cfg)
        self.conv2 = nn.Sequential(
            ConvNormAct(half, half, 3, 1, 1, bias=False, norm_cfg=norm_cfg),
            ConvNormAct(half, half, 3, 1, 1, bias=False, norm_cfg=norm_cfg, act=False))
        self.conv3 = nn.Sequential(
            ConvNormAct(half, 4 * embed_dim, 3, 2, 1, bias=False, norm_cfg=norm_cfg),
            ConvNormAct(4 * embed_dim, embed_dim, 1, bias=False, norm_cfg=norm_cfg, act=False))

    def forward(self, x: Tensor) -> Tensor:
        # Channels-last convolutions, so the permute below yields contiguous (batch, H, W, E)
        # and every later module reads channels-last memory without copies.
        x = self.conv1(x.contiguous(memory_format=torch.channels_last))
        x = self.conv2(x) + x
        return self.conv3(x).permute(0, 2, 3, 1)


class Downsample(nn.Module):
    """Stride-2 downsampling between stages: (batch, H, W, C) -> (batch, H/2, W/2, 2C).

    conv1x1 (C -> 8C) + ReLU; depthwise conv3x3 s2 + ReLU; conv1x1 (8C -> 2C) + norm; all with
    bias (docs/model.md).

    Args:
        dim: Input channels C. norm_cfg: Norm config of the last conv.
    """

    def __init__(self, dim: int, norm_cfg: dict) -> None:
        super().__init__()
        hidden = 8 * dim
        self.conv = nn.Sequential(
            ConvNormAct(dim, hidden, 1),
            ConvNormAct(hidden, hidden, 3, 2, 1, groups=hidden),
            ConvNormAct(hidden, 2 * dim, 1, norm_cfg=norm_cfg, act=False))

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)


class Mlp(nn.Module):
    """Linear(C, hidden) -> GELU -> Linear(hidden, C) on channels-last tokens."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))


class SpatialMambaBlock(nn.Module):
    """One Spatial-Mamba block on (batch, H, W, C) maps.

    ``x += cpe1(x)``; ``x += drop_path(mixer(ln_1(x)))``; ``x += cpe2(x)``;
    ``x += drop_path(mlp(ln_2(x)))``. cpe1/cpe2 are depthwise conv3x3 positional encodings.
    The mixer, a :class:`StructureAwareSSM`, is the attribute ``self_attention``: the name
    comes from the published checkpoints and cannot change, but it is the SSM, not attention.
    Each step runs in a profiler range named after it (:mod:`.profiling`).

    Args:
        dim: Channels C. drop_path: Stochastic depth rate of this block.
        mlp_ratio: MLP hidden width over C. d_state: SSM state size (1).
        backend: Ops backend of the mixer (None, 'torch' or 'triton').
    """

    def __init__(self, dim: int, drop_path: float = 0.0, mlp_ratio: float = 4.0,
                 d_state: int = 1, backend: Optional[str] = None) -> None:
        super().__init__()
        self.cpe1 = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)
        self.ln_1 = nn.LayerNorm(dim)
        self.self_attention = StructureAwareSSM(dim, d_state=d_state, backend=backend)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.cpe2 = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)
        self.ln_2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    @staticmethod
    def _pos_enc(conv: nn.Conv2d, x: Tensor) -> Tensor:
        return conv(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)

    def forward(self, x: Tensor) -> Tensor:
        """(batch, H, W, C) -> (batch, H, W, C)."""
        with profile_range('cpe1'):
            x = x + self._pos_enc(self.cpe1, x)
        with profile_range('ln_1'):
            h = self.ln_1(x)
        h = self.self_attention(h)  # its steps have their own ranges
        with profile_range('residual1'):
            x = x + self.drop_path(h)
        with profile_range('cpe2'):
            x = x + self._pos_enc(self.cpe2, x)
        with profile_range('ln_2'):
            h = self.ln_2(x)
        with profile_range('mlp'):
            h = self.mlp(h)
        with profile_range('residual2'):
            return x + self.drop_path(h)
