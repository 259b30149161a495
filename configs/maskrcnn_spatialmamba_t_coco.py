"""Mask R-CNN + FPN with Spatial-Mamba-T on COCO, 1x schedule (12 epochs).

mmdet's Swin-T Mask R-CNN 1x recipe (AdamW, lr 1e-4, batch 16 = 8 GPUs x 2 images) with the
backbone swapped (``_base_/spatialmamba_t.py``) and the FPN input channels following it.
Published: 47.6 box AP / 42.9 mask AP, 46M parameters, 261 GFLOPs.

ImageNet checkpoint: ``checkpoints/spatialmamba_t_in1k.pth``, or
``--cfg-options model.backbone.init_cfg.checkpoint=/path/to/spatialmamba_t_in1k.pth``.
Evaluating a published COCO checkpoint needs no ImageNet file:
    python tools/test.py configs/maskrcnn_spatialmamba_t_coco.py maskrcnn_spatialmamba_t_coco.pth

Weight decay: the recipe's paramwise_cfg is kept unchanged, as in the release's runs that
produced the published numbers. Its 'norm' key exempts out_norm, outnorm* and the
stem/downsampling BatchNorms (*.norm.*); ln_1/ln_2, A_logs and Ds keep weight decay. (Swin's
other two keys match no Spatial-Mamba parameter.)
"""
_base_ = ['mmdet::swin/mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py', './_base_/spatialmamba_t.py']

model = dict(
    backbone=_base_.spatialmamba_backbone,
    neck=dict(in_channels=_base_.spatialmamba_channels))
