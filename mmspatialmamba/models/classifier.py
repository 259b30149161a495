"""Spatial-Mamba as an ImageNet classifier: the published ImageNet checkpoints' model.

Built on the shared :class:`~.trunk.SpatialMambaTrunk` (stem and stages), not by stripping a
backbone: a final ``norm`` (LayerNorm over the last stage's channels), a global
average pool and a ``head`` Linear replace the backbone's per-stage ``outnorm{i}``. The state
dict is therefore exactly the release's ImageNet one (``patch_embed.*``, ``layers.*``,
``norm.*``, ``head.*``), and a published ``model`` checkpoint loads with zero missing and zero
unexpected keys. Used for ImageNet FLOPs/throughput (``tools/get_flops.py --classifier``,
``tools/benchmark.py --classifier``) and for checking checkpoints.
"""
from typing import Optional, Union

from torch import Tensor, nn

from ..errors import BadInputError
from ..registry import MODELS
from .trunk import SpatialMambaTrunk


@MODELS.register_module()
class SpatialMambaClassifier(SpatialMambaTrunk):
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
        if not isinstance(num_classes, int) or num_classes < 0:
            raise BadInputError(f'num_classes must be an int >= 0 (0: no head), '
                                f'got {num_classes!r}')
        super().__init__(arch, in_channels, drop_path_rate, with_cp, norm_cfg, backend, init_cfg)
        self.num_classes = num_classes
        self.num_features = self.dims[-1]
        self.norm = nn.LayerNorm(self.num_features)
        self.head = nn.Linear(self.num_features, num_classes) if num_classes else nn.Identity()

    def forward_features(self, x: Tensor) -> Tensor:
        """Last-stage feature map after the final ``norm``.

        Args:
            x: Images, (batch, in_channels, H, W).

        Returns:
            (batch, C_last, ceil(H / 32), ceil(W / 32)), channels first.

        Raises:
            ValueError: If ``x`` is not a (batch, in_channels, H, W) tensor.
        """
        stage_outputs = [out for _, out in self.iter_stages(x)]
        return self.norm(stage_outputs[-1]).permute(0, 3, 1, 2)

    def forward(self, x: Tensor) -> Tensor:
        """Classify images.

        Args:
            x: Images, (batch, in_channels, H, W).

        Returns:
            Logits (batch, num_classes), or pooled features (batch, C_last) if
            ``num_classes`` is 0.
        """
        return self.head(self.forward_features(x).mean(dim=(2, 3)))
