"""Spatial-Mamba as an ImageNet classifier: the published ImageNet checkpoints' model.

Built from the backbone's pieces (``Stem``, ``SpatialMambaStage``, :func:`resolve_arch`), not
by stripping a backbone: a final ``norm`` (LayerNorm over the last stage's channels), a global
average pool and a ``head`` Linear replace the backbone's per-stage ``outnorm{i}``. The state
dict is therefore exactly the release's ImageNet one (``patch_embed.*``, ``layers.*``,
``norm.*``, ``head.*``), and a published ``model`` checkpoint loads with zero missing and zero
unexpected keys. Used for ImageNet FLOPs/throughput (``tools/get_flops.py --classifier``,
``tools/benchmark.py --classifier``) and for checking checkpoints.
"""
from typing import Dict, Optional, Union

import torch
from mmengine.logging import print_log
from mmengine.model import BaseModule
from mmengine.model.weight_init import trunc_normal_
from mmengine.runner.checkpoint import CheckpointLoader
from torch import Tensor, nn

from ..registry import MODELS
from .backbones.spatial_mamba import SpatialMambaStage, resolve_arch
from .checkpoint import filter_state_dict
from .layers import Stem


@MODELS.register_module()
class SpatialMambaClassifier(BaseModule):
    """Spatial-Mamba image classifier (stem, four stages, LayerNorm, average pool, Linear).

    Registered in mmengine's root ``MODELS``, so it builds from any OpenMMLab registry that
    falls back to the root (mmdet, mmseg, and mmpretrain where installed). ``forward`` maps
    images to logits, which is what mmpretrain's wrappers around complete models expect; as
    an mmpretrain *backbone* (a tuple of feature maps for a neck/head) use ``SpatialMamba``
    with ``out_indices=(3,)``.

    Args:
        arch (str | dict): 'tiny', 'small', 'base' (or 't', 's', 'b'), or a dict with ``dims``
            and ``depths``, as for ``SpatialMamba``. Default: 'tiny'.
        num_classes (int): Classes of ``head``; 0 replaces the head by an identity, so
            ``forward`` returns the pooled features. Default: 1000.
        in_channels (int): Image channels. Default: 3.
        drop_path_rate (float, optional): Stochastic depth rate; None takes the arch's
            published value (T 0.2, S 0.3, B 0.5). Default: None.
        with_cp (bool): Gradient checkpointing per block. Default: False.
        norm_cfg (dict, optional): Norm of the stem and downsampling convs. Default: BN.
        backend (str, optional): Ops backend: None (Triton on CUDA, PyTorch on CPU), 'torch'
            or 'triton'. Default: None.
        init_cfg (dict, optional): ``dict(type='Pretrained', checkpoint=PATH)`` loads a
            published ImageNet checkpoint (or any format :func:`filter_state_dict` reads).

    Example:
        >>> import torch
        >>> from mmspatialmamba.models import SpatialMambaClassifier
        >>> model = SpatialMambaClassifier(arch='tiny').eval()
        >>> print(tuple(model(torch.rand(2, 3, 64, 64)).shape))
        (2, 1000)
        >>> print(tuple(model.forward_features(torch.rand(2, 3, 64, 64)).shape))
        (2, 512, 2, 2)
    """

    def __init__(self, arch: Union[str, dict] = 'tiny', num_classes: int = 1000,
                 in_channels: int = 3, drop_path_rate: Optional[float] = None,
                 with_cp: bool = False, norm_cfg: Optional[dict] = None,
                 backend: Optional[str] = None, init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        dims, depths, default_dpr = resolve_arch(arch)
        if not isinstance(num_classes, int) or num_classes < 0:
            raise ValueError(f'num_classes must be an int >= 0 (0: no head), got {num_classes!r}')
        drop_path_rate = default_dpr if drop_path_rate is None else float(drop_path_rate)
        if not 0.0 <= drop_path_rate < 1.0:
            raise ValueError(f'drop_path_rate must be in [0, 1), got {drop_path_rate}')
        norm_cfg = dict(type='BN', requires_grad=True) if norm_cfg is None else norm_cfg

        self.in_channels = in_channels
        self.dims = dims
        self.num_classes = num_classes
        self.num_features = dims[-1]
        self.patch_embed = Stem(in_channels, dims[0], norm_cfg)
        rates = torch.linspace(0, drop_path_rate, sum(depths)).tolist()
        self.layers = nn.ModuleList()
        for i, depth in enumerate(depths):
            start = sum(depths[:i])
            self.layers.append(SpatialMambaStage(
                dims[i], depth, rates[start:start + depth], downsample=i < len(depths) - 1,
                norm_cfg=norm_cfg, with_cp=with_cp, backend=backend))
        self.norm = nn.LayerNorm(self.num_features)
        self.head = nn.Linear(self.num_features, num_classes) if num_classes else nn.Identity()

    def init_weights(self) -> None:
        """Initialise as the backbone does, then load ``init_cfg``'s checkpoint if any.

        Linear weights: truncated normal (std 0.02), zero bias; LayerNorm: ones and zeros; the
        SSM parameters keep their construction-time values.
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
        """Load a checkpoint file; returns :func:`filter_state_dict`'s report.

        A published ImageNet checkpoint (``model`` key) fills every tensor. A dense
        (``backbone.``-prefixed) checkpoint fills the stem and stages; ``norm`` and ``head``
        then keep their initialisation and are listed in the report's ``missing``.

        Raises:
            FileNotFoundError: If ``path`` does not exist.
            KeyError, ValueError: From :func:`filter_state_dict` on an incompatible file.
        """
        checkpoint = CheckpointLoader.load_checkpoint(path, map_location='cpu',
                                                      logger='current')
        state, report = filter_state_dict(checkpoint, self.state_dict())
        self.load_state_dict(state, strict=False)
        print_log(f'SpatialMambaClassifier: loaded {len(state)} tensors from {path}',
                  logger='current')
        if report['missing']:
            print_log(f'SpatialMambaClassifier: {len(report["missing"])} tensors not in the '
                      f'checkpoint keep their initialisation: {report["missing"]}',
                      logger='current', level=30)
        return report

    def forward_features(self, x: Tensor) -> Tensor:
        """Last-stage feature map after the final ``norm``.

        Args:
            x: Images, (batch, in_channels, H, W).

        Returns:
            (batch, C_last, ceil(H / 32), ceil(W / 32)), channels first.

        Raises:
            ValueError: If ``x`` is not a (batch, in_channels, H, W) tensor.
        """
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f'SpatialMambaClassifier expects images of shape (batch, '
                             f'{self.in_channels}, H, W), got {tuple(x.shape)}')
        x = self.patch_embed(x)
        for layer in self.layers:
            out, x = layer(x)
        return self.norm(out).permute(0, 3, 1, 2)

    def forward(self, x: Tensor) -> Tensor:
        """Classify images.

        Args:
            x: Images, (batch, in_channels, H, W).

        Returns:
            Logits (batch, num_classes), or pooled features (batch, C_last) if
            ``num_classes`` is 0.
        """
        return self.head(self.forward_features(x).mean(dim=(2, 3)))
