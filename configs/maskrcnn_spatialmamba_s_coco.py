"""Mask R-CNN + FPN with Spatial-Mamba-S on COCO, 1x schedule (12 epochs).

The T recipe (``maskrcnn_spatialmamba_t_coco.py``) with the S backbone. Published: 49.2 box AP /
44.0 mask AP, 63M parameters, 315 GFLOPs. ImageNet checkpoint: ``checkpoints/spatialmamba_s_in1k.pth``
or ``--cfg-options model.backbone.init_cfg.checkpoint=/path/to/spatialmamba_s_in1k.pth``.
"""
_base_ = './maskrcnn_spatialmamba_t_coco.py'

pretrained = 'checkpoints/spatialmamba_s_in1k.pth'
model = dict(
    backbone=dict(
        arch='small',
        drop_path_rate=0.3,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)))
