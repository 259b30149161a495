"""tools/train.py --resume, tools/test.py and tools/infer.py refuse a code-running checkpoint.

The crafted checkpoint (tests/crafted_checkpoint.py) would create a marker file if it were
unpickled; each tool must stop with the opt-in in its error and leave no marker. With
``--trust-checkpoint``, a file that needs a harmless foreign global loads, with a warning.
"""
import fractions
import os.path as osp

import pytest
import torch
from crafted_checkpoint import save_crafted
from tiny_runs import dump, run_tool, tiny_config

from mmspatialmamba.apis import init_model
from mmspatialmamba.checkpoint_io import TRUST_ENV
from mmspatialmamba.datasets import coco_metainfo

DET = 'maskrcnn_spatialmamba_t_coco'


@pytest.fixture(scope='module')
def det_config(coco_root, tmp_path_factory) -> str:
    directory = tmp_path_factory.mktemp('safe')
    return dump(tiny_config(DET, coco_root, str(directory / 'work')),
                str(directory / 'det_tiny.py'))


def _image(coco_root: str) -> str:
    return osp.join(coco_root, 'val2017', '000001.jpg')


@pytest.mark.parametrize('tool', ['train --resume', 'test', 'infer'])
def test_tool_refuses_crafted_checkpoint(tool, det_config, coco_root, tmp_path, monkeypatch):
    monkeypatch.delenv(TRUST_ENV, raising=False)
    checkpoint, marker = save_crafted(str(tmp_path))
    work_dir = str(tmp_path / 'work')
    args = {'train --resume': ['tools/train.py', det_config, '--work-dir', work_dir,
                               '--resume', checkpoint],
            'test': ['tools/test.py', det_config, checkpoint, '--work-dir', work_dir],
            'infer': ['tools/infer.py', det_config, checkpoint, _image(coco_root),
                      '--out', str(tmp_path / 'out.png')]}[tool]
    result = run_tool(args, check=False)
    assert result.returncode != 0
    assert not osp.exists(marker), 'the crafted checkpoint ran code'
    assert "needs ['io.open']" in result.stderr and '--trust-checkpoint' in result.stderr, \
        result.stderr[-3000:]


def test_infer_trust_flag_loads_foreign_checkpoint_with_warning(det_config, coco_root, tmp_path,
                                                                monkeypatch):
    monkeypatch.delenv(TRUST_ENV, raising=False)
    checkpoint = str(tmp_path / 'foreign.pth')
    model = init_model(det_config)
    torch.save({'state_dict': model.state_dict(),
                'meta': {'dataset_meta': coco_metainfo(), 'ratio': fractions.Fraction(1, 3)}},
               checkpoint)
    args = ['tools/infer.py', det_config, checkpoint, _image(coco_root),
            '--out', str(tmp_path / 'out.png')]
    trusted = run_tool(args + ['--trust-checkpoint'])
    output = trusted.stdout + trusted.stderr
    assert 'weights_only=False' in output and 'fractions.Fraction' in output, output[-3000:]
    assert osp.isfile(tmp_path / 'out.png')
