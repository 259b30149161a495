"""Models and synthetic inputs for the analysis tools (get_flops, benchmark)."""
import json
from typing import Any, List, Optional, Tuple, Union

import torch
from mmengine.model import revert_sync_batchnorm
from mmengine.registry import MODELS, init_default_scope
from torch import Tensor, nn

from ..apis.config import TASKS, config_scope, drop_pretrained_init, load_config
from ..errors import BadInputError


def parse_arch(text: str) -> Union[str, dict]:
    """An arch from the command line: a name ('tiny') or a JSON dict.

    Raises:
        BadInputError: If ``text`` looks like JSON but does not parse.

    Example:
        >>> parse_arch('{"dims": 16, "depths": [1, 1, 1, 1]}')
        {'dims': 16, 'depths': [1, 1, 1, 1]}
    """
    if text.lstrip().startswith('{'):
        try:
            return json.loads(text)
        except json.JSONDecodeError as err:
            raise BadInputError(f'arch {text!r} is not valid JSON ({err}); pass a name '
                                '(tiny|small|base) or e.g. '
                                '\'{"dims": 16, "depths": [1,1,1,1]}\'') from err
    return text


def arch_name(arch: Any) -> Optional[str]:
    """'tiny', 'small' or 'base' for a published arch (name or alias), else None."""
    from ..models.trunk import ARCH_ALIASES, ARCH_SETTINGS
    if isinstance(arch, str):
        name = ARCH_ALIASES.get(arch.lower(), arch.lower())
        return name if name in ARCH_SETTINGS else None
    return None


def build_from_config(path: str, backend: Optional[str] = None
                      ) -> Tuple[nn.Module, str, Optional[str]]:
    """Build the model of an mmdet/mmseg config, without loading any checkpoint.

    The backbone's ImageNet ``init_cfg`` is dropped: weights do not matter for counting and
    timing, so no ImageNet file is needed.

    Args:
        path: Config file. backend: If given, sets ``model.backbone.backend``.

    Returns:
        ``(model, task ('detection' or 'segmentation'), published arch name or None)``;
        SyncBN is reverted to BN so the model runs in one process.

    Raises:
        MissingFileError: If ``path`` does not exist.
        BadInputError: If the config's ``default_scope`` is neither mmdet nor mmseg.
    """
    cfg = load_config(path)
    scope = config_scope(cfg)
    init_default_scope(scope)
    drop_pretrained_init(cfg)
    backbone = cfg.model.get('backbone', {})
    if backend is not None:
        backbone.backend = backend
    model = revert_sync_batchnorm(MODELS.build(cfg.model))
    return model, TASKS[scope], arch_name(backbone.get('arch'))


def synthetic_batch(task: str, batch: int, height: int, width: int,
                    device: Union[str, torch.device] = 'cpu'
                    ) -> Tuple[Tensor, Optional[List[Any]]]:
    """Random images and, for mmdet/mmseg, data samples with meta data and targets.

    Detection samples describe unscaled (H, W) images with three boxes (labels 1, 5, 9) and
    their box-shaped masks; segmentation samples hold a random 150-class label map.

    Returns:
        ``(images (batch, 3, H, W), list of data samples, or None for other tasks)``.
    """
    images = torch.randn(batch, 3, height, width, device=device)
    meta = dict(img_shape=(height, width), ori_shape=(height, width),
                pad_shape=(height, width), batch_input_shape=(height, width),
                scale_factor=(1.0, 1.0))
    if task == 'detection':
        import numpy as np
        from mmdet.structures import DetDataSample
        from mmdet.structures.mask import BitmapMasks
        from mmengine.structures import InstanceData
        boxes = torch.tensor([[0.1, 0.1, 0.5, 0.6], [0.3, 0.2, 0.9, 0.8],
                              [0.05, 0.5, 0.4, 0.95]]) * torch.tensor([width, height] * 2)
        masks = np.zeros((3, height, width), dtype=np.uint8)
        for i, (x1, y1, x2, y2) in enumerate(boxes.int().tolist()):
            masks[i, y1:y2, x1:x2] = 1
        samples = [DetDataSample(metainfo=meta, gt_instances=InstanceData(
            bboxes=boxes.to(device), labels=torch.tensor([1, 5, 9], device=device),
            masks=BitmapMasks(masks, height, width))) for _ in range(batch)]
        return images, samples
    if task == 'segmentation':
        from mmengine.structures import PixelData
        from mmseg.structures import SegDataSample
        samples = [SegDataSample(metainfo=meta, gt_sem_seg=PixelData(
            data=torch.randint(0, 150, (1, height, width), device=device)))
            for _ in range(batch)]
        return images, samples
    return images, None


class TensorMode(nn.Module):
    """Run an OpenMMLab model in ``mode='tensor'`` with fixed data samples (traceable).

    Args:
        model: An mmdet detector or mmseg segmentor.
        data_samples: What its ``forward`` needs besides the images (None for mmseg).
    """

    def __init__(self, model: nn.Module, data_samples: Optional[List[Any]]) -> None:
        super().__init__()
        self.model = model
        self.data_samples = data_samples

    def forward(self, inputs: Tensor) -> Any:
        """inputs: (batch, 3, H, W) -> the model's raw head outputs."""
        return self.model(inputs, self.data_samples, mode='tensor')
