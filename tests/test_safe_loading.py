"""Checkpoints never run code: every in-process load path refuses a crafted pickle.

The crafted file holds an object whose unpickling calls ``open(MARKER, 'w')``; a load that
unpickled it would create MARKER. The paths: mmengine's ``load_checkpoint`` and
``CheckpointLoader``, ``init_cfg=Pretrained`` of the backbone, and a Runner's ``load_from``
and ``resume``. The tools (train/test/infer) are checked in tests/tools/test_safe_tools.py.
"""
import fractions
import itertools
import logging
import os
import os.path as osp
import pickle
import sys
import types
from collections import OrderedDict
import zipfile

import numpy as np
import pytest
import torch
from crafted_checkpoint import save_crafted
from mmengine.logging import HistoryBuffer, MMLogger
from mmengine.model import BaseModel
from mmengine.runner import CheckpointLoader, Runner, load_checkpoint
from torch import nn

from mmspatialmamba.checkpoint_io import (MMENGINE_CHECKPOINT_GLOBALS, TRUST_ENV,
                                          UnsafeCheckpointError, checkpoints_trusted,
                                          load_checkpoint_file)
from mmspatialmamba.errors import BadInputError, MissingFileError
from mmspatialmamba.models import SpatialMamba

TINY = dict(dims=16, depths=(1, 1, 1, 1))
OPT_IN = r'--trust-checkpoint .* MMSM_TRUST_CHECKPOINTS=1'


@pytest.fixture
def crafted(tmp_path, monkeypatch):
    monkeypatch.delenv(TRUST_ENV, raising=False)
    path, marker = save_crafted(str(tmp_path))
    yield path, marker
    assert not osp.exists(marker), 'the crafted checkpoint ran code'


def test_crafted_checkpoint_runs_code_when_fully_unpickled(tmp_path):
    """The control: a plain ``weights_only=False`` load would run the payload."""
    path, marker = save_crafted(str(tmp_path))
    torch.load(path, weights_only=False)
    assert osp.exists(marker)


_RUNS = itertools.count()  # each Runner needs its own experiment name


class ToyModel(BaseModel):
    """A one-layer model for Runners that train in a second."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(2, 1)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        out = self.linear(torch.stack(inputs))
        return dict(loss=out.pow(2).mean()) if mode == 'loss' else out


def toy_runner(work_dir: str, max_iters: int, **kwargs) -> Runner:
    """A Runner with AdamW, a LinearLR schedule and a checkpoint every iteration."""
    data = [dict(inputs=torch.full((2,), float(i))) for i in range(4)]
    return Runner(
        model=ToyModel(), work_dir=work_dir,
        experiment_name=f'toy_{next(_RUNS)}',
        train_dataloader=dict(dataset=data, sampler=dict(type='DefaultSampler', shuffle=False),
                              batch_size=2, collate_fn=dict(type='pseudo_collate')),
        train_cfg=dict(by_epoch=False, max_iters=max_iters),
        optim_wrapper=dict(optimizer=dict(type='AdamW', lr=0.01)),
        param_scheduler=dict(type='LinearLR', start_factor=0.5, by_epoch=False, end=4),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=1, by_epoch=False),
                           logger=dict(type='LoggerHook', interval=1)),
        **kwargs)


@pytest.fixture(scope='module')
def runner_checkpoint(tmp_path_factory) -> str:
    """An mmengine checkpoint (optimizer, scheduler, message_hub) from a real 2-iteration run."""
    work_dir = str(tmp_path_factory.mktemp('toy'))
    toy_runner(work_dir, max_iters=2).train()
    return osp.join(work_dir, 'iter_2.pth')


def _names(safe_globals) -> set:
    return {g[1] if isinstance(g, tuple) else f'{g.__module__}.{g.__qualname__}'
            for g in safe_globals}


def test_mmengine_checkpoint_needs_only_the_allowed_globals(runner_checkpoint):
    needed = set(torch.serialization.get_unsafe_globals_in_checkpoint(runner_checkpoint))
    assert 'mmengine.logging.history_buffer.HistoryBuffer' in needed
    assert needed <= _names(MMENGINE_CHECKPOINT_GLOBALS), needed - _names(
        MMENGINE_CHECKPOINT_GLOBALS)
    checkpoint = load_checkpoint_file(runner_checkpoint)
    assert checkpoint['meta']['iter'] == 2 and 'optimizer' in checkpoint
    leaked = set(MMENGINE_CHECKPOINT_GLOBALS) & set(torch.serialization.get_safe_globals())
    assert not leaked, 'the allow-list leaked process-wide'


def test_allowed_globals_have_no_code_running_escape_hatch():
    names = _names(MMENGINE_CHECKPOINT_GLOBALS)
    assert all(n.startswith(('numpy.', 'mmengine.logging.')) for n in names - {
        'builtins.getattr'}), names
    assert 'numpy.dtypes.ObjectDType' not in names
    stand_in = dict((name, g) for g, name in (g for g in MMENGINE_CHECKPOINT_GLOBALS
                                              if isinstance(g, tuple)))['builtins.getattr']
    assert stand_in is not getattr
    assert stand_in(HistoryBuffer, 'mean') is HistoryBuffer.mean
    for owner, name in [(HistoryBuffer, '__init__'), (os, 'system'), (HistoryBuffer(), 'min')]:
        with pytest.raises(pickle.UnpicklingError, match='only HistoryBuffer'):
            stand_in(owner, name)


def test_getattr_beyond_statistics_methods_is_refused(tmp_path, monkeypatch):
    """A file that uses the allowed getattr name to reach another attribute does not get it."""
    monkeypatch.delenv(TRUST_ENV, raising=False)
    escape = str(tmp_path / 'getattr.pth')
    torch.save({'payload': _GetattrEscape()}, escape)
    assert 'builtins.getattr' in torch.serialization.get_unsafe_globals_in_checkpoint(escape)
    with pytest.raises(UnsafeCheckpointError, match='only HistoryBuffer'):
        load_checkpoint_file(escape)


class _GetattrEscape:
    """Pickles as ``getattr(HistoryBuffer, '_set_default_statistics')``."""

    def __reduce__(self):
        return getattr, (HistoryBuffer, '_set_default_statistics')


def test_user_safe_globals_survive_a_load(runner_checkpoint):
    """Globals the user allowed process-wide stay allowed after our scoped allow-list."""
    before = set(torch.serialization.get_safe_globals())
    torch.serialization.add_safe_globals([np.ndarray, fractions.Fraction])
    try:
        load_checkpoint_file(runner_checkpoint)
        after = set(torch.serialization.get_safe_globals())
        assert after == before | {np.ndarray, fractions.Fraction}
    finally:
        torch.serialization._weights_only_unpickler._remove_safe_globals(
            [np.ndarray, fractions.Fraction])


def test_runner_resumes_from_its_checkpoint(runner_checkpoint, tmp_path):
    runner = toy_runner(str(tmp_path), max_iters=3, load_from=runner_checkpoint, resume=True)
    runner.train()
    assert runner.iter == 3
    assert len(runner.message_hub.get_scalar('train/loss').data[0]) == 3  # 2 resumed + 1


def test_numpy1_checkpoint_names_load(runner_checkpoint, tmp_path):
    """A checkpoint written under numpy 1 (``numpy.core.multiarray``) loads under numpy 2."""
    path = str(tmp_path / 'numpy1.pth')
    with zipfile.ZipFile(runner_checkpoint) as src, zipfile.ZipFile(path, 'w') as dst:
        for item in src.infolist():
            data = src.read(item)
            if item.filename.endswith('/data.pkl'):
                assert b'numpy._core.multiarray' in data
                data = data.replace(b'numpy._core.multiarray', b'numpy.core.multiarray')
            dst.writestr(item, data)
    assert 'numpy.core.multiarray._reconstruct' in \
        torch.serialization.get_unsafe_globals_in_checkpoint(path)
    reference, checkpoint = load_checkpoint_file(runner_checkpoint), load_checkpoint_file(path)
    history = checkpoint['message_hub']['log_scalars']['train/loss']
    assert np.array_equal(history.data[0],
                          reference['message_hub']['log_scalars']['train/loss'].data[0])


def test_direct_load_names_global_file_and_opt_in(crafted):
    path, _ = crafted
    with pytest.raises(UnsafeCheckpointError, match=OPT_IN) as error:
        load_checkpoint_file(path)
    assert "['io.open']" in str(error.value) and repr(path) in str(error.value)


@pytest.mark.parametrize('how', ['load_checkpoint', 'CheckpointLoader', 'init_cfg'])
def test_mmengine_paths_refuse(how, crafted):
    path, _ = crafted
    with pytest.raises(UnsafeCheckpointError, match=OPT_IN):
        if how == 'load_checkpoint':
            load_checkpoint(nn.Linear(2, 1), path)
        elif how == 'CheckpointLoader':
            CheckpointLoader.load_checkpoint(path)
        else:
            SpatialMamba(arch=TINY, init_cfg=dict(type='Pretrained', checkpoint=path)
                         ).init_weights()


@pytest.mark.parametrize('resume', [False, True], ids=['load_from', 'resume'])
def test_runner_refuses(resume, crafted, tmp_path):
    path, _ = crafted
    runner = toy_runner(str(tmp_path / 'work'), max_iters=1, load_from=path, resume=resume)
    with pytest.raises(UnsafeCheckpointError, match=OPT_IN):
        runner.train()


class _Records(logging.Handler):
    def __init__(self):
        super().__init__(level=logging.WARNING)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def test_opt_in_loads_trusted_file_with_a_warning(tmp_path, monkeypatch):
    path = str(tmp_path / 'foreign.pth')
    torch.save({'state_dict': {'w': torch.ones(2)}, 'ratio': fractions.Fraction(1, 3)}, path)
    with pytest.raises(UnsafeCheckpointError, match=r"needs \['fractions.Fraction'\]"):
        load_checkpoint_file(path)
    monkeypatch.setenv(TRUST_ENV, '1')
    records = _Records()
    logger = MMLogger.get_current_instance()
    logger.addHandler(records)
    try:
        checkpoint = load_checkpoint_file(path)
    finally:
        logger.removeHandler(records)
    assert checkpoint['ratio'] == fractions.Fraction(1, 3)
    assert len(records.messages) == 1 and 'weights_only=False' in records.messages[0]
    assert 'fractions.Fraction' in records.messages[0] and path in records.messages[0]


def test_safe_files_load_without_warning_under_opt_in(runner_checkpoint, monkeypatch):
    monkeypatch.setenv(TRUST_ENV, '1')
    records = _Records()
    logger = MMLogger.get_current_instance()
    logger.addHandler(records)
    try:
        load_checkpoint_file(runner_checkpoint)
    finally:
        logger.removeHandler(records)
    assert records.messages == []


@pytest.mark.parametrize('value, trusted', [('1', True), ('yes', True), ('0', False),
                                            ('', False)])
def test_trust_variable_values(value, trusted, monkeypatch):
    monkeypatch.setenv(TRUST_ENV, value)
    assert checkpoints_trusted() is trusted


def test_trust_variable_rejects_other_values(monkeypatch):
    monkeypatch.setenv(TRUST_ENV, 'maybe')
    with pytest.raises(BadInputError, match="MMSM_TRUST_CHECKPOINTS='maybe': use 1"):
        checkpoints_trusted()


def test_missing_file_names_the_fix(tmp_path):
    with pytest.raises(MissingFileError, match='model.backbone.init_cfg.checkpoint=PATH'):
        CheckpointLoader.load_checkpoint(str(tmp_path / 'absent.pth'))


@pytest.mark.parametrize('content, problem', [
    (b'not a checkpoint', r"it is not a PyTorch checkpoint: it starts with b'not a checkpoint'"),
    (b'<!DOCTYPE html><html><body>404 Not Found',
     r"it is not .* starts with b'<!DOCTYPE html><'.*HTML"),
    (b'', r'the file is empty'),
    (None, r'it is cut short: a torch.save zip archive without its directory'),
], ids=['text', 'html', 'empty', 'truncated'])
def test_a_file_that_is_not_a_checkpoint_is_bad_input(content, problem, tmp_path):
    """Not reported as unsafe: nothing in it was refused, it is not a checkpoint at all."""
    path = tmp_path / 'x.pth'
    if content is None:
        torch.save({'w': torch.zeros(1000)}, str(path))
        content = path.read_bytes()[:-200]
    path.write_bytes(content)
    with pytest.raises(BadInputError, match=f"checkpoint '.*x.pth' cannot be loaded: {problem}"
                       ) as error:
        load_checkpoint_file(str(path))
    assert not isinstance(error.value, UnsafeCheckpointError)


def test_legacy_pickle_the_unpickler_refuses_is_unsafe(tmp_path):
    """A file in torch.save's legacy format (a pickle) that the weights-only unpickler stops
    on is reported as unsafe, with the unpickler's reason."""
    path = tmp_path / 'legacy.pth'
    path.write_bytes(b'\x80\x02cos\nsystem\n.')
    with pytest.raises(UnsafeCheckpointError, match='cannot be loaded with weights_only=True'):
        load_checkpoint_file(str(path))



def _fake_yacs(monkeypatch) -> type:
    """Install a module ``yacs.config`` whose ``CfgNode`` pickles as yacs' does.

    yacs' ``CfgNode`` is a dict subclass that keeps its flags in ``__dict__``; pickle only
    records its name, so a stand-in with the same layout writes the same kind of file.
    """
    class CfgNode(dict):
        def __init__(self, items=()):
            super().__init__(items)
            self.__dict__.update({'__immutable__': False, '__deprecated_keys__': set(),
                                  '__renamed_keys__': {}, '__new_allowed__': False})

    module = types.ModuleType('yacs.config')
    CfgNode.__module__, CfgNode.__qualname__ = 'yacs.config', 'CfgNode'
    module.CfgNode = CfgNode
    monkeypatch.setitem(sys.modules, 'yacs', types.ModuleType('yacs'))
    monkeypatch.setitem(sys.modules, 'yacs.config', module)
    return CfgNode


def test_release_imagenet_checkpoint_with_yacs_config_loads(tmp_path, monkeypatch):
    """The release's ImageNet files keep their yacs config: it loads as a plain mapping."""
    monkeypatch.delenv(TRUST_ENV, raising=False)
    CfgNode = _fake_yacs(monkeypatch)
    state = SpatialMamba(arch=TINY).state_dict()
    config = CfgNode({'MODEL': CfgNode({'TYPE': 'spatialmamba', 'DROP_PATH_RATE': 0.2}),
                      'TRAIN': CfgNode({'EPOCHS': 300, 'BASE_LR': 1e-3})})
    path = str(tmp_path / 'in1k.pth')
    torch.save({'model': state, 'config': config, 'epoch': 299, 'max_accuracy': 83.5,
                'optimizer': {'state': {}, 'param_groups': []}}, path)
    monkeypatch.delitem(sys.modules, 'yacs.config')  # yacs need not be installed to load it
    monkeypatch.delitem(sys.modules, 'yacs')
    checkpoint = load_checkpoint_file(path)
    assert type(checkpoint['config']) is OrderedDict
    assert checkpoint['config']['MODEL']['DROP_PATH_RATE'] == 0.2
    model = SpatialMamba(arch=TINY, init_cfg=dict(type='Pretrained', checkpoint=path))
    model.init_weights()
    assert all(torch.equal(model.state_dict()[k], v) for k, v in state.items())

