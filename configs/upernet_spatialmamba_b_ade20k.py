"""UperNet with Spatial-Mamba-B on ADE20K, 512x512 crops, 160k iterations.

The T recipe (``upernet_spatialmamba_t_ade20k.py``) with the B backbone (E = 96). Published:
51.8 / 52.6 mIoU (single-scale / multi-scale + flip), 127M parameters, 1176 GFLOPs. ImageNet
checkpoint: ``checkpoints/spatialmamba_b_in1k.pth`` or
``--cfg-options model.backbone.init_cfg.checkpoint=/path/to/spatialmamba_b_in1k.pth``.
"""
_base_ = './upernet_spatialmamba_t_ade20k.py'

checkpoint_file = 'checkpoints/spatialmamba_b_in1k.pth'
model = dict(
    backbone=dict(
        arch='base',
        drop_path_rate=0.5,
        init_cfg=dict(type='Pretrained', checkpoint=checkpoint_file)),
    decode_head=dict(in_channels=[96, 192, 384, 768]),
    auxiliary_head=dict(in_channels=384))
