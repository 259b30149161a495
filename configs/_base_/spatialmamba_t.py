"""Spatial-Mamba-T as a dense-prediction backbone: defined once, here, for every T config.

A second ``_base_`` of ``maskrcnn_spatialmamba_t_coco.py``, ``maskrcnn_spatialmamba_t_3x_coco.py``
and ``upernet_spatialmamba_t_ade20k.py`` (beside their mmdet/mmseg recipe), which take
``model.backbone`` from ``spatialmamba_backbone`` and their neck or head input channels from
``spatialmamba_channels``. The S and B files change only what differs.

ImageNet-pretrained backbone (required by the recipes): the release's Spatial-Mamba-T ImageNet
checkpoint, read from ``checkpoints/spatialmamba_t_in1k.pth`` relative to the directory the
tools run in. A missing file stops training with an error naming the option below. The
variables here are read when the config is parsed, so ``--cfg-options`` must name the nested
key instead:
    --cfg-options model.backbone.init_cfg.checkpoint=/path/to/spatialmamba_t_in1k.pth
Train from scratch on purpose (not the published recipe):
    --cfg-options model.backbone.init_cfg=None
The recipes' own variables for Swin's ImageNet weights (mmdet's ``pretrained``, mmseg's
``checkpoint_file``) stay in the merged config, unused: the backbone reads only its
``init_cfg``.
"""
custom_imports = dict(imports=['mmspatialmamba'], allow_failed_imports=False)

spatialmamba_checkpoint = 'checkpoints/spatialmamba_t_in1k.pth'
spatialmamba_backbone = dict(
    _delete_=True,
    type='SpatialMamba',
    arch='tiny',
    drop_path_rate=0.2,
    out_indices=(0, 1, 2, 3),
    init_cfg=dict(type='Pretrained', checkpoint=spatialmamba_checkpoint))
spatialmamba_channels = [64, 128, 256, 512]
