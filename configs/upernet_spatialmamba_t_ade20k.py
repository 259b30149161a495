"""UperNet with Spatial-Mamba-T on ADE20K, 512x512 crops, 160k iterations.

mmseg's Swin-T UperNet recipe (AdamW lr 6e-5, poly schedule, batch 16 = 8 GPUs x 2 images) with
the backbone swapped and the decode/auxiliary head channels following it. Published: 48.6 mIoU
single-scale, 49.4 multi-scale + flip (``tools/test.py ... --tta``), 57M parameters, 936 GFLOPs.

ImageNet-pretrained backbone (required by the recipe): ``checkpoints/spatialmamba_t_in1k.pth``
relative to the directory the tools run in; a missing file stops training with an error naming
the option. Point elsewhere:
    --cfg-options model.backbone.init_cfg.checkpoint=/path/to/spatialmamba_t_in1k.pth
Train from scratch on purpose: --cfg-options model.backbone.init_cfg=None
"""
_base_ = 'mmseg::swin/swin-tiny-patch4-window7-in1k-pre_upernet_8xb2-160k_ade20k-512x512.py'

custom_imports = dict(imports=['mmspatialmamba'], allow_failed_imports=False)

# A file-level variable does not follow --cfg-options; override the nested key instead (above).
checkpoint_file = 'checkpoints/spatialmamba_t_in1k.pth'
model = dict(
    backbone=dict(
        _delete_=True,
        type='SpatialMamba',
        arch='tiny',
        drop_path_rate=0.2,
        out_indices=(0, 1, 2, 3),
        init_cfg=dict(type='Pretrained', checkpoint=checkpoint_file)),
    decode_head=dict(in_channels=[64, 128, 256, 512]),
    auxiliary_head=dict(in_channels=256))

# Weight decay: the base recipe's paramwise_cfg is kept unchanged, as in the release's runs
# that produced the published numbers. Its 'norm' key exempts out_norm, outnorm* and the
# stem/downsampling BatchNorms (*.norm.*); ln_1/ln_2, A_logs and Ds keep weight decay there.
# (Swin's other two keys match no Spatial-Mamba parameter.)

# The recipe's total batch (8 GPUs x 2 images), for tools/train.py --auto-scale-lr.
auto_scale_lr = dict(enable=False, base_batch_size=16)
