"""mmdet's and mmseg's own entry points on our configs: the train.py, test.py and
analysis_tools/get_flops.py shipped in their wheels (what ``mim train mmdet CONFIG`` runs),
DetInferencer and MMSegInferencer.

Per toolkit, a tiny version of a shipped config (tests/tools/tiny_runs.py) trains for two
iterations with the toolkit's train.py; its test.py evaluates the checkpoint with the recipe's
metric, its inferencer predicts one image from it, and mmdet's get_flops.py counts the model.
The scripts run in a temporary folder, so nothing of ours is involved but the config's
``custom_imports`` of the installed mmspatialmamba.
"""
import glob
import importlib.util
import os.path as osp
import pickle
import re
from typing import List, NamedTuple

import pytest
from mmengine.config import Config
from tiny_runs import dump, run_tool, tiny_config


class Toolkit(NamedTuple):
    package: str        # where the tools are: <package>/.mim/tools
    config: str         # a shipped config
    images: str         # validation images, under the data root
    metric: str         # a key of its evaluation


DET = Toolkit('mmdet', 'maskrcnn_spatialmamba_t_coco', 'val2017/*.jpg', 'coco/bbox_mAP')
SEG = Toolkit('mmseg', 'upernet_spatialmamba_t_ade20k', 'images/validation/*.jpg', 'mIoU')


def toolkit_tool(package: str, *path: str) -> str:
    """A script shipped in a toolkit's wheel, e.g. ``toolkit_tool('mmdet', 'train.py')``."""
    root = osp.dirname(importlib.util.find_spec(package).origin)
    return osp.join(root, '.mim', 'tools', *path)


def script_output(args: List[str], cwd: str) -> str:
    """``python <args>`` in ``cwd`` (:func:`tiny_runs.run_tool`): its stdout and stderr."""
    result = run_tool(args, cwd=cwd, timeout=300)
    return result.stdout + result.stderr


class Run(NamedTuple):
    toolkit: Toolkit
    config: str
    checkpoint: str
    data_root: str
    train_log: str


def _train(toolkit: Toolkit, data_root: str, tmp) -> Run:
    """The toolkit's tools/train.py on a tiny shipped config: 2 iterations, validation, one
    checkpoint."""
    work_dir = str(tmp / 'work')
    config = dump(tiny_config(toolkit.config, data_root, work_dir), str(tmp / 'tiny.py'))
    log = script_output([toolkit_tool(toolkit.package, 'train.py'), config, '--work-dir',
                         work_dir], cwd=str(tmp))
    return Run(toolkit, config, osp.join(work_dir, 'iter_2.pth'), data_root, log)


@pytest.fixture(scope='module')
def det_run(coco_root, tmp_path_factory) -> Run:
    return _train(DET, coco_root, tmp_path_factory.mktemp('mmdet'))


@pytest.fixture(scope='module')
def seg_run(ade_root, tmp_path_factory) -> Run:
    return _train(SEG, ade_root, tmp_path_factory.mktemp('mmseg'))


@pytest.fixture(params=['mmdet', 'mmseg'])
def run(request) -> Run:
    return request.getfixturevalue('det_run' if request.param == 'mmdet' else 'seg_run')


def _metric(log: str, toolkit: Toolkit) -> float:
    """The last value of the toolkit's metric in a tool's log."""
    values = re.findall(rf'{re.escape(toolkit.metric)}: (-?[\d.]+)', log)
    assert values, log[-3000:]
    return float(values[-1])


def test_train(run):
    assert 'Iter(train) [2/2]' in run.train_log, run.train_log[-3000:]
    assert 'Iter(val) [2/2]' in run.train_log, run.train_log[-3000:]
    assert osp.isfile(run.checkpoint)


def test_test(run, tmp_path):
    """test.py loads the trained checkpoint and evaluates it with the recipe's metric, which
    is the value the training run's final validation gave (same weights, same images)."""
    args = [toolkit_tool(run.toolkit.package, 'test.py'), run.config, run.checkpoint,
            '--work-dir', str(tmp_path / 'test')]
    if run.toolkit is DET:
        args += ['--out', str(tmp_path / 'preds.pkl')]
    log = script_output(args, cwd=str(tmp_path))
    assert f'Load checkpoint from {run.checkpoint}' in log, log[-3000:]
    assert _metric(log, run.toolkit) == _metric(run.train_log, run.toolkit)
    if run.toolkit is DET:
        with open(tmp_path / 'preds.pkl', 'rb') as f:
            predictions = pickle.load(f)
        assert len(predictions) == 2 and 'pred_instances' in predictions[0]


def test_inferencer(run, tmp_path):
    """DetInferencer / MMSegInferencer from the config file and the checkpoint, one image."""
    image = sorted(glob.glob(osp.join(run.data_root, run.toolkit.images)))[0]
    if run.toolkit is DET:
        from mmdet.apis import DetInferencer
        inferencer = DetInferencer(model=run.config, weights=run.checkpoint, device='cpu')
        result = inferencer(image, out_dir=str(tmp_path), no_save_pred=False)
        prediction = result['predictions'][0]
        assert len(prediction['labels']) == len(prediction['scores']) == len(
            prediction['bboxes']) == len(prediction['masks'])
        assert glob.glob(str(tmp_path / 'preds' / '*.json'))
    else:
        from mmseg.apis import MMSegInferencer
        inferencer = MMSegInferencer(model=run.config, weights=run.checkpoint, device='cpu')
        result = inferencer(image, out_dir=str(tmp_path))
        assert result['predictions'].shape == (64, 64)
        assert set(result['predictions'].ravel()) <= set(range(4))
    assert glob.glob(str(tmp_path / 'vis' / '*'))


def test_mmdet_get_flops(det_run, tmp_path):
    """mmdet's analysis_tools/get_flops.py counts the parameters of the model the config
    builds, and some FLOPs. (mmseg 1.2.2's get_flops.py fails on every model with mmengine
    0.10.7: '"input_shape" and "inputs" cannot be both set'.)"""
    output = script_output([toolkit_tool('mmdet', 'analysis_tools', 'get_flops.py'),
                            det_run.config, '--num-images', '1'], cwd=str(tmp_path))
    params = re.search(r'Params: ([\d.]+)([KM])', output)
    flops = re.search(r'Flops: ([\d.]+)([KMG])', output)
    assert params and flops, output[-3000:]
    counted = float(params[1]) * {'K': 1e3, 'M': 1e6}[params[2]]
    # printed to 3 significant digits
    assert counted == pytest.approx(_params(det_run.config), rel=5e-3)
    assert float(flops[1]) > 0


def _params(config: str) -> int:
    """Parameters of the config's model."""
    from mmengine.registry import MODELS, init_default_scope
    cfg = Config.fromfile(config)
    init_default_scope(cfg.default_scope)
    return sum(p.numel() for p in MODELS.build(cfg.model).parameters())
