"""Bad input to the tools, tried as a new user would: one line, exit status 1, no traceback.

Each case runs a tool in this process (as ``python tools/<tool>.py`` would) and checks that it
ends with ``SystemExit('error: ...')`` (Python prints that one line to stderr and exits with
status 1) naming the file and the fix, and that with ``--debug`` the
:class:`~mmspatialmamba.errors.BadInputError` propagates (Python prints its traceback). One
case runs as a real process to check what the user sees. A bug in the run (any other error)
keeps its traceback, and the process group is destroyed whatever happens.
"""
import os.path as osp

import pytest
import torch
from tiny_runs import assert_one_line_error, dump, run_script, run_tool, tiny_config
from mmengine.runner import Runner

import mmspatialmamba.apis

DET = 'maskrcnn_spatialmamba_t_coco'


@pytest.fixture(scope='module')
def files(coco_root, tmp_path_factory) -> dict:
    """A tiny detection config on the synthetic COCO set, and files a user might pass."""
    directory = tmp_path_factory.mktemp('bad_input')
    cfg = tiny_config(DET, coco_root, str(directory / 'work'), with_val=False)
    paths = dict(config=dump(cfg, str(directory / 'det_tiny.py')),
                 image=osp.join(coco_root, 'val2017', '000001.jpg'))
    state = {'fc.weight': torch.zeros(4, 4)}  # a classifier's weights, no backbone's
    torch.save({'state_dict': state}, str(directory / 'foreign.pth'))
    for name, prefix in (('foreign', None), ('prefixed', 'teacher.')):
        cfg.model.backbone.init_cfg = dict(type='Pretrained',
                                           checkpoint=str(directory / 'foreign.pth'))
        if prefix:
            cfg.model.backbone.init_cfg.prefix = prefix
        paths[f'{name}_pretrained_config'] = dump(cfg, str(directory / f'det_{name}.py'))
    complete = directory / 'complete.pth'
    torch.save({'state_dict': {'w': torch.zeros(1000)}}, str(complete))
    paths['checkpoint'] = str(complete)
    (directory / 'truncated.pth').write_bytes(complete.read_bytes()[:2000])
    paths['truncated'] = str(directory / 'truncated.pth')
    for suffix in ('pth', 'jpg'):
        path = directory / f'notes.{suffix}'
        path.write_text('these are my notes, not a checkpoint or an image\n')
        paths[f'notes_{suffix}'] = str(path)
    return paths


CASES = {
    'truncated-checkpoint': ('test', ['{config}', '{truncated}'],
                             r"checkpoint '.*truncated.pth' cannot be loaded: it is cut short"),
    'text-as-checkpoint': ('test', ['{config}', '{notes_pth}'],
                           r"checkpoint '.*notes.pth' cannot be loaded: it is not a PyTorch "
                           r"checkpoint: it starts with b'these are my not'"),
    'unknown-backbone-argument': (
        'infer', ['{config}', '{checkpoint}', '{image}', '--out', 'x.png',
                  '--cfg-options', 'model.backbone.window_size=7'],
        r"SpatialMamba got unexpected arguments \['window_size'\].*_delete_=True"),
    'text-as-image': ('infer', ['{config}', '{checkpoint}', '{notes_jpg}', '--out', 'x.png'],
                      r"image '.*notes.jpg' cannot be decoded"),
    'checkpoint-without-backbone-weights': (
        'train', ['{foreign_pretrained_config}'],
        r"the checkpoint holds no Spatial-Mamba backbone weights.*first keys are \['fc.weight'\]"),
    'init-cfg-prefix-not-in-checkpoint': (
        'train', ['{prefixed_pretrained_config}'],
        r"no key of '.*foreign.pth' starts with the init_cfg prefix 'teacher.'"),
}


@pytest.mark.parametrize('case', list(CASES))
def test_bad_input_ends_the_tool_with_one_line(case, files, tmp_path, monkeypatch):
    tool, args, message = CASES[case]
    args = [arg.format(**files) for arg in args]
    monkeypatch.chdir(tmp_path)
    assert_one_line_error(tool, args, message, monkeypatch)


def test_one_line_as_the_user_sees_it(files):
    result = run_tool(['tools/test.py', files['config'], files['truncated']], check=False)
    assert result.returncode == 1, result.stderr[-3000:]
    assert 'Traceback' not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith(
        f"error: checkpoint {files['truncated']!r} cannot be loaded: it is cut short")


class _FailingRunner:
    """Stands in for the Runner: a bug in the run."""

    @classmethod
    def from_cfg(cls, cfg):
        return cls()

    def train(self):
        raise RuntimeError('a bug in the run')

    test = train


@pytest.mark.parametrize('tool', ['train', 'test'])
def test_process_group_is_destroyed_when_the_run_fails(tool, files, tmp_path, monkeypatch):
    """teardown_launcher runs after a failed run too, and the bug keeps its traceback."""
    calls = []
    monkeypatch.setattr(mmspatialmamba.apis, 'teardown_launcher', lambda: calls.append(1))
    monkeypatch.setattr(Runner, 'from_cfg', _FailingRunner.from_cfg)
    args = [files['config']] + ([files['checkpoint']] if tool == 'test' else [])
    with pytest.raises(RuntimeError, match='a bug in the run'):
        run_script(tool, [*args, '--work-dir', str(tmp_path)], monkeypatch)
    assert calls == [1]
