"""Mask R-CNN + FPN with Spatial-Mamba-B on COCO, 1x schedule (12 epochs).

The T recipe (``maskrcnn_spatialmamba_t_coco.py``) with the B backbone (E = 96). Published:
50.4 box AP / 45.1 mask AP, 115M parameters, 494 GFLOPs. ImageNet checkpoint:
``checkpoints/spatialmamba_b_in1k.pth`` or
``--cfg-options model.backbone.init_cfg.checkpoint=/path/to/spatialmamba_b_in1k.pth``.
"""
_base_ = './maskrcnn_spatialmamba_t_coco.py'

pretrained = 'checkpoints/spatialmamba_b_in1k.pth'
model = dict(
    backbone=dict(
        arch='base',
        drop_path_rate=0.5,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    neck=dict(in_channels=[96, 192, 384, 768]))
