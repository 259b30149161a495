"""Spatial-Mamba backbone for dense prediction (mmdet, mmseg) and its release-config alias."""
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.utils.checkpoint as cp
from mmengine.logging import print_log
from mmengine.model import BaseModule
from mmengine.model.weight_init import trunc_normal_
from mmengine.runner.checkpoint import CheckpointLoader
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from ...registry import MODELS
from ..checkpoint import filter_state_dict
from ..layers import Downsample, SpatialMambaBlock, Stem

ARCH_SETTINGS: Dict[str, dict] = {
    'tiny': dict(dims=64, depths=(2, 4, 8, 4), drop_path_rate=0.2),
    'small': dict(dims=64, depths=(2, 4, 21, 5), drop_path_rate=0.3),
    'base': dict(dims=96, depths=(2, 4, 21, 5), drop_path_rate=0.5),
}
ARCH_ALIASES = {'t': 'tiny', 's': 'small', 'b': 'base'}


def resolve_arch(arch: Union[str, dict]) -> Tuple[List[int], List[int], float]:
    """Turn ``arch`` into ``(dims per stage, depths, default drop_path_rate)``.

    Raises:
        ValueError: For an unknown name or a malformed dict.
    """
    if isinstance(arch, str):
        name = ARCH_ALIASES.get(arch.lower(), arch.lower())
        if name not in ARCH_SETTINGS:
            raise ValueError(f'unknown arch {arch!r}; choose one of {sorted(ARCH_SETTINGS)} '
                             'or pass dict(dims=..., depths=...)')
        arch = ARCH_SETTINGS[name]
    if not isinstance(arch, dict) or not {'dims', 'depths'} <= set(arch):
        raise ValueError(f'arch must be a name or a dict with keys dims and depths, got {arch!r}')
    extra = set(arch) - {'dims', 'depths', 'drop_path_rate'}
    if extra:
        raise ValueError(f'unknown arch keys {sorted(extra)}; allowed: dims, depths, '
                         'drop_path_rate')
    depths = [int(d) for d in arch['depths']]
    dims = arch['dims']
    dims = [int(dims) * 2 ** i for i in range(len(depths))] if isinstance(dims, int) else \
        [int(d) for d in dims]
    if len(dims) != len(depths) or any(d <= 0 for d in dims + depths):
        raise ValueError(f'arch needs one positive dim and depth per stage, got dims={dims}, '
                         f'depths={depths}')
    if any(b != 2 * a for a, b in zip(dims, dims[1:])):
        raise ValueError(f'each stage must double the channels (the downsampling maps C to 2C), '
                         f'got dims={dims}')
    return dims, depths, float(arch.get('drop_path_rate', 0.1))


class SpatialMambaStage(nn.Module):
    """One stage: ``blocks`` at constant resolution, then an optional ``downsample``.

    Args:
        dim: Channels C. depth: Number of blocks. drop_path: Per-block rates (len depth).
        downsample: Append a stride-2 downsampling to 2C. norm_cfg: Its norm config.
        with_cp: Checkpoint each block in training to save memory.
        backend: Ops backend of the blocks.
    """

    def __init__(self, dim: int, depth: int, drop_path: Sequence[float], downsample: bool,
                 norm_cfg: dict, with_cp: bool = False, backend: Optional[str] = None) -> None:
        super().__init__()
        self.with_cp = with_cp
        self.blocks = nn.ModuleList(
            SpatialMambaBlock(dim, drop_path=drop_path[i], backend=backend) for i in range(depth))
        self.downsample = Downsample(dim, norm_cfg) if downsample else None

    def forward(self, x: Tensor) -> Tuple[Tensor, Optional[Tensor]]:
        """(batch, H, W, C) -> (stage output (batch, H, W, C), next input or None)."""
        for block in self.blocks:
            if self.with_cp and self.training and x.requires_grad:
                x = cp.checkpoint(block, x, use_reentrant=False)
            else:
                x = block(x)
        return x, (self.downsample(x) if self.downsample is not None else None)


@MODELS.register_module()
class SpatialMamba(BaseModule):
    """Spatial-Mamba backbone (Xiao et al., ICLR 2025) for detection and segmentation.

    A stride-4 convolutional stem, four stages of Spatial-Mamba blocks (structure-aware SSM
    mixer + MLP) with stride-2 downsampling between them, and a LayerNorm (``outnorm{i}``) on
    each returned stage output. Parameter names match the published checkpoints.

    Args:
        arch (str | dict): 'tiny', 'small', 'base' (or 't', 's', 'b'), or a dict with
            ``dims`` (int E, doubled per stage, or a list) and ``depths``. Default: 'tiny'.
        in_channels (int): Image channels. Default: 3.
        out_indices (Sequence[int]): Stages whose outputs are returned. Default: (0, 1, 2, 3).
        drop_path_rate (float, optional): Stochastic depth rate, linearly increasing over
            blocks. Default: None, the arch's published value (T 0.2, S 0.3, B 0.5).
        frozen_stages (int): Freeze the stem (0) and stages < frozen_stages (with their
            downsampling and output norms); -1 freezes nothing. Default: -1.
        norm_eval (bool): Keep BatchNorm layers in eval mode during training. Default: False.
        with_cp (bool): Gradient checkpointing per block (same outputs, less memory).
            Default: False.
        norm_cfg (dict): Norm of the stem and downsampling convs, e.g. ``dict(type='SyncBN')``.
            Default: ``dict(type='BN')``.
        backend (str, optional): Ops backend: None (Triton on CUDA, PyTorch on CPU), 'torch'
            or 'triton'. Default: None.
        init_cfg (dict, optional): ``dict(type='Pretrained', checkpoint=PATH)`` loads an
            ImageNet, a dense (mmengine) or a bare checkpoint; see :func:`filter_state_dict`.

    Example:
        >>> import torch
        >>> from mmspatialmamba.models import SpatialMamba
        >>> model = SpatialMamba(arch='tiny').eval()
        >>> for out in model(torch.rand(1, 3, 64, 96)):
        ...     print(tuple(out.shape))
        (1, 64, 16, 24)
        (1, 128, 8, 12)
        (1, 256, 4, 6)
        (1, 512, 2, 3)
    """

    def __init__(self, arch: Union[str, dict] = 'tiny', in_channels: int = 3,
                 out_indices: Sequence[int] = (0, 1, 2, 3),
                 drop_path_rate: Optional[float] = None, frozen_stages: int = -1,
                 norm_eval: bool = False, with_cp: bool = False,
                 norm_cfg: Optional[dict] = None, backend: Optional[str] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        dims, depths, default_dpr = resolve_arch(arch)
        num_stages = len(depths)
        out_indices = tuple(int(i) for i in out_indices)
        if not out_indices or any(not 0 <= i < num_stages for i in out_indices) \
                or len(set(out_indices)) != len(out_indices):
            raise ValueError(f'out_indices must be distinct stage indices in [0, {num_stages}), '
                             f'got {out_indices}')
        if not -1 <= frozen_stages <= num_stages:
            raise ValueError(f'frozen_stages must be in [-1, {num_stages}], got {frozen_stages}')
        drop_path_rate = default_dpr if drop_path_rate is None else float(drop_path_rate)
        if not 0.0 <= drop_path_rate < 1.0:
            raise ValueError(f'drop_path_rate must be in [0, 1), got {drop_path_rate}')
        norm_cfg = dict(type='BN', requires_grad=True) if norm_cfg is None else norm_cfg

        self.in_channels = in_channels
        self.dims = dims
        self.out_indices = out_indices
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval

        self.patch_embed = Stem(in_channels, dims[0], norm_cfg)
        rates = torch.linspace(0, drop_path_rate, sum(depths)).tolist()
        self.layers = nn.ModuleList()
        for i, depth in enumerate(depths):
            start = sum(depths[:i])
            self.layers.append(SpatialMambaStage(
                dims[i], depth, rates[start:start + depth], downsample=i < num_stages - 1,
                norm_cfg=norm_cfg, with_cp=with_cp, backend=backend))
        for i in out_indices:
            self.add_module(f'outnorm{i}', nn.LayerNorm(dims[i]))
        self._freeze_stages()

    @property
    def out_channels(self) -> List[int]:
        """Channels of each returned feature map, in ``out_indices`` order."""
        return [self.dims[i] for i in self.out_indices]

    def _freeze_stages(self) -> None:
        if self.frozen_stages < 0:
            return
        frozen: List[nn.Module] = [self.patch_embed]
        for i in range(self.frozen_stages):
            frozen.append(self.layers[i])
            if i in self.out_indices:
                frozen.append(getattr(self, f'outnorm{i}'))
        for module in frozen:
            module.eval()
            for param in module.parameters():
                param.requires_grad = False

    def train(self, mode: bool = True) -> 'SpatialMamba':
        """Set train mode, then re-freeze frozen stages and (``norm_eval``) BatchNorm stats."""
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for module in self.modules():
                if isinstance(module, _BatchNorm):
                    module.eval()
        return self

    def init_weights(self) -> None:
        """Initialise as the release does, then load ``init_cfg``'s checkpoint if any.

        Linear weights: truncated normal (std 0.02), zero bias; LayerNorm: ones and zeros. The
        SSM parameters keep their construction-time initialisation (SPEC). A Pretrained
        ``init_cfg`` loads through mmengine's ``CheckpointLoader`` and
        :func:`filter_state_dict`, and logs what was skipped and what is missing.
        """
        for module in self.modules():
            if isinstance(module, nn.Linear):
                trunc_normal_(module.weight, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        if self.init_cfg is not None and self.init_cfg.get('type') == 'Pretrained':
            self.load_pretrained(self.init_cfg['checkpoint'])
        elif self.init_cfg is not None:
            super().init_weights()
        self._is_init = True

    def load_pretrained(self, path: str) -> Dict[str, object]:
        """Load a checkpoint file in any published format; returns the filter's report.

        Raises:
            FileNotFoundError: If ``path`` does not exist.
            KeyError, ValueError: From :func:`filter_state_dict` on an incompatible file.
        """
        checkpoint = CheckpointLoader.load_checkpoint(path, map_location='cpu',
                                                      logger='current')
        state, report = filter_state_dict(checkpoint, self.state_dict())
        self.load_state_dict(state, strict=False)
        print_log(f'SpatialMamba: loaded {len(state)} tensors from {path}', logger='current')
        if report['skipped']:
            reasons: Dict[str, int] = {}
            for reason in report['skipped'].values():
                reasons[reason] = reasons.get(reason, 0) + 1
            print_log(f'SpatialMamba: skipped checkpoint keys: {reasons}', logger='current')
        if report['missing']:
            print_log(f'SpatialMamba: {len(report["missing"])} backbone tensors not in the '
                      f'checkpoint keep their initialisation: {report["missing"]}',
                      logger='current', level=30)
        return report

    def forward(self, x: Tensor) -> Tuple[Tensor, ...]:
        """Compute the feature maps of the stages in ``out_indices``.

        Args:
            x: Images, (batch, in_channels, H, W); any H, W >= 1.

        Returns:
            One (batch, C_i, ceil(H / 2^(i+2)), ceil(W / 2^(i+2))) map per index i.

        Raises:
            ValueError: If ``x`` is not a (batch, in_channels, H, W) tensor.
        """
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f'SpatialMamba expects images of shape (batch, {self.in_channels}, '
                             f'H, W), got {tuple(x.shape)}')
        x = self.patch_embed(x)
        outs = []
        for i, layer in enumerate(self.layers):
            out, x = layer(x)
            if i in self.out_indices:
                outs.append(getattr(self, f'outnorm{i}')(out).permute(0, 3, 1, 2).contiguous())
        return tuple(outs)


# Keys that the release's configs leave behind: they merge the backbone into mmdet's or mmseg's
# Swin config without _delete_=True, and the release's constructor swallowed them in **kwargs.
_RELEASE_LEFTOVER_KEYS = frozenset({
    'pretrain_img_size', 'embed_dims', 'patch_size', 'window_size', 'mlp_ratio', 'num_heads',
    'strides', 'qkv_bias', 'qk_scale', 'drop_rate', 'attn_drop_rate', 'patch_norm',
    'convert_weights', 'act_cfg', 'use_abs_pos_embed', 'norm_cfg', 'init_cfg'})


@MODELS.register_module(name='MM_SpatialMamba')
class MMSpatialMamba(SpatialMamba):
    """``SpatialMamba`` under the release's config name and arguments.

    Lets the release's configs and checkpoints run unchanged: ``dims`` (int E), ``depths``,
    ``d_state`` (must be 1), ``drop_path_rate``, ``out_indices``, ``pretrained`` (a path; ''
    or None trains from scratch), ``use_checkpoint`` or Swin's ``with_cp``. The other Swin
    arguments that those configs inherit by merging (``embed_dims``, ``window_size``, Swin's
    LayerNorm ``norm_cfg`` and ``init_cfg``, ...) are ignored with a warning, as the release
    ignored them; any other argument raises.
    """

    def __init__(self, dims: int = 64, depths: Sequence[int] = (2, 4, 8, 4), d_state: int = 1,
                 drop_path_rate: float = 0.2, out_indices: Sequence[int] = (0, 1, 2, 3),
                 pretrained: Optional[str] = None, use_checkpoint: bool = False,
                 with_cp: bool = False, **release_leftovers) -> None:
        unknown = sorted(set(release_leftovers) - _RELEASE_LEFTOVER_KEYS)
        if unknown:
            raise TypeError(f'MM_SpatialMamba got unexpected arguments {unknown}; it takes dims, '
                            'depths, d_state, drop_path_rate, out_indices, pretrained, '
                            "use_checkpoint, with_cp (or use type='SpatialMamba')")
        if d_state != 1:
            raise ValueError(f'd_state must be 1 (all published models), got {d_state}')
        init_cfg = dict(type='Pretrained', checkpoint=pretrained) if pretrained else None
        super().__init__(arch=dict(dims=dims, depths=depths), out_indices=out_indices,
                         drop_path_rate=drop_path_rate, with_cp=use_checkpoint or with_cp,
                         init_cfg=init_cfg)
        if release_leftovers:
            print_log(f'MM_SpatialMamba: ignoring Swin arguments inherited by the release '
                      f'config: {sorted(release_leftovers)}', logger='current', level=30)
        if not pretrained:
            print_log('MM_SpatialMamba: no pretrained checkpoint (pretrained is empty); '
                      'the backbone starts from its initialisation', logger='current')
