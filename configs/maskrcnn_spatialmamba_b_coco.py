"""Mask R-CNN + FPN with Spatial-Mamba-B on COCO, 1x schedule (12 epochs).

The T recipe (``maskrcnn_spatialmamba_t_coco.py``) with the B backbone
(``_base_/spatialmamba_b.py``, E = 96). Published: 50.4 box AP / 45.1 mask AP, 115M
parameters, 494 GFLOPs. ImageNet checkpoint: ``checkpoints/spatialmamba_b_in1k.pth`` or
``--cfg-options model.backbone.init_cfg.checkpoint=/path/to/spatialmamba_b_in1k.pth``.
"""
_base_ = ['mmdet::swin/mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py', './_base_/spatialmamba_b.py']

model = dict(
    backbone=_base_.spatialmamba_backbone,
    neck=dict(in_channels=_base_.spatialmamba_channels))
