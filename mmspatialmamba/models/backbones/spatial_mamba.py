"""Spatial-Mamba backbone for dense prediction (mmdet, mmseg) and its release-config alias."""
import logging
import warnings
from typing import List, Optional, Sequence, Tuple, Union

from mmengine.logging import print_log
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from ...errors import BadArgumentError, BadInputError
from ...registry import MODELS
from ..trunk import InitCfg, SpatialMambaTrunk


@MODELS.register_module()
class SpatialMamba(SpatialMambaTrunk):
    """Spatial-Mamba backbone (Xiao et al., ICLR 2025) for detection and segmentation.

    A stride-4 convolutional stem, four stages of Spatial-Mamba blocks (structure-aware SSM
    mixer + MLP) with stride-2 downsampling between them, and a LayerNorm (``outnorm{i}``) on
    each returned stage output. Parameter names match the published checkpoints.

    Args:
        arch (str | dict): 'tiny', 'small', 'base' (or 't', 's', 'b'), or a dict with
            ``dims`` (int E, doubled per stage, or a list) and ``depths``. Default: 'tiny'.
        in_channels (int): Image channels. Default: 3.
        out_indices (Sequence[int]): Stages whose outputs are returned, any subset in any
            order; negative indices count from the last stage (-1 is stage 3). The outputs
            always come in stage order (shallow to deep), as from mmdet's and mmseg's
            backbones. Default: (0, 1, 2, 3).
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
        pretrained (str, optional): Deprecated alias of
            ``init_cfg=dict(type='Pretrained', checkpoint=pretrained)``, accepted (with a
            warning) because mmseg's segmentors hand ``model.pretrained`` to the backbone, as
            mmseg's own backbones accept it. Giving both raises. Default: None.
        init_cfg (dict | list[dict], optional): mmengine init_cfg.
            ``dict(type='Pretrained', checkpoint=PATH)`` (optionally ``prefix=``,
            ``map_location=``) loads an ImageNet, a dense (mmengine) or a bare checkpoint (see
            :func:`filter_state_dict`); other initialisers (``Kaiming``, ...) may be listed
            beside it. Default: None.

    Raises:
        BadArgumentError: On an argument SpatialMamba does not take (the message suggests
            ``_delete_=True`` when it was merged from the base config's backbone), or a
            ``pretrained`` that is not a str; also a ``TypeError``.
        BadInputError: On a bad value (arch, out_indices, frozen_stages, drop_path_rate,
            init_cfg), or ``pretrained`` given together with ``init_cfg``.

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
                 pretrained: Optional[str] = None, init_cfg: InitCfg = None,
                 **unexpected) -> None:
        if unexpected:
            raise BadArgumentError(
                f'SpatialMamba got unexpected arguments {sorted(unexpected)}. If they come from '
                "the base config's backbone (ResNet's depth, Swin's embed_dims, ...), replace "
                "that backbone instead of merging into it: backbone=dict(_delete_=True, "
                "type='SpatialMamba', ...)")
        if pretrained is not None:
            init_cfg = _pretrained_to_init_cfg(pretrained, init_cfg)
        super().__init__(arch, in_channels, drop_path_rate, with_cp, norm_cfg, backend, init_cfg)
        self.pretrained = pretrained
        num_stages = len(self.layers)
        given = tuple(int(i) for i in out_indices)
        out_indices = tuple(sorted({i % num_stages for i in given
                                    if -num_stages <= i < num_stages}))
        if not given or len(out_indices) != len(given):  # empty, out of range or repeated
            raise BadInputError(f'out_indices must be distinct stage indices in [0, {num_stages}) '
                                f'(or negative, from the end), got {given}')
        if not -1 <= frozen_stages <= num_stages:
            raise BadInputError(f'frozen_stages must be in [-1, {num_stages}], got {frozen_stages}')
        self.out_indices = out_indices
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval
        for i in out_indices:
            self.add_module(f'outnorm{i}', nn.LayerNorm(self.dims[i]))
        self._freeze_stages()

    @property
    def out_channels(self) -> List[int]:
        """Channels of each returned feature map, in stage order (as they are returned)."""
        return [self.dims[i] for i in self.out_indices]

    def init_weights(self) -> None:
        """As :meth:`SpatialMambaTrunk.init_weights`; a checkpoint that came through the
        deprecated ``pretrained`` and fails to load raises with the fix for mmseg configs.

        Raises:
            BadInputError: If the ``pretrained`` checkpoint does not load (e.g. a ResNet
                checkpoint inherited from an mmseg base config's ``model.pretrained``).
        """
        try:
            super().init_weights()
        except BadInputError as err:
            if self.pretrained is None:
                raise
            raise BadInputError(
                f'{self.pretrained!r}, the backbone\'s pretrained (mmseg hands it '
                'model.pretrained, which base configs set to ResNet weights such as '
                f"'open-mmlab://resnet50_v1c'), does not load: {err}. Set "
                'model.pretrained=None and give the Spatial-Mamba checkpoint in '
                "model.backbone.init_cfg=dict(type='Pretrained', checkpoint=...)") from err

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

    def forward(self, x: Tensor) -> Tuple[Tensor, ...]:
        """Compute the feature maps of the stages in ``out_indices``.

        Args:
            x: Images, (batch, in_channels, H, W); any H, W >= 1.

        Returns:
            One (batch, C_i, ceil(H / 2^(i+2)), ceil(W / 2^(i+2))) map per index i.

        Raises:
            ValueError: If ``x`` is not a (batch, in_channels, H, W) tensor.
        """
        return tuple(getattr(self, f'outnorm{i}')(out).permute(0, 3, 1, 2).contiguous()
                     for i, out in self.iter_stages(x) if i in self.out_indices)


def _pretrained_to_init_cfg(pretrained: str, init_cfg: InitCfg) -> dict:
    """mmseg's deprecated ``pretrained`` argument as an init_cfg (mmseg 1.2.2's backbones,
    e.g. ``ResNet``, accept it the same way).

    Raises:
        BadArgumentError: If ``pretrained`` is not a str.
        BadInputError: If ``init_cfg`` is given too.
    """
    if not isinstance(pretrained, str):
        raise BadArgumentError(f'pretrained must be a str (checkpoint path) or None, '
                               f'got {pretrained!r}')
    if init_cfg is not None:
        raise BadInputError(
            f'init_cfg and pretrained cannot be set at the same time (pretrained={pretrained!r}; '
            'mmseg hands model.pretrained to the backbone, and base configs set it): set '
            'model.pretrained=None and give the checkpoint in model.backbone.init_cfg')
    warnings.warn('pretrained is deprecated (mmseg passes model.pretrained to the backbone); '
                  f"use init_cfg=dict(type='Pretrained', checkpoint={pretrained!r})",
                  stacklevel=3)
    return dict(type='Pretrained', checkpoint=pretrained)


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
            raise BadArgumentError(f'MM_SpatialMamba got unexpected arguments {unknown}; it '
                                   'takes dims, depths, d_state, drop_path_rate, out_indices, '
                                   "pretrained, use_checkpoint, with_cp (or use "
                                   "type='SpatialMamba')")
        if d_state != 1:
            raise BadInputError(f'd_state must be 1 (all published models), got {d_state}')
        init_cfg = dict(type='Pretrained', checkpoint=pretrained) if pretrained else None
        super().__init__(arch=dict(dims=dims, depths=depths), out_indices=out_indices,
                         drop_path_rate=drop_path_rate, with_cp=use_checkpoint or with_cp,
                         init_cfg=init_cfg)
        if release_leftovers:
            print_log(f'MM_SpatialMamba: ignoring Swin arguments inherited by the release '
                      f'config: {sorted(release_leftovers)}', logger='current',
                      level=logging.WARNING)
        if not pretrained:
            print_log('MM_SpatialMamba: no pretrained checkpoint (pretrained is empty); '
                      'the backbone starts from its initialisation', logger='current')
