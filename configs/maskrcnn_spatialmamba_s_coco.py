"""Mask R-CNN + FPN with Spatial-Mamba-S on COCO, 1x schedule (12 epochs).

The T recipe (``maskrcnn_spatialmamba_t_coco.py``) with the S backbone
(``_base_/spatialmamba_s.py``). Published: 49.2 box AP / 44.0 mask AP, 63M parameters,
315 GFLOPs. ImageNet checkpoint: ``checkpoints/spatialmamba_s_in1k.pth`` or
``--cfg-options model.backbone.init_cfg.checkpoint=/path/to/spatialmamba_s_in1k.pth``.
"""
_base_ = ['mmdet::swin/mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py', './_base_/spatialmamba_s.py']

model = dict(
    backbone=_base_.spatialmamba_backbone,
    neck=dict(in_channels=_base_.spatialmamba_channels))
