"""UperNet with Spatial-Mamba-S on ADE20K, 512x512 crops, 160k iterations.

The T recipe (``upernet_spatialmamba_t_ade20k.py``) with the S backbone
(``_base_/spatialmamba_s.py``). Published: 50.6 / 51.4 mIoU (single-scale / multi-scale +
flip), 73M parameters, 992 GFLOPs. ImageNet checkpoint: ``checkpoints/spatialmamba_s_in1k.pth``
or ``--cfg-options model.backbone.init_cfg.checkpoint=/path/to/spatialmamba_s_in1k.pth``.
"""
_base_ = ['mmseg::swin/swin-tiny-patch4-window7-in1k-pre_upernet_8xb2-160k_ade20k-512x512.py',
          './_base_/spatialmamba_s.py']

model = dict(
    backbone=_base_.spatialmamba_backbone,
    decode_head=dict(in_channels=_base_.spatialmamba_channels),
    auxiliary_head=dict(in_channels=_base_.spatialmamba_channels[2]))

# The recipe's total batch (8 GPUs x 2 images), for tools/train.py --auto-scale-lr.
auto_scale_lr = dict(enable=False, base_batch_size=16)
