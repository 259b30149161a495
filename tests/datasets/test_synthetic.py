"""The synthetic sets keep COCO / ADE20K layout; use_synthetic_data points configs at them."""
import os
import os.path as osp

import cv2
import numpy as np
import pytest
from mmengine.config import Config
from pycocotools.coco import COCO

from mmspatialmamba.datasets import (INSTANCE_CLASSES, SEMANTIC_CLASSES, make_ade_semantic,
                                     make_coco_instances, use_synthetic_data)

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DET_CONFIG = osp.join(ROOT, 'configs', 'maskrcnn_spatialmamba_t_coco.py')
DET_3X_CONFIG = osp.join(ROOT, 'configs', 'maskrcnn_spatialmamba_t_3x_coco.py')
SEG_CONFIG = osp.join(ROOT, 'configs', 'upernet_spatialmamba_t_ade20k.py')


def test_coco_instances_layout_masks_and_crowds(tmp_path):
    paths = make_coco_instances(str(tmp_path), num_train=12, num_val=2, image_size=(64, 80),
                                crowd_prob=0.5, seed=3)
    coco = COCO(paths['train_ann'])
    assert [c['name'] for c in coco.loadCats(coco.getCatIds())] == list(INSTANCE_CLASSES)
    crowds = 0
    for image_id in coco.getImgIds():
        info = coco.loadImgs(image_id)[0]
        assert cv2.imread(osp.join(paths['train_img'], info['file_name'])).shape == (64, 80, 3)
        anns = coco.loadAnns(coco.getAnnIds(imgIds=image_id))
        assert any(not a['iscrowd'] for a in anns), f'image {image_id} has no object'
        taken = np.zeros((64, 80), bool)
        for ann in anns:
            mask = coco.annToMask(ann).astype(bool)
            assert not (mask & taken).any(), 'shapes must not overlap'
            taken |= mask
            x, y, w, h = ann['bbox']
            ys, xs = np.nonzero(mask)
            # polygons traced from the mask cover it up to the boundary pixels
            assert abs(ann['area'] - mask.sum()) <= 0.35 * ann['area']
            assert x <= xs.min() + 1 and xs.max() <= x + w and y <= ys.min() + 1 \
                and ys.max() <= y + h
            crowds += ann['iscrowd']
            assert isinstance(ann['segmentation'], dict) == bool(ann['iscrowd'])
    assert crowds >= 1


def test_ade_semantic_labels_follow_reduce_zero_label(tmp_path):
    paths = make_ade_semantic(str(tmp_path), num_train=2, num_val=4, image_size=(48, 48), seed=2)
    values = set()
    for name in sorted(os.listdir(paths['val_ann'])):
        label = cv2.imread(osp.join(paths['val_ann'], name), cv2.IMREAD_UNCHANGED)
        assert label.shape == (48, 48) and label.dtype == np.uint8
        assert osp.isfile(osp.join(paths['val_img'], name[:-4] + '.jpg'))
        values |= set(np.unique(label).tolist())
    assert values <= set(range(len(SEMANTIC_CLASSES) + 1)) and 1 in values


def test_generators_are_deterministic_and_skip_existing_data(tmp_path):
    first = make_coco_instances(str(tmp_path / 'a'), num_train=3, num_val=1, image_size=(40, 40))
    second = make_coco_instances(str(tmp_path / 'b'), num_train=3, num_val=1,
                                 image_size=(40, 40))
    assert open(first['train_ann']).read() == open(second['train_ann']).read()
    mtime = os.stat(first['train_ann']).st_mtime_ns
    make_coco_instances(str(tmp_path / 'a'), num_train=3, num_val=1, image_size=(40, 40))
    assert os.stat(first['train_ann']).st_mtime_ns == mtime
    with pytest.raises(ValueError, match='image sides >= 32'):
        make_coco_instances(str(tmp_path / 'c'), image_size=(16, 16))


def test_use_synthetic_data_points_det_config_at_data(tmp_path):
    cfg = use_synthetic_data(Config.fromfile(DET_CONFIG), str(tmp_path), image_size=96,
                             iters=50, lr=1e-3, batch_size=4, seed=7)
    assert cfg.model.backbone.init_cfg is None
    assert cfg.model.roi_head.bbox_head.num_classes == len(INSTANCE_CLASSES)
    assert cfg.model.roi_head.mask_head.num_classes == len(INSTANCE_CLASSES)
    assert cfg.train_dataloader.batch_size == 4 and cfg.val_dataloader.batch_size == 1
    assert cfg.val_dataloader.dataset.metainfo['classes'] == INSTANCE_CLASSES
    assert cfg.val_evaluator.ann_file == osp.join(str(tmp_path), 'annotations',
                                                  'instances_val2017.json')
    resize = [t for t in cfg.test_dataloader.dataset.pipeline if t['type'] == 'Resize'][0]
    assert min(resize['scale']) == 96  # a square 96 px image keeps its size
    assert cfg.train_cfg.max_iters == 50 and cfg.optim_wrapper.optimizer.lr == 1e-3
    assert cfg.param_scheduler[-1]['end'] == 50
    assert cfg.randomness == dict(seed=7, deterministic=True)


def test_use_synthetic_data_scales_multiscale_and_seg_pipelines(tmp_path):
    cfg = use_synthetic_data(Config.fromfile(DET_3X_CONFIG), str(tmp_path), image_size=80,
                             iters=2, lr=1e-3)
    choice = cfg.train_dataloader.dataset.pipeline[-2]['transforms']
    assert choice[0][0]['scales'][0] == (48, 133)  # (480, 1333) / 10
    assert choice[1][1]['crop_size'] == (38, 60)  # (384, 600) / 10

    cfg = use_synthetic_data(Config.fromfile(SEG_CONFIG), str(tmp_path), image_size=64,
                             iters=2, lr=1e-3)
    assert cfg.model.decode_head.num_classes == len(SEMANTIC_CLASSES)
    assert cfg.model.data_preprocessor.size == (64, 64)
    train = {t['type']: t for t in cfg.train_dataloader.dataset.pipeline}
    assert train['RandomResize']['scale'] == (256, 64)
    assert train['RandomCrop']['crop_size'] == (64, 64)
    assert cfg.train_dataloader.dataset.type == 'BaseSegDataset'


def test_use_synthetic_data_rejects_other_configs(tmp_path):
    cfg = Config(dict(default_scope='mmpretrain'))
    with pytest.raises(ValueError, match='mmdet or mmseg config'):
        use_synthetic_data(cfg, str(tmp_path), image_size=64, iters=2, lr=1e-3)
    with pytest.raises(ValueError, match='positive image_size'):
        use_synthetic_data(Config.fromfile(DET_CONFIG), str(tmp_path), image_size=64, iters=0,
                           lr=1e-3)
