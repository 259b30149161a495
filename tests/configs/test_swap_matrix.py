"""The backbone swapped into mmdet's and mmseg's own configs: build, one training step, predict.

Each architecture is one of the toolkit's configs (``mmdet::``/``mmseg::``) plus only the lines
a user writes to swap the backbone, the ones docs/compatibility.md lists under "Tested
architectures" (``test_docs_list_every_architecture`` keeps the two in step). Each test builds and
initialises the model as mmengine's Runner does on one CPU process (the backbone must still hold
its ``init_cfg`` checkpoint afterwards), runs one training step (data preprocessor, loss,
backward) on two 64x64 images, checks that every backbone parameter got a finite gradient
(so ``find_unused_parameters=False`` DDP works), then predicts.

The ``out_indices`` given are the stages the neck or heads consume, as mmdet's own Swin configs
do (RetinaNet: ``out_indices=(1, 2, 3)``, FPN ``start_level=0``): a stage output nobody reads
would leave its output norm without gradients.
"""
import os.path as osp
from dataclasses import dataclass
from functools import partial
from typing import Dict, Optional, Tuple

import pytest
import torch
from mmengine.config import Config
from mmengine.logging import MessageHub
from model_utils import randomize_
from toolkit_models import build, build_for_cpu, det_batch, loads_masks, seg_batch

from mmspatialmamba.models import SpatialMamba

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SIZE = 64


@dataclass(frozen=True)
class Swap:
    """A toolkit config and the lines a user writes to put Spatial-Mamba-T into it.

    Attributes:
        base: The toolkit's config, e.g. ``'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py'``.
        out_indices: Backbone stages that the neck/heads consume.
        lines: The rest of ``model = dict(...)``: the neck's or heads' ``in_channels``, ...
        imports: ``custom_imports``; mmseg's Mask2Former also needs ``'mmdet.models'``.
    """
    base: str
    out_indices: Tuple[int, ...]
    lines: str
    imports: Tuple[str, ...] = ('mmspatialmamba',)

    def config_text(self, checkpoint: Optional[str]) -> str:
        """The user's config file, loading the backbone from ``checkpoint`` (None: from
        scratch). mmseg's segmentors hand ``model.pretrained`` (ResNet weights in most base
        configs) to the backbone, hence ``pretrained=None`` there."""
        pretrained = '    pretrained=None,\n' if self.base.startswith('mmseg::') else ''
        init_cfg = dict(type='Pretrained', checkpoint=checkpoint) if checkpoint else None
        return (f"_base_ = '{self.base}'\n"
                f'custom_imports = dict(imports={list(self.imports)}, '
                'allow_failed_imports=False)\n'
                f'model = dict(\n{pretrained}'
                f"    backbone=dict(_delete_=True, type='SpatialMamba', arch='tiny', "
                f'out_indices={self.out_indices},\n'
                f'                  init_cfg={init_cfg}),\n'
                f'    {self.lines})\n')


FPN_3 = 'neck=dict(in_channels=[128, 256, 512], start_level=0)'
NECK_3 = 'neck=dict(in_channels=[128, 256, 512])'
NECK_4 = 'neck=dict(in_channels=[64, 128, 256, 512])'
HEADS_23 = 'decode_head=dict(in_channels=512, in_index=1), ' \
           'auxiliary_head=dict(in_channels=256, in_index=0)'
DETECTION = {
    'RetinaNet': Swap('mmdet::retinanet/retinanet_r50_fpn_1x_coco.py', (1, 2, 3), FPN_3),
    'FCOS': Swap('mmdet::fcos/fcos_r50-caffe_fpn_gn-head_1x_coco.py', (1, 2, 3),
                 FPN_3 + ', data_preprocessor=dict(mean=[123.675, 116.28, 103.53], '
                 'std=[58.395, 57.12, 57.375], bgr_to_rgb=True)'),
    'Faster R-CNN': Swap('mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py', (0, 1, 2, 3),
                         NECK_4),
    'Cascade Mask R-CNN': Swap('mmdet::cascade_rcnn/cascade-mask-rcnn_r50_fpn_1x_coco.py',
                               (0, 1, 2, 3), NECK_4),
    'Deformable DETR': Swap('mmdet::deformable_detr/deformable-detr_r50_16xb2-50e_coco.py',
                            (1, 2, 3), NECK_3),
    'YOLOX': Swap('mmdet::yolox/yolox_s_8xb8-300e_coco.py', (1, 2, 3), NECK_3),
    'RTMDet': Swap('mmdet::rtmdet/rtmdet_tiny_8xb32-300e_coco.py', (1, 2, 3), NECK_3),
    'Mask2Former (instances)': Swap('mmdet::mask2former/mask2former_r50_8xb2-lsj-50e_coco.py',
                                    (0, 1, 2, 3),
                                    'panoptic_head=dict(in_channels=[64, 128, 256, 512])'),
}
SEGMENTATION = {
    'Semantic FPN': Swap('mmseg::sem_fpn/fpn_r50_4xb4-160k_ade20k-512x512.py', (0, 1, 2, 3),
                         NECK_4),
    'DeepLabV3 (ASPP)': Swap('mmseg::deeplabv3/deeplabv3_r50-d8_4xb4-80k_ade20k-512x512.py',
                             (2, 3), HEADS_23),
    'PSPNet': Swap('mmseg::pspnet/pspnet_r50-d8_4xb4-80k_ade20k-512x512.py', (2, 3), HEADS_23),
    'SegFormer (MLP head)': Swap('mmseg::segformer/segformer_mit-b0_8xb2-160k_ade20k-512x512.py',
                                 (0, 1, 2, 3), 'decode_head=dict(in_channels=[64, 128, 256, 512])'),
    'Mask2Former (semantic)': Swap('mmseg::mask2former/mask2former_r50_8xb2-160k_ade20k-512x512.py',
                                   (0, 1, 2, 3),
                                   'decode_head=dict(in_channels=[64, 128, 256, 512])',
                                   imports=('mmdet.models', 'mmspatialmamba')),
}
ARCHITECTURES = {**DETECTION, **SEGMENTATION}


@pytest.fixture(scope='module')
def tiny_checkpoint(tmp_path_factory) -> Tuple[str, Dict[str, torch.Tensor]]:
    """A Spatial-Mamba-T checkpoint with random values: (its path, its state dict)."""
    state = randomize_(SpatialMamba(arch='tiny')).state_dict()
    path = tmp_path_factory.mktemp('checkpoint') / 'spatialmamba_t.pth'
    torch.save(state, path)
    return str(path), state


def load(swap: Swap, tmp_path, checkpoint: Optional[str]) -> Config:
    """The user's config, with the data preprocessor's fixed sizes (mmseg's crop, mmdet's
    large-scale-jitter pad to 1024) shrunk to the test's image size."""
    path = tmp_path / 'user_config.py'
    path.write_text(swap.config_text(checkpoint))
    cfg = Config.fromfile(str(path))
    preprocessor = cfg.model.data_preprocessor
    for item in [preprocessor] + list(preprocessor.get('batch_augments') or []):
        if 'size' in item:
            item.size = (SIZE, SIZE)
    return cfg


@pytest.mark.parametrize('name', sorted(ARCHITECTURES))
def test_swapped_model_trains_and_predicts(name, tmp_path, tiny_checkpoint):
    checkpoint, state = tiny_checkpoint
    cfg = load(ARCHITECTURES[name], tmp_path, checkpoint)
    model = build_for_cpu(cfg)
    backbone = model.backbone
    assert type(backbone).__name__ == 'SpatialMamba'
    changed = [k for k, v in backbone.state_dict().items() if not torch.equal(v, state[k])]
    assert not changed, f'the model\'s init_weights did not keep the checkpoint: {changed[:5]}'
    batch = partial(det_batch, with_masks=loads_masks(cfg)) if name in DETECTION else seg_batch

    model.train()
    MessageHub.get_current_instance().update_info('iter', 0)  # as the Runner sets it (YOLOX)
    data = model.data_preprocessor(batch(SIZE), training=True)
    loss, log_vars = model.parse_losses(model(**data, mode='loss'))
    assert torch.isfinite(loss), log_vars
    loss.backward()
    no_grad = [n for n, p in backbone.named_parameters()
               if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not no_grad, f'backbone parameters without a finite gradient: {no_grad[:5]}'

    model.eval()
    with torch.no_grad():
        results = model.val_step(batch(SIZE))
    assert len(results) == 2
    for result in results:
        if name in DETECTION:
            pred = result.pred_instances
            assert pred.bboxes.shape == (len(pred.scores), 4)
            assert ((pred.bboxes >= 0) & (pred.bboxes <= SIZE)).all()
            if 'masks' in pred:
                assert tuple(pred.masks.shape) == (len(pred.scores), SIZE, SIZE)
        else:
            assert tuple(result.pred_sem_seg.data.shape) == (1, SIZE, SIZE)


def test_resnet_c4_head_cannot_take_the_backbone(tmp_path):
    """Faster R-CNN C4 runs ResNet's last stage as its RoI head (``shared_head=ResLayer``),
    which takes exactly 1024 channels and has no in_channels to change: it cannot follow this
    backbone (256 channels at stride 16), and the error names the channel mismatch."""
    swap = Swap('mmdet::faster_rcnn/faster-rcnn_r50-caffe_c4-1x_coco.py', (2,),
                'rpn_head=dict(in_channels=256)')
    model = build(load(swap, tmp_path, None))  # no init_weights: its head would download ResNet
    data = model.data_preprocessor(det_batch(SIZE, with_masks=False), training=True)
    with pytest.raises(RuntimeError, match=r'expected input.* to have 1024 channels, but got 256'):
        model(**data, mode='loss')


def test_mmseg_base_pretrained_builds_and_refuses_to_load(tmp_path, monkeypatch):
    """Without ``pretrained=None``, mmseg hands the base config's ResNet checkpoint
    (open-mmlab://resnet50_v1c) to the backbone: the model builds, and loading refuses the
    model-zoo name before any download, saying what to change."""
    from mmengine.runner.checkpoint import CheckpointLoader

    def no_download(*args, **kwargs):
        raise AssertionError('a checkpoint load was attempted')

    monkeypatch.setattr(CheckpointLoader, 'load_checkpoint', no_download)
    text = ARCHITECTURES['Semantic FPN'].config_text(None).replace('    pretrained=None,\n', '')
    path = tmp_path / 'user_config.py'
    path.write_text(text)
    cfg = Config.fromfile(str(path))
    assert cfg.model.pretrained == 'open-mmlab://resnet50_v1c'
    with pytest.warns(UserWarning, match='pretrained is deprecated'):
        model = build(cfg)
    with pytest.raises(ValueError, match=r"'open-mmlab://resnet50_v1c'.*Set model.pretrained=None "
                                         r'and give the Spatial-Mamba checkpoint in '
                                         r'model.backbone.init_cfg'):
        model.init_weights()


def test_docs_list_every_architecture():
    """docs/compatibility.md's table of tested architectures has each base config and its
    exact lines."""
    with open(osp.join(ROOT, 'docs', 'compatibility.md')) as f:
        rows = [line for line in f if line.startswith('| ')]
    for name, swap in ARCHITECTURES.items():
        row = [r for r in rows if f'`{swap.base}`' in r]
        assert row, f'docs/compatibility.md has no table row for {name} ({swap.base})'
        assert f'`{swap.out_indices}`' in row[0] and f'`{swap.lines}`' in row[0], name
