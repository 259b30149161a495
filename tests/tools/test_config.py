"""Config loading (mmspatialmamba.apis.config) and the tools' one error style (apis.cli)."""
import os.path as osp

import pytest
import torch
from tiny_runs import ROOT, assert_one_line_error

from mmspatialmamba.apis import (drop_pretrained_init, exit_on_user_error, load_config,
                                 resolve_pretrained)
from mmspatialmamba.errors import BadInputError, MissingFileError

DET = osp.join(ROOT, 'configs', 'maskrcnn_spatialmamba_t_coco.py')


def test_load_config_merges_options_and_sets_work_dir(tmp_path):
    cfg = load_config(DET, {'model.backbone.drop_path_rate': 0.05})
    assert cfg.model.backbone.drop_path_rate == 0.05
    assert cfg.work_dir == osp.join('./work_dirs', 'maskrcnn_spatialmamba_t_coco')
    assert load_config(DET, work_dir=str(tmp_path)).work_dir == str(tmp_path)
    own = tmp_path / 'own_work_dir.py'
    own.write_text(f"_base_ = [{DET!r}]\nwork_dir = 'runs/mine'\n")
    assert load_config(str(own)).work_dir == 'runs/mine'


@pytest.mark.parametrize('text, error, match', [
    (None, MissingFileError, r"config '.*absent\.py' not found; pass a config file such as"),
    ("default_scope = 'mmpretrain'\nmodel = dict()\n", BadInputError,
     r"default_scope is 'mmpretrain'; these tools run mmdet and mmseg configs"),
], ids=['missing', 'other-toolkit'])
def test_load_config_errors(text, error, match, tmp_path):
    path = tmp_path / 'absent.py'
    if text is not None:
        path.write_text(text)
    with pytest.raises(error, match=match):
        load_config(str(path))


def test_drop_pretrained_init():
    cfg = load_config(DET)
    dropped = drop_pretrained_init(cfg)
    assert dropped['type'] == 'Pretrained' and cfg.model.backbone.init_cfg is None
    assert drop_pretrained_init(cfg) is None


def test_missing_pretrained_error_names_option(tmp_path):
    cfg = load_config(DET, {'model.backbone.init_cfg.checkpoint': str(tmp_path / 'absent.pth')})
    with pytest.raises(MissingFileError, match='model.backbone.init_cfg.checkpoint='):
        resolve_pretrained(cfg)
    assert cfg.model.backbone.init_cfg is not None
    resolve_pretrained(cfg, weights_from_checkpoint=True)  # resuming: weights come from there
    assert cfg.model.backbone.init_cfg is None


def test_existing_pretrained_is_kept(tmp_path):
    (tmp_path / 'in1k.pth').touch()
    cfg = load_config(DET, {'model.backbone.init_cfg.checkpoint': str(tmp_path / 'in1k.pth')})
    resolve_pretrained(cfg, weights_from_checkpoint=True)
    assert cfg.model.backbone.init_cfg.checkpoint == str(tmp_path / 'in1k.pth')


@pytest.mark.parametrize('error', [MissingFileError('no file x'), BadInputError('bad value x')])
def test_exit_on_user_error(error):
    with pytest.raises(SystemExit, match=f'^error: {error}$'):
        with exit_on_user_error():
            raise error
    with pytest.raises(type(error)) as raised:  # --debug: the error itself, with its traceback
        with exit_on_user_error(debug=True):
            raise error
    assert raised.value is error


@pytest.mark.parametrize('error', [KeyError('a bug'), ValueError('a bug'),
                                   FileNotFoundError('a bug'), RuntimeError('a bug')])
def test_exit_on_user_error_keeps_other_errors(error):
    """Only BadInputError is bad input: anything else is a bug and keeps its traceback."""
    with pytest.raises(type(error)):
        with exit_on_user_error():
            raise error


@pytest.mark.parametrize('tool, args, message', [
    ('train', ['absent.py'], "config 'absent.py' not found"),
    ('test', [DET, 'absent.pth'], "checkpoint 'absent.pth' does not exist"),
    ('infer', [DET, 'absent.pth', 'absent.jpg', '--out', 'x.png'],
     "image 'absent.jpg' does not exist"),
    ('get_flops', ['absent.py'], "config 'absent.py' not found"),
    ('benchmark', ['absent.py', '--device', 'cpu'], "config 'absent.py' not found"),
    ('export_onnx', ['absent.py', '--shape', '64', '64', '--out', 'x.onnx'],
     "config 'absent.py' not found"),
    ('profile_block', ['--arch', 'huge', '--device', 'cpu'], "unknown arch 'huge'"),
    ('quickstart', ['--image-size', '16', '--data-root', 'data', '--work-dir', 'work',
                    '--threads', str(torch.get_num_threads())], r'need image sides >= 32'),
    ('analysis/erf', ['tiny', '--images', 'absent.jpg', '--threads', str(torch.get_num_threads())],
     "image or folder 'absent.jpg' does not exist"),
    ('analysis/dependency_map', [DET, 'absent.jpg', '--pixel', '1', '1', '--stage', '0',
                                 '--threads', str(torch.get_num_threads())],
     "image 'absent.jpg' does not exist"),
], ids=['train', 'test', 'infer', 'get_flops', 'benchmark', 'export_onnx', 'profile_block',
        'quickstart', 'erf', 'dependency_map'])
def test_tools_end_a_user_error_with_one_line(tool, args, message, tmp_path, monkeypatch):
    """Each tool reports a missing file or a bad value in one line (see
    tiny_runs.assert_one_line_error)."""
    monkeypatch.chdir(tmp_path)
    assert_one_line_error(tool, args, message, monkeypatch)
