"""Mask R-CNN + FPN with Spatial-Mamba-B on COCO, 3x schedule (36 epochs), multi-scale + crop.

The T 3x recipe (``maskrcnn_spatialmamba_t_3x_coco.py``) with the B backbone (E = 96). No 3x
result was published for B; the 1x model has 115M parameters. ImageNet checkpoint:
``checkpoints/spatialmamba_b_in1k.pth`` or
``--cfg-options model.backbone.init_cfg.checkpoint=/path/to/spatialmamba_b_in1k.pth``.
"""
_base_ = './maskrcnn_spatialmamba_t_3x_coco.py'

pretrained = 'checkpoints/spatialmamba_b_in1k.pth'
model = dict(
    backbone=dict(
        arch='base',
        drop_path_rate=0.5,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    neck=dict(in_channels=[96, 192, 384, 768]))
