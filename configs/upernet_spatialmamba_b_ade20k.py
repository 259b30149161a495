"""UperNet with Spatial-Mamba-B on ADE20K, 512x512 crops, 160k iterations.

The T recipe (``upernet_spatialmamba_t_ade20k.py``) with the B backbone
(``_base_/spatialmamba_b.py``, E = 96). Published: 51.8 / 52.6 mIoU (single-scale /
multi-scale + flip), 127M parameters, 1176 GFLOPs. ImageNet checkpoint:
``checkpoints/spatialmamba_b_in1k.pth`` or
``--cfg-options model.backbone.init_cfg.checkpoint=/path/to/spatialmamba_b_in1k.pth``.
"""
_base_ = ['mmseg::swin/swin-tiny-patch4-window7-in1k-pre_upernet_8xb2-160k_ade20k-512x512.py',
          './_base_/spatialmamba_b.py']

model = dict(
    backbone=_base_.spatialmamba_backbone,
    decode_head=dict(in_channels=_base_.spatialmamba_channels),
    auxiliary_head=dict(in_channels=_base_.spatialmamba_channels[2]))

# The recipe's total batch (8 GPUs x 2 images), for tools/train.py --auto-scale-lr.
auto_scale_lr = dict(enable=False, base_batch_size=16)
