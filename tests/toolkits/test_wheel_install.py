"""Installing into an existing OpenMMLab environment: the wheel, and nothing else, beside the
pinned stack.

The wheel is built from a copy of the repository (``pip wheel --no-deps``) and installed with
``--no-deps`` into an empty ``--target`` folder; a fresh interpreter with that folder on
``PYTHONPATH`` then takes torch, mmcv, mmdet and mmseg from this environment and only
mmspatialmamba from the wheel. From a folder outside the repository it builds Mask R-CNN T
and UperNet T from the shipped config files, runs each on a 64x64 image, and finds the same
configs in the installed package (``mmspatialmamba/.mim/configs``, through the model index).
"""
import glob
import os
import os.path as osp
import re
import shutil
import subprocess
import sys
import zipfile

from tiny_runs import ROOT

# Runs in the fresh interpreter: argv = [target folder, repository root].
USER_SCRIPT = r'''
import os.path as osp
import sys

import torch
import yaml
from mmengine.config import Config
from mmengine.model import revert_sync_batchnorm
from mmengine.registry import MODELS, init_default_scope

import mmspatialmamba

target, root = sys.argv[1:]
assert mmspatialmamba.__file__.startswith(target), mmspatialmamba.__file__
assert mmspatialmamba.ops.__file__.startswith(target), mmspatialmamba.ops.__file__
mim = osp.join(osp.dirname(mmspatialmamba.__file__), '.mim')
with open(osp.join(mim, 'model-index.yml')) as f:
    metafile, = yaml.safe_load(f)['Import']
with open(osp.join(mim, metafile)) as f:
    packaged = {m['Name']: osp.join(mim, m['Config']) for m in yaml.safe_load(f)['Models']}


def sample(scope, size):
    """One data sample of the toolkit, for a size x size image."""
    if scope == 'mmdet':
        from mmdet.structures import DetDataSample as Sample
    else:
        from mmseg.structures import SegDataSample as Sample
    return Sample(metainfo=dict(img_shape=(size, size), ori_shape=(size, size),
                                pad_shape=(size, size), scale_factor=(1.0, 1.0)))


for name in ('maskrcnn_spatialmamba_t_coco', 'upernet_spatialmamba_t_ade20k'):
    cfg = Config.fromfile(osp.join(root, 'configs', f'{name}.py'))
    assert Config.fromfile(packaged[name]).model == cfg.model, name
    cfg.model.backbone.init_cfg = None
    init_default_scope(cfg.default_scope)
    model = revert_sync_batchnorm(MODELS.build(cfg.model)).eval()
    data = dict(inputs=[torch.randint(0, 256, (3, 64, 64), dtype=torch.uint8)],
                data_samples=[sample(cfg.default_scope, 64)])
    with torch.no_grad():
        prediction = model.test_step(data)[0]
    field = 'pred_instances' if cfg.default_scope == 'mmdet' else 'pred_sem_seg'
    result = prediction.get(field)
    shape = result.shape if field == 'pred_sem_seg' else result.bboxes.shape
    print(name, type(model).__name__, field, tuple(shape))
'''


def _run(args, **kwargs) -> str:
    result = subprocess.run(args, capture_output=True, text=True, timeout=300, **kwargs)
    assert result.returncode == 0, f'{args} failed:\n{result.stdout[-3000:]}\n' \
                                   f'{result.stderr[-5000:]}'
    return result.stdout


def _copy_source(tmp_path) -> str:
    """The repository's files, without its environment, outputs and git data."""
    source = tmp_path / 'source'
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        '.git', '.venv', 'work_dirs', 'data', 'checkpoints', 'build', 'dist', '*.egg-info',
        '__pycache__', '.pytest_cache'))
    return str(source)


def _pip_wheel(source: str, tmp_path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, '-m', 'pip', 'wheel', '--no-deps',
                           '--no-build-isolation', '-q', '-w', str(tmp_path / 'dist'), source],
                          capture_output=True, text=True, timeout=300)


def test_wheel_beside_the_pinned_stack_builds_and_runs_the_shipped_configs(tmp_path):
    built = _pip_wheel(_copy_source(tmp_path), tmp_path)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-5000:]
    wheel, = glob.glob(str(tmp_path / 'dist' / 'mmspatialmamba-*.whl'))
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in ('mmspatialmamba/ops/dispatch.py', 'mmspatialmamba/.mim/model-index.yml',
                 'mmspatialmamba/.mim/configs/metafile.yml',
                 'mmspatialmamba/.mim/configs/_base_/spatialmamba_t.py',
                 'mmspatialmamba/.mim/configs/upernet_spatialmamba_b_ade20k.py'):
        assert name in names, name
    target = str(tmp_path / 'site')
    _run([sys.executable, '-m', 'pip', 'install', '--no-deps', '-q', '--target', target, wheel])
    installed = sorted(os.listdir(target))  # our package only: no dependency came along
    assert len(installed) == 2 and installed[0] == 'mmspatialmamba', installed
    assert re.fullmatch(r'mmspatialmamba-[\d.]+\.dist-info', installed[1]), installed

    user = tmp_path / 'user'
    user.mkdir()
    env = dict(os.environ, PYTHONPATH=target, OMP_NUM_THREADS='1', PYTHONWARNINGS='ignore')
    output = _run([sys.executable, '-c', USER_SCRIPT, target, ROOT], cwd=str(user), env=env)
    assert re.search(r'^maskrcnn_spatialmamba_t_coco MaskRCNN pred_instances \(\d+, 4\)$',
                     output, flags=re.M), output
    assert 'upernet_spatialmamba_t_ade20k EncoderDecoder pred_sem_seg (64, 64)' in output, output


def test_wheel_build_without_the_model_index_stops_with_the_reason(tmp_path):
    """A source tree without model-index.yml (an sdist made without MANIFEST.in) would give a
    wheel without configs; the build stops instead."""
    source = _copy_source(tmp_path)
    os.remove(osp.join(source, 'model-index.yml'))
    built = _pip_wheel(source, tmp_path)
    assert built.returncode != 0
    assert 'model-index.yml not found beside setup.py' in built.stdout + built.stderr
