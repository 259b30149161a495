"""UperNet with Spatial-Mamba-T on ADE20K, 512x512 crops, 160k iterations.

mmseg's Swin-T UperNet recipe (AdamW lr 6e-5, poly schedule, batch 16 = 8 GPUs x 2 images) with
the backbone swapped (``_base_/spatialmamba_t.py``) and the decode/auxiliary head channels
following it. Published: 48.6 mIoU single-scale, 49.4 multi-scale + flip
(``tools/test.py ... --tta``), 57M parameters, 936 GFLOPs.

ImageNet checkpoint: ``checkpoints/spatialmamba_t_in1k.pth``, or
``--cfg-options model.backbone.init_cfg.checkpoint=/path/to/spatialmamba_t_in1k.pth``.

Weight decay: the recipe's paramwise_cfg is kept unchanged, as in the release's runs that
produced the published numbers (see ``maskrcnn_spatialmamba_t_coco.py``).
"""
_base_ = ['mmseg::swin/swin-tiny-patch4-window7-in1k-pre_upernet_8xb2-160k_ade20k-512x512.py',
          './_base_/spatialmamba_t.py']

model = dict(
    backbone=_base_.spatialmamba_backbone,
    decode_head=dict(in_channels=_base_.spatialmamba_channels),
    auxiliary_head=dict(in_channels=_base_.spatialmamba_channels[2]))

# The recipe's total batch (8 GPUs x 2 images), for tools/train.py --auto-scale-lr.
auto_scale_lr = dict(enable=False, base_batch_size=16)
