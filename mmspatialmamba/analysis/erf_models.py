"""The backbones that ``tools/analysis/erf.py`` measures, each returning one stage's output.

Ours comes from an mmdet/mmseg config (its ``model.backbone``) or from an arch name. The
comparisons are mmdet's Swin-T and ResNet-50 exactly as mmdet's own Mask R-CNN configs build
them (:data:`COMPARISONS`; the Swin-T one is the config ours is a diff on), from mmdet's
registry. Each starts from its own initialisation (``init_weights()`` without a checkpoint)
unless a checkpoint is given, which is loaded through the backbone's own ``init_cfg``
(Swin-T converts the official Swin checkpoints' keys there).
"""
import copy
from typing import Dict, NamedTuple, Optional

import torch
from mmengine.model import revert_sync_batchnorm
from mmengine.registry import MODELS, DefaultScope
from torch import Tensor, nn

from ..apis.config import config_scope, drop_pretrained_init, load_config
from ..errors import BadInputError
from .builders import arch_name, parse_arch

# Name -> the mmdet config whose ``model.backbone`` is the comparison backbone.
COMPARISONS: Dict[str, str] = {
    'Swin-T': 'mmdet::swin/mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py',
    'ResNet-50': 'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py',
}
NUM_STAGES = 4


class BackboneSpec(NamedTuple):
    """What to build: a display name, the backbone's config dict and its registry scope."""
    name: str
    cfg: dict
    scope: str


class StageModel(NamedTuple):
    """A built backbone in eval mode whose only output is one stage's feature map.

    ``weights`` says where its weights come from, for captions: 'initialisation (no
    checkpoint)' or 'checkpoint <path>'.
    """
    name: str
    module: nn.Module
    weights: str

    def __call__(self, images: Tensor) -> Tensor:
        """images: (batch, 3, H, W) normalised -> the stage's map, (batch, C, h, w)."""
        return self.module(images)[0]


def spatial_mamba_spec(source: str) -> BackboneSpec:
    """Our backbone from a config file (``*.py``: its ``model.backbone``) or an arch.

    Args:
        source: A config path, an arch name ('tiny', 'small', 'base', 't', 's', 'b') or a
            JSON arch dict such as ``'{"dims": 16, "depths": [1, 1, 1, 1]}'``.

    Raises:
        FileNotFoundError: If a config file does not exist.
        ValueError: If a config's ``default_scope`` is neither mmdet nor mmseg, or an arch
            is malformed JSON.
    """
    if source.endswith('.py'):
        cfg = load_config(source)
        drop_pretrained_init(cfg)
        backbone = cfg.model.backbone.to_dict()
        arch = arch_name(backbone.get('arch'))
        name = f'Spatial-Mamba-{arch[0].upper()}' if arch else backbone['type']
        return BackboneSpec(name, backbone, config_scope(cfg))
    arch = parse_arch(source)
    short = arch_name(arch)
    name = f'Spatial-Mamba-{short[0].upper()}' if short else 'Spatial-Mamba'
    return BackboneSpec(name, dict(type='SpatialMamba', arch=arch), 'mmdet')


def comparison_spec(name: str) -> BackboneSpec:
    """mmdet's Swin-T or ResNet-50 (a key of :data:`COMPARISONS`), without its checkpoint."""
    from mmengine.hub import get_config
    backbone = get_config(COMPARISONS[name]).model.backbone.to_dict()
    backbone.pop('init_cfg', None)
    return BackboneSpec(name, backbone, 'mmdet')


def _float_state(module: nn.Module) -> Dict[str, Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()
            if v.is_floating_point()}


def build_stage_model(spec: BackboneSpec, stage: int,
                      checkpoint: Optional[str] = None) -> StageModel:
    """Build ``spec``'s backbone returning only stage ``stage`` and initialise its weights.

    Args:
        spec: From :func:`spatial_mamba_spec` or :func:`comparison_spec`.
        stage: Stage index, 0 to 3 (as in ``out_indices``; 3 is the paper's stage 4).
        checkpoint: Weights for this backbone, loaded through its ``init_cfg``
            (``type='Pretrained'``); None keeps the initialisation.

    Returns:
        The model, in eval mode, with no parameter requiring grad (only the input does).

    Raises:
        BadInputError: If ``stage`` is out of range, or the checkpoint sets none of the
            backbone's weights (a checkpoint of another network); a Spatial-Mamba checkpoint
            that does not fit raises from its loader.
    """
    if not 0 <= stage < NUM_STAGES:
        raise BadInputError(f'stage must be 0-{NUM_STAGES - 1} (as in out_indices; 3 is the '
                            f"paper's stage 4), got {stage}")
    cfg = copy.deepcopy(spec.cfg)
    cfg['out_indices'] = (stage,)
    cfg['init_cfg'] = dict(type='Pretrained', checkpoint=checkpoint) if checkpoint else None
    with DefaultScope.overwrite_default_scope(spec.scope):
        module = revert_sync_batchnorm(MODELS.build(cfg))
    before = _float_state(module)
    module.init_weights()
    if checkpoint:
        after = _float_state(module)
        if all(torch.equal(before[k], v) for k, v in after.items()):
            raise BadInputError(f'checkpoint {checkpoint!r} set none of the {spec.name} '
                                f'weights; give a checkpoint of {spec.name}')
    module.eval()
    module.requires_grad_(False)
    weights = f'checkpoint {checkpoint}' if checkpoint else 'initialisation (no checkpoint)'
    return StageModel(spec.name, module, weights)

