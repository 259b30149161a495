"""Short real runs of tools/train.py, test.py, infer.py and dist_train.sh on synthetic data.

Each family (Mask R-CNN 1x, Mask R-CNN 3x multi-scale crop, UperNet) trains for two
iterations and is evaluated with its recipe's metric; the Mask R-CNN and UperNet checkpoints
then go through test.py and infer.py. In-process runs check that the loss falls and that a
resumed run replays an uninterrupted one exactly. Models are tiny (see conftest.py).
"""
import copy
import glob
import json
import os.path as osp
import pickle

import numpy as np
import pytest
import torch
from tiny_runs import ROOT, dump, run_tool, tiny_config
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.runner import Runner

from mmspatialmamba.apis import check_datasets

DET = 'maskrcnn_spatialmamba_t_coco'
DET_3X = 'maskrcnn_spatialmamba_t_3x_coco'
SEG = 'upernet_spatialmamba_t_ade20k'


def _final_metrics(work_dir: str) -> dict:
    """The last line with validation metrics of the run's scalars.json."""
    lines = open(glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json'))[-1]).readlines()
    return [json.loads(line) for line in lines if 'loss' not in line][-1]


def _train(name: str, root: str, tmp_path) -> tuple:
    work_dir = str(tmp_path / 'work')
    config = dump(tiny_config(name, root, work_dir), str(tmp_path / f'{name}_tiny.py'))
    run_tool(['tools/train.py', config, '--work-dir', work_dir])
    return config, work_dir


@pytest.fixture(scope='module')
def det_run(coco_root, tmp_path_factory):
    return _train(DET, coco_root, tmp_path_factory.mktemp('det'))


@pytest.fixture(scope='module')
def seg_run(ade_root, tmp_path_factory):
    return _train(SEG, ade_root, tmp_path_factory.mktemp('seg'))


def test_train_maskrcnn_evaluates_coco(det_run):
    config, work_dir = det_run
    metrics = _final_metrics(work_dir)
    for key in ('coco/bbox_mAP', 'coco/segm_mAP', 'coco/bbox_mAP_50'):
        assert 0.0 <= metrics[key] <= 1.0, metrics
    assert osp.isfile(osp.join(work_dir, 'iter_2.pth'))


def test_train_maskrcnn_3x_multiscale_crop(coco_root, tmp_path):
    _, work_dir = _train(DET_3X, coco_root, tmp_path)
    assert 'coco/segm_mAP' in _final_metrics(work_dir)


def test_train_upernet_evaluates_miou(seg_run):
    _, work_dir = seg_run
    metrics = _final_metrics(work_dir)
    assert 0.0 <= metrics['mIoU'] <= 100.0, metrics


def test_test_maskrcnn_checkpoint_with_out(det_run, tmp_path):
    config, work_dir = det_run
    out = str(tmp_path / 'preds.pkl')
    run_tool(['tools/test.py', config, osp.join(work_dir, 'iter_2.pth'),
              '--work-dir', str(tmp_path / 'test'), '--out', out])
    with open(out, 'rb') as f:
        predictions = pickle.load(f)
    assert len(predictions) == 2 and 'pred_instances' in predictions[0]


def test_test_upernet_checkpoint_with_tta(seg_run, tmp_path):
    config, work_dir = seg_run
    result = run_tool(['tools/test.py', config, osp.join(work_dir, 'iter_2.pth'),
                       '--work-dir', str(tmp_path / 'test'), '--tta',
                       '--out', str(tmp_path / 'pred')])
    assert 'mIoU' in result.stdout + result.stderr
    assert len(glob.glob(str(tmp_path / 'pred' / '*.png'))) == 2


@pytest.mark.parametrize('family', ['det', 'seg'])
def test_infer_writes_png(family, det_run, seg_run, coco_root, ade_root, tmp_path):
    config, work_dir = det_run if family == 'det' else seg_run
    image = osp.join(coco_root, 'val2017', '000001.jpg') if family == 'det' else \
        glob.glob(osp.join(ade_root, 'images', 'validation', '*.jpg'))[0]
    out = str(tmp_path / 'drawn' / 'result.png')
    run_tool(['tools/infer.py', config, osp.join(work_dir, 'iter_2.pth'), image, '--out', out,
              '--score-thr', '0'])
    import cv2
    drawn = cv2.imread(out)
    assert drawn is not None and drawn.shape[:2] == cv2.imread(image).shape[:2]


@pytest.mark.parametrize('family', ['det', 'seg'])
def test_draw_result_rescales_prediction(family, det_run, seg_run, coco_root, ade_root,
                                         tmp_path):
    """Drawing at scale 2 (as the quick start does) resizes image, boxes, masks and labels."""
    from mmspatialmamba.apis import draw_result, inference, init_model
    config, work_dir = det_run if family == 'det' else seg_run
    image = osp.join(coco_root, 'val2017', '000001.jpg') if family == 'det' else \
        glob.glob(osp.join(ade_root, 'images', 'validation', '*.jpg'))[0]
    model = init_model(config, osp.join(work_dir, 'iter_2.pth'))
    drawn = draw_result(model, image, inference(model, image), str(tmp_path / 'x2.png'),
                        score_thr=0.0, scale=2.0)
    import cv2
    height, width = cv2.imread(image).shape[:2]
    assert drawn.shape[:2] == (2 * height, 2 * width)
    assert cv2.imread(str(tmp_path / 'x2.png')).shape[:2] == (2 * height, 2 * width)


def test_test_refuses_tta_for_maskrcnn(det_run, tmp_path):
    config, work_dir = det_run
    result = run_tool(['tools/test.py', config, osp.join(work_dir, 'iter_2.pth'), '--tta'],
                      check=False)
    assert result.returncode != 0 and 'merges boxes only' in result.stderr


@pytest.mark.parametrize('name, layout', [
    (DET, 'data/coco/annotations/instances_train2017.json'),
    (SEG, 'data/ade/ADEChallengeData2016/images/training')])
def test_missing_dataset_error_names_layout_and_option(name, layout, tmp_path):
    cfg = Config.fromfile(osp.join(ROOT, 'configs', f'{name}.py'))
    for split in ('train', 'val', 'test'):
        cfg[f'{split}_dataloader'].dataset.data_root = str(tmp_path / 'nowhere')
    with pytest.raises(FileNotFoundError, match='dataset not found') as error:
        check_datasets(cfg, ['train', 'val'])
    message = str(error.value)
    assert layout in message and 'train_dataloader.dataset.data_root=' in message
    assert str(tmp_path / 'nowhere') in message


def test_train_cli_reports_missing_dataset(tmp_path):
    result = run_tool(['tools/train.py', osp.join('configs', f'{SEG}.py'),
                       '--cfg-options', 'model.backbone.init_cfg=None',
                       f'train_dataloader.dataset.data_root={tmp_path}'],
                      cwd=ROOT, check=False)
    assert result.returncode == 1
    assert 'dataset not found' in result.stderr and 'ADEChallengeData2016' in result.stderr
    assert 'Traceback' not in result.stderr


class _Recorder(Hook):
    """Reseeds torch before every iteration (so the RoI sampler replays) and records losses."""

    def __init__(self):
        self.losses = {}
        self.optim_state_at_start = None

    def before_train(self, runner):
        self.optim_state_at_start = copy.deepcopy(runner.optim_wrapper.state_dict())

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        torch.manual_seed(1000 + runner.iter)

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        self.losses[runner.iter] = float(outputs['loss'].detach())


def _run(cfg: Config, name: str) -> _Recorder:
    cfg.experiment_name = name
    runner = Runner.from_cfg(cfg)
    recorder = _Recorder()
    runner.register_hook(recorder, priority='VERY_LOW')
    runner.train()
    return recorder


def test_resume_replays_uninterrupted_run(coco_root, tmp_path):
    def config(work_dir, max_iters):
        cfg = tiny_config(DET, coco_root, str(tmp_path / work_dir), max_iters=max_iters,
                          random_flip=False, with_val=False)
        cfg.default_hooks.checkpoint.interval = 2
        cfg.default_hooks.checkpoint.max_keep_ckpts = 2
        return cfg

    straight = _run(config('straight', 4), 'straight')
    _run(config('interrupted', 2), 'interrupted')
    resumed_cfg = config('interrupted', 4)
    resumed_cfg.resume = True
    resumed = _run(resumed_cfg, 'resumed')

    assert sorted(resumed.losses) == [2, 3], 'the resumed run must continue at iteration 2'
    saved = torch.load(osp.join(tmp_path, 'straight', 'iter_2.pth'), weights_only=False)
    reference, state = saved['optimizer'], resumed.optim_state_at_start
    assert reference['param_groups'] == state['param_groups']
    for key, value in reference['state'].items():
        for name, tensor in value.items():
            torch.testing.assert_close(state['state'][key][name], tensor, rtol=0, atol=0)
    for it in (2, 3):
        assert resumed.losses[it] == pytest.approx(straight.losses[it], rel=1e-5), \
            (resumed.losses, straight.losses)


@pytest.mark.parametrize('name, ratio', [(DET, 0.8), (SEG, 0.9)])
def test_loss_falls(name, ratio, coco_root, ade_root, tmp_path):
    root = coco_root if name == DET else ade_root
    cfg = tiny_config(name, root, str(tmp_path / 'work'), max_iters=24, with_val=False)
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=-1)
    losses = list(_run(cfg, f'falls_{name}').losses.values())
    first, last = np.mean(losses[:4]), np.mean(losses[-4:])
    assert last < ratio * first, losses


def test_torchrun_two_processes_on_cpu(ade_root, tmp_path):
    if torch.cuda.is_available():
        pytest.skip('checks the CPU (gloo) path')
    work_dir = str(tmp_path / 'work')
    config = dump(tiny_config(SEG, ade_root, work_dir), str(tmp_path / 'seg_tiny.py'))
    port = str(29500 + np.random.default_rng().integers(1000))
    result = run_tool(['-m', 'torch.distributed.run', '--nproc_per_node=2',
                       f'--master_port={port}', 'tools/train.py', config,
                       '--work-dir', work_dir, '--launcher', 'pytorch'], timeout=300)
    log = open(glob.glob(osp.join(work_dir, '*', '*.log'))[-1]).read()
    assert 'Distributed training: True' in log and 'GPU number: 2' in log, log[:3000]
    assert 'Iter(train) [2/2]' in log and 'mIoU' in _final_metrics(work_dir)
    assert 'SyncBN norm config(s) replaced by BN' in result.stdout + result.stderr


def test_teardown_launcher_destroys_the_process_group(tmp_path):
    """The tools destroy a run's process group when it ends (a gloo rank left to exit with the
    group up can abort, and torchrun then fails a finished run); with no group, nothing."""
    import torch.distributed as dist

    from mmspatialmamba.apis import teardown_launcher
    teardown_launcher()
    dist.init_process_group('gloo', init_method=f'file://{tmp_path / "store"}', rank=0,
                            world_size=1)
    try:
        teardown_launcher()
        assert not dist.is_initialized()
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
