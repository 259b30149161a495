"""Mask R-CNN + FPN with Spatial-Mamba-T on COCO, 1x schedule (12 epochs).

mmdet's Swin-T Mask R-CNN 1x recipe (AdamW, lr 1e-4, batch 16 = 8 GPUs x 2 images) with the
backbone swapped and the FPN input channels following it. Published: 47.6 box AP / 42.9 mask AP,
46M parameters, 261 GFLOPs.

ImageNet-pretrained backbone (required by the recipe): the release's Spatial-Mamba-T ImageNet
checkpoint, read from ``checkpoints/spatialmamba_t_in1k.pth`` relative to the directory the tools
run in. A missing file stops training with an error naming the option below. Point elsewhere:
    --cfg-options model.backbone.init_cfg.checkpoint=/path/to/spatialmamba_t_in1k.pth
Train from scratch on purpose (not the published recipe):
    --cfg-options model.backbone.init_cfg=None
Evaluating a published COCO checkpoint needs no ImageNet file:
    python tools/test.py configs/maskrcnn_spatialmamba_t_coco.py maskrcnn_spatialmamba_t_coco.pth
"""
_base_ = 'mmdet::swin/mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py'

custom_imports = dict(imports=['mmspatialmamba'], allow_failed_imports=False)

# A file-level variable does not follow --cfg-options; override the nested key instead (above).
pretrained = 'checkpoints/spatialmamba_t_in1k.pth'
model = dict(
    backbone=dict(
        _delete_=True,
        type='SpatialMamba',
        arch='tiny',
        drop_path_rate=0.2,
        out_indices=(0, 1, 2, 3),
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    neck=dict(in_channels=[64, 128, 256, 512]))

# Weight decay: the base recipe's paramwise_cfg is kept unchanged, as in the release's runs
# that produced the published numbers. Its 'norm' key exempts out_norm, outnorm* and the
# stem/downsampling BatchNorms (*.norm.*); ln_1/ln_2, A_logs and Ds keep weight decay there.
# (Swin's other two keys match no Spatial-Mamba parameter.)
