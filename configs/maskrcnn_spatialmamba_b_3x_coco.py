"""Mask R-CNN + FPN with Spatial-Mamba-B on COCO, 3x schedule (36 epochs), multi-scale + crop.

The T 3x recipe (``maskrcnn_spatialmamba_t_3x_coco.py``) with the B backbone
(``_base_/spatialmamba_b.py``, E = 96). No 3x result was published for B; the 1x model has
115M parameters. ImageNet checkpoint: ``checkpoints/spatialmamba_b_in1k.pth`` or
``--cfg-options model.backbone.init_cfg.checkpoint=/path/to/spatialmamba_b_in1k.pth``.
"""
_base_ = ['mmdet::swin/mask-rcnn_swin-t-p4-w7_fpn_ms-crop-3x_coco.py',
          './_base_/spatialmamba_b.py']

model = dict(
    backbone=_base_.spatialmamba_backbone,
    neck=dict(in_channels=_base_.spatialmamba_channels))
