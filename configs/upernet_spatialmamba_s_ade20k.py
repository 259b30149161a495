"""UperNet with Spatial-Mamba-S on ADE20K, 512x512 crops, 160k iterations.

The T recipe (``upernet_spatialmamba_t_ade20k.py``) with the S backbone. Published: 50.6 / 51.4
mIoU (single-scale / multi-scale + flip), 73M parameters, 992 GFLOPs. ImageNet checkpoint:
``checkpoints/spatialmamba_s_in1k.pth`` or
``--cfg-options model.backbone.init_cfg.checkpoint=/path/to/spatialmamba_s_in1k.pth``.
"""
_base_ = './upernet_spatialmamba_t_ade20k.py'

checkpoint_file = 'checkpoints/spatialmamba_s_in1k.pth'
model = dict(
    backbone=dict(
        arch='small',
        drop_path_rate=0.3,
        init_cfg=dict(type='Pretrained', checkpoint=checkpoint_file)))
