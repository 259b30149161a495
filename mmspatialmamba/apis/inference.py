"""Single-image inference and drawing for detection (mmdet) and segmentation (mmseg) configs.

The toolkit is picked from the config's ``default_scope``; the work itself is done by mmdet's
``init_detector``/``inference_detector`` and ``DetLocalVisualizer``, or mmseg's
``init_model``/``inference_model`` and ``SegLocalVisualizer``.
"""
import itertools
import os
import os.path as osp
from typing import Optional, Tuple, Union

import mmcv
import numpy as np
from mmengine.config import Config
from mmengine.structures import BaseDataElement, PixelData
import torch.nn.functional as F
from torch import nn

from ..checkpoint_io import check_checkpoint_file
from ..errors import BadInputError, MissingFileError
from .config import config_scope, drop_pretrained_init, load_config

_names = itertools.count()


def init_model(config: Union[str, Config], checkpoint: Optional[str] = None,
               device: str = 'cpu', cfg_options: Optional[dict] = None) -> nn.Module:
    """Build a model from a config and load a checkpoint, ready for :func:`inference`.

    The backbone's ``init_cfg`` is dropped (the weights come from ``checkpoint``), so no
    ImageNet file is needed.

    Args:
        config: Config file or object (``default_scope`` 'mmdet' or 'mmseg').
        checkpoint: mmengine checkpoint; None keeps the initial weights.
        device: 'cpu', 'cuda', 'cuda:1', ...
        cfg_options: Overrides merged into the config first.

    Returns:
        The model in eval mode, with ``cfg`` and ``dataset_meta`` (classes, palette) set.

    Raises:
        MissingFileError: If ``config`` (a path) or ``checkpoint`` does not exist.
        BadInputError: If the config's ``default_scope`` is neither 'mmdet' nor 'mmseg', or
            ``checkpoint`` is not a checkpoint file (see :func:`check_checkpoint_file`).
    """
    if isinstance(config, str):
        cfg = load_config(config, cfg_options)
    else:
        cfg = config.copy()
        cfg.merge_from_dict(cfg_options or {})
    scope = config_scope(cfg)
    if checkpoint is not None:
        check_checkpoint_file(checkpoint)
    drop_pretrained_init(cfg)
    if scope == 'mmdet':
        from mmdet.apis import init_detector
        return init_detector(cfg, checkpoint, device=device)
    from mmseg.apis import init_model as init_segmentor
    return init_segmentor(cfg, checkpoint, device=device)


def check_image(path: str) -> None:
    """Raise unless ``path`` is an image file that mmcv (OpenCV) decodes.

    Raises:
        MissingFileError: If there is no such file.
        BadInputError: If the file is empty or not an image OpenCV reads.
    """
    if not osp.isfile(path):
        raise MissingFileError(f'image {path!r} does not exist')
    with open(path, 'rb') as f:
        content = f.read()
    if not content or mmcv.imfrombytes(content) is None:
        raise BadInputError(f'image {path!r} cannot be decoded: it is empty or not an image '
                            'format OpenCV reads; pass a JPEG, PNG, BMP or TIFF file')


def inference(model: nn.Module, image: Union[str, np.ndarray]) -> BaseDataElement:
    """Run ``model`` (from :func:`init_model`) on one image with the config's test pipeline.

    Args:
        model: A model with ``cfg`` set.
        image: Image file, or a (H, W, 3) uint8 array in BGR order.

    Returns:
        A ``DetDataSample`` (``pred_instances``: bboxes, labels, scores, masks) or a
        ``SegDataSample`` (``pred_sem_seg``).

    Raises:
        MissingFileError, BadInputError: If ``image`` is a path, from :func:`check_image`.
    """
    if isinstance(image, str):
        check_image(image)
    if config_scope(model.cfg) == 'mmdet':
        from mmdet.apis import inference_detector
        return inference_detector(model, image)
    from mmseg.apis import inference_model
    return inference_model(model, image)


def _rescale(rgb: np.ndarray, result: BaseDataElement,
             scale: float) -> Tuple[np.ndarray, BaseDataElement]:
    """Resize an RGB image and its prediction (boxes, masks or label map) by ``scale``."""
    rgb = mmcv.imrescale(rgb, scale)
    size = rgb.shape[:2]
    result = result.clone()
    if 'pred_instances' in result:
        instances = result.pred_instances
        instances.bboxes = instances.bboxes * scale
        if 'masks' in instances and len(instances):
            instances.masks = F.interpolate(instances.masks[None].float(), size=size,
                                            mode='nearest')[0].bool()
    if 'pred_sem_seg' in result:
        labels = result.pred_sem_seg.data  # a PixelData's size is fixed: build a new one
        result.pred_sem_seg = PixelData(data=F.interpolate(
            labels[None].float(), size=size, mode='nearest')[0].to(labels.dtype))
    return rgb, result


def draw_result(model: nn.Module, image: Union[str, np.ndarray], result: BaseDataElement,
                out_file: Optional[str] = None, score_thr: float = 0.3,
                opacity: float = 0.5, scale: float = 1.0) -> np.ndarray:
    """Draw a prediction on its image and optionally save it.

    Detection: masks, boxes, class names and scores above ``score_thr``. Segmentation: the
    label map blended over the image with ``opacity``, with class names.

    Args:
        model: The model that produced ``result`` (for ``cfg`` and ``dataset_meta``).
        image: Image file, or a (H, W, 3) uint8 array in BGR order.
        result: The output of :func:`inference`.
        out_file: Where to write the drawing (PNG or JPEG by extension); None to skip.
        score_thr: Detection score threshold. opacity: Segmentation overlay opacity.
        scale: Draw on the image resized by this factor (labels stay legible on small
            images); boxes and masks are resized with it.

    Returns:
        The drawing, (H, W, 3) uint8 RGB.
    """
    rgb = mmcv.imread(image, channel_order='rgb') if isinstance(image, str) else \
        np.ascontiguousarray(image[..., ::-1])
    if scale != 1.0:
        rgb, result = _rescale(rgb, result, scale)
    name = f'mmspatialmamba_inference_{next(_names)}'
    if out_file and osp.dirname(out_file):
        os.makedirs(osp.dirname(out_file), exist_ok=True)
    if config_scope(model.cfg) == 'mmdet':
        from mmdet.visualization import DetLocalVisualizer
        visualizer = DetLocalVisualizer(name=name)
        visualizer.dataset_meta = model.dataset_meta
        visualizer.add_datasample('result', rgb, result, draw_gt=False, show=False,
                                  out_file=out_file, pred_score_thr=score_thr)
    else:
        from mmseg.visualization import SegLocalVisualizer
        visualizer = SegLocalVisualizer(name=name, alpha=opacity)
        visualizer.dataset_meta = dict(classes=model.dataset_meta['classes'],
                                       palette=model.dataset_meta['palette'])
        visualizer.add_datasample('result', rgb, result, draw_gt=False, show=False,
                                  out_file=out_file, with_labels=True)
    return visualizer.get_image()
