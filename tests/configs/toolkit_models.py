"""Build an mmdet or mmseg model from a config, and make tiny batches for it.

Shared by the config tests. Batches are what the toolkits' data pipelines hand the model:
``dict(inputs=[uint8 (3, H, W)], data_samples=[DetDataSample | SegDataSample])``, so a test
goes through the model's own data preprocessor, as mmengine's Runner does.
"""
from typing import List

import numpy as np
import torch
from mmengine.config import Config
from mmengine.model import revert_sync_batchnorm
from mmengine.registry import init_default_scope
from mmengine.structures import InstanceData, PixelData

# Two objects per image, in (x1, y1, x2, y2) at the scale of a 64x64 image.
_BOXES = [[4.0, 6.0, 36.0, 40.0], [24.0, 20.0, 60.0, 58.0]]


def build(cfg: Config) -> torch.nn.Module:
    """Build ``cfg.model`` from the registry of ``cfg.default_scope`` (mmdet or mmseg)."""
    init_default_scope(cfg.default_scope)
    if cfg.default_scope == 'mmdet':
        from mmdet.registry import MODELS
    else:
        from mmseg.registry import MODELS
    return MODELS.build(cfg.model)


def build_for_cpu(cfg: Config) -> torch.nn.Module:
    """Build and initialise as mmengine's Runner does in a single process on the CPU: SyncBN
    (used by most mmseg base configs) reverted to BN, then ``init_weights()``."""
    model = revert_sync_batchnorm(build(cfg))
    model.init_weights()
    return model


def loads_masks(cfg: Config) -> bool:
    """Whether the config's training pipeline loads instance masks (``LoadAnnotations`` with
    ``with_mask=True``), so a batch carries them exactly when the real data would."""
    def walk(node) -> bool:
        if isinstance(node, dict):
            if node.get('type') == 'LoadAnnotations' and node.get('with_mask'):
                return True
            return any(walk(v) for v in node.values())
        return isinstance(node, (list, tuple)) and any(walk(v) for v in node)
    return walk(cfg.train_dataloader)


def det_batch(size: int, with_masks: bool, num_images: int = 2) -> dict:
    """Images with two boxes each (labels 1 and 5), and box-shaped instance masks if
    ``with_masks``."""
    from mmdet.structures import DetDataSample
    from mmdet.structures.bbox import HorizontalBoxes
    from mmdet.structures.mask import BitmapMasks

    scale = size / 64
    boxes = torch.tensor(_BOXES) * scale
    masks = np.zeros((len(_BOXES), size, size), dtype=np.uint8)
    for mask, (x1, y1, x2, y2) in zip(masks, boxes.int().tolist()):
        mask[y1:y2, x1:x2] = 1
    samples: List[DetDataSample] = []
    for i in range(num_images):
        sample = DetDataSample(metainfo=dict(
            img_id=i, img_shape=(size, size), ori_shape=(size, size), scale_factor=(1.0, 1.0),
            flip=False, flip_direction=None))
        sample.gt_instances = InstanceData(bboxes=HorizontalBoxes(boxes.clone()),
                                           labels=torch.tensor([1, 5]))
        if with_masks:
            sample.gt_instances.masks = BitmapMasks(masks, size, size)
        samples.append(sample)
    return dict(inputs=_images(size, num_images), data_samples=samples)


def seg_batch(size: int, num_images: int = 2) -> dict:
    """Images whose label maps hold classes 0-3 in four quadrants."""
    from mmseg.structures import SegDataSample

    labels = torch.zeros(1, size, size, dtype=torch.long)
    half = size // 2
    labels[:, :half, half:], labels[:, half:, :half], labels[:, half:, half:] = 1, 2, 3
    samples = []
    for _ in range(num_images):
        sample = SegDataSample(metainfo=dict(
            img_shape=(size, size), ori_shape=(size, size), pad_shape=(size, size),
            scale_factor=(1.0, 1.0), flip=False, flip_direction=None))
        sample.gt_sem_seg = PixelData(data=labels.clone())
        samples.append(sample)
    return dict(inputs=_images(size, num_images), data_samples=samples)


def _images(size: int, num_images: int) -> List[torch.Tensor]:
    return [torch.randint(0, 256, (3, size, size), dtype=torch.uint8) for _ in range(num_images)]
