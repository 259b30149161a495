"""Mask R-CNN + FPN with Spatial-Mamba-T on COCO, 3x schedule (36 epochs), multi-scale + crop.

mmdet's Swin-T Mask R-CNN 3x recipe (multi-scale resize 480-800 with DETR-style random crop,
AdamW lr 1e-4, batch 16) with the backbone of ``maskrcnn_spatialmamba_t_coco.py``
(``_base_/spatialmamba_t.py``; the same model, weight decay included). Published: 49.3 box AP /
43.6 mask AP, 46M parameters. ImageNet checkpoint: ``checkpoints/spatialmamba_t_in1k.pth`` or
``--cfg-options model.backbone.init_cfg.checkpoint=/path/to/spatialmamba_t_in1k.pth``.
"""
_base_ = ['mmdet::swin/mask-rcnn_swin-t-p4-w7_fpn_ms-crop-3x_coco.py',
          './_base_/spatialmamba_t.py']

model = dict(
    backbone=_base_.spatialmamba_backbone,
    neck=dict(in_channels=_base_.spatialmamba_channels))
