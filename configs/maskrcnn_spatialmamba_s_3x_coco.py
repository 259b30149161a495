"""Mask R-CNN + FPN with Spatial-Mamba-S on COCO, 3x schedule (36 epochs), multi-scale + crop.

The T 3x recipe (``maskrcnn_spatialmamba_t_3x_coco.py``) with the S backbone. Published:
50.5 box AP / 44.6 mask AP, 63M parameters. ImageNet checkpoint:
``checkpoints/spatialmamba_s_in1k.pth`` or
``--cfg-options model.backbone.init_cfg.checkpoint=/path/to/spatialmamba_s_in1k.pth``.
"""
_base_ = './maskrcnn_spatialmamba_t_3x_coco.py'

pretrained = 'checkpoints/spatialmamba_s_in1k.pth'
model = dict(
    backbone=dict(
        arch='small',
        drop_path_rate=0.3,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)))
