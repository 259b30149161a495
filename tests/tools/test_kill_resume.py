"""A training run killed with SIGKILL and resumed with ``--resume`` replays an unbroken run.

Real processes: ``tools/train.py`` trains a tiny Mask R-CNN (RandomFlip on, drop-path on, the
RPN and R-CNN samplers drawing from torch) or UperNet (RandomResize, RandomCrop, RandomFlip,
PhotoMetricDistortion, dropout) for ``ITERS`` iterations, saving every ``EVERY``. A second
process is killed (SIGKILL, with its dataloader workers) once it has logged the iteration after
the checkpoint, and is then resumed. Every logged loss after the checkpoint, the final weights
and the final metrics must equal the unbroken run's exactly. The unbroken runs use
``num_workers=0``; the killed runs also use 2 persistent workers, so the comparison also shows
that the number of workers changes no draw (augmentations are seeded per sample).

Also: a checkpoint cut short by a kill is never picked by ``--resume``, and naming one
explicitly fails with a message that names it and what to do.
"""
import glob
import json
import os
import os.path as osp
import pickle
import random
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from mmengine.config import Config
from tiny_runs import ROOT, dump, run_tool, tiny_config

from mmspatialmamba.datasets import make_coco_instances
from mmspatialmamba.engine import (SampleKey, SeededDataset, latest_complete_checkpoint,
                                   prepare_resume)
from mmspatialmamba.engine.random_state import capture_random_state, restore_random_state

ITERS, EVERY = 6, 3  # the kill lands in iteration EVERY + 2, after iteration EVERY + 1 logged
NOT_COMPARED = ('time', 'data_time', 'eta', 'memory')


@pytest.fixture(scope='module')
def coco8_root(tmp_path_factory) -> str:
    """8 training images: with batch 2 an epoch is 4 iterations, so the runs cross an epoch."""
    root = str(tmp_path_factory.mktemp('coco8'))
    make_coco_instances(root, num_train=8, num_val=2, image_size=(64, 64), seed=3)
    return root


def _config(name: str, root: str, folder, num_workers: int) -> str:
    cfg = tiny_config(name, root, str(folder / 'unused'), max_iters=ITERS)
    cfg.model.backbone.drop_path_rate = 0.2
    cfg.default_hooks.checkpoint.update(interval=EVERY, max_keep_ckpts=2)
    cfg.train_dataloader.update(num_workers=num_workers, persistent_workers=num_workers > 0)
    return dump(cfg, str(folder / f'{name}_workers{num_workers}.py'))


def _scalars(work_dir: str) -> list:
    """The records of the newest run in ``work_dir`` (vis_data/scalars.json)."""
    path = sorted(glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json')))[-1]
    return [json.loads(line) for line in open(path)]


def _losses(records: list) -> dict:
    """step -> the logged training values (losses, accuracies, lr), without timings."""
    return {r['step']: {k: v for k, v in r.items() if k not in NOT_COMPARED}
            for r in records if 'loss' in r}


def _metrics(records: list) -> dict:
    return [r for r in records if 'loss' not in r][-1]


def _kill_after_checkpoint(config: str, work_dir: str) -> None:
    """Train until iteration EVERY + 1 is logged (past the checkpoint), then SIGKILL the run."""
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONWARNINGS='ignore')
    process = subprocess.Popen([sys.executable, 'tools/train.py', config, '--work-dir', work_dir],
                               cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    mark, deadline = f'Iter(train) [{EVERY + 1}/{ITERS}]', time.time() + 240
    try:
        while not any(mark in open(log).read()
                      for log in glob.glob(osp.join(work_dir, '*', '*.log'))):
            assert process.poll() is None, f'the run ended ({process.returncode}) before {mark}'
            assert time.time() < deadline, f'no {mark} in the log after 240 s'
            time.sleep(0.02)
    finally:
        os.killpg(process.pid, signal.SIGKILL)  # the run and its dataloader workers
        process.wait()
    assert process.returncode == -signal.SIGKILL
    assert not osp.exists(osp.join(work_dir, f'iter_{ITERS}.pth')), 'killed too late'
    with open(osp.join(work_dir, 'last_checkpoint')) as f:
        assert f.read().strip().endswith(f'iter_{EVERY}.pth')


def _assert_same_weights(work_dir: str, reference_dir: str) -> None:
    def weights(folder):
        return torch.load(osp.join(folder, f'iter_{ITERS}.pth'), map_location='cpu',
                          weights_only=False)['state_dict']
    resumed, reference = weights(work_dir), weights(reference_dir)
    assert resumed.keys() == reference.keys()
    different = [k for k in reference if not torch.equal(resumed[k], reference[k])]
    assert not different, f'{len(different)} tensors differ, e.g. {different[:5]}'


@pytest.fixture(scope='module')
def unbroken(coco8_root, ade_root, tmp_path_factory) -> dict:
    """name -> (config folder, work dir) of an unbroken run with num_workers=0."""
    runs = {}
    for name, root in (('maskrcnn_spatialmamba_t_coco', coco8_root),
                       ('upernet_spatialmamba_t_ade20k', ade_root)):
        folder = tmp_path_factory.mktemp(name)
        work_dir = str(folder / 'unbroken')
        run_tool(['tools/train.py', _config(name, root, folder, 0), '--work-dir', work_dir])
        runs[name] = folder, work_dir
    return runs


@pytest.mark.parametrize('name, num_workers', [('maskrcnn_spatialmamba_t_coco', 0),
                                               ('maskrcnn_spatialmamba_t_coco', 2),
                                               ('upernet_spatialmamba_t_ade20k', 2)])
def test_killed_run_resumes_exactly(name, num_workers, unbroken, coco8_root, ade_root):
    folder, reference_dir = unbroken[name]
    root = coco8_root if name.startswith('maskrcnn') else ade_root
    config = _config(name, root, folder, num_workers)
    work_dir = str(folder / f'killed_workers{num_workers}')
    _kill_after_checkpoint(config, work_dir)
    killed = _losses(_scalars(work_dir))
    result = run_tool(['tools/train.py', config, '--work-dir', work_dir, '--resume'])
    assert f'resumed epoch: 0, iter: {EVERY}' in result.stdout + result.stderr

    reference_records, resumed_records = _scalars(reference_dir), _scalars(work_dir)
    reference, resumed = _losses(reference_records), _losses(resumed_records)
    assert sorted(resumed) == list(range(EVERY + 1, ITERS + 1))
    for step in resumed:
        assert resumed[step] == reference[step], (step, resumed[step], reference[step])
    for step in killed:  # the killed run was on the same path up to its kill
        assert killed[step] == reference[step], (step, killed[step], reference[step])
    assert {k: v for k, v in _metrics(resumed_records).items() if k not in NOT_COMPARED} == \
        {k: v for k, v in _metrics(reference_records).items() if k not in NOT_COMPARED}
    _assert_same_weights(work_dir, reference_dir)


def _truncate(path: str, target: str) -> None:
    """Write the first half of ``path`` to ``target``: what a kill during a plain write leaves."""
    with open(path, 'rb') as f:
        data = f.read()
    with open(target, 'wb') as f:
        f.write(data[:len(data) // 2])


def test_resume_passes_over_truncated_checkpoint(unbroken, tmp_path):
    _, reference_dir = unbroken['maskrcnn_spatialmamba_t_coco']
    work_dir = str(tmp_path)
    shutil.copy(osp.join(reference_dir, f'iter_{EVERY}.pth'), work_dir)
    _truncate(osp.join(reference_dir, f'iter_{ITERS}.pth'), osp.join(work_dir, f'iter_{ITERS}.pth'))
    with open(osp.join(work_dir, 'last_checkpoint'), 'w') as f:
        f.write(osp.join(work_dir, f'iter_{ITERS}.pth'))
    assert latest_complete_checkpoint(work_dir) == osp.join(work_dir, f'iter_{EVERY}.pth')
    os.remove(osp.join(work_dir, f'iter_{EVERY}.pth'))
    assert latest_complete_checkpoint(work_dir) is None


def test_resume_named_truncated_checkpoint_says_which_and_what_to_do(unbroken, tmp_path):
    folder, reference_dir = unbroken['maskrcnn_spatialmamba_t_coco']
    truncated = str(tmp_path / f'iter_{ITERS}.pth')
    _truncate(osp.join(reference_dir, f'iter_{ITERS}.pth'), truncated)
    result = run_tool(['tools/train.py', str(folder / 'maskrcnn_spatialmamba_t_coco_workers0.py'),
                       '--work-dir', str(tmp_path / 'work'), '--resume', truncated], check=False)
    assert result.returncode == 1 and 'Traceback' not in result.stderr, result.stderr[-3000:]
    message = result.stderr
    assert f'--resume {truncated}: cannot resume from this file' in message
    assert 'cut short' in message and 'run --resume without a path' in message


def test_resume_takes_the_seed_the_checkpoint_was_trained_with(unbroken, tmp_path):
    """The samplers are built from the config's seed before the Runner reads the checkpoint."""
    _, reference_dir = unbroken['maskrcnn_spatialmamba_t_coco']
    checkpoint = osp.join(reference_dir, f'iter_{EVERY}.pth')
    for randomness in ({}, dict(seed=7)):  # no seed (a new one each run), another seed
        cfg = Config(dict(work_dir=str(tmp_path), randomness=randomness))
        prepare_resume(cfg, checkpoint)
        assert cfg.resume and cfg.load_from == checkpoint and cfg.randomness.seed == 0
    cfg = Config(dict(work_dir=str(tmp_path)))
    prepare_resume(cfg, 'auto')  # an empty work dir: a fresh start
    assert not cfg.resume and cfg.load_from is None
    with pytest.raises(FileNotFoundError, match='no such checkpoint file'):
        prepare_resume(cfg, str(tmp_path / 'absent.pth'))
    _truncate(osp.join(reference_dir, f'iter_{ITERS}.pth'), str(tmp_path / 'cut.pth'))
    with pytest.raises(ValueError, match=r'cut\.pth: cannot resume .* not a complete torch\.save'):
        prepare_resume(cfg, str(tmp_path / 'cut.pth'))


_KILLED_WHILE_SAVING = """
import os, signal, sys
import torch
from mmengine.runner.checkpoint import save_checkpoint
import mmspatialmamba
os.fsync = lambda fd: os.kill(os.getpid(), signal.SIGKILL)  # die before the rename
save_checkpoint({'weights': torch.ones(1000)}, sys.argv[1],
                backend_args=dict(backend='atomic_local'))
"""


def test_kill_while_saving_leaves_previous_checkpoint(tmp_path):
    path = str(tmp_path / 'iter_2.pth')
    torch.save({'weights': torch.zeros(1000)}, path)
    result = subprocess.run([sys.executable, '-c', _KILLED_WHILE_SAVING, path], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == -signal.SIGKILL, result.stderr[-3000:]
    assert torch.equal(torch.load(path)['weights'], torch.zeros(1000))
    assert glob.glob(str(tmp_path / '.iter_2.pth.*.tmp')), 'the kill came before the write'
    assert latest_complete_checkpoint(str(tmp_path)) == path


def test_random_state_round_trips_through_weights_only_load(tmp_path):
    state = capture_random_state()
    expected = np.random.rand(3).tolist(), torch.rand(3), random.random()
    torch.save({'random_state': [state]}, tmp_path / 'state.pth')
    loaded = torch.load(tmp_path / 'state.pth', weights_only=True)['random_state'][0]
    restore_random_state(loaded)
    assert np.random.rand(3).tolist() == expected[0]
    assert torch.equal(torch.rand(3), expected[1])
    assert random.random() == expected[2]


def test_seeded_dataset_draws_depend_on_the_key_only():
    class Draws:
        def __getitem__(self, index):
            return index, np.random.rand(), torch.rand(1).item()

        def __len__(self):
            return 10

    dataset = SeededDataset(Draws())
    key = pickle.loads(pickle.dumps(SampleKey(3, seed=1234)))  # as sent to a worker
    first = dataset[key]
    np.random.rand(5), torch.rand(5)  # other draws in between change nothing
    outside = np.random.get_state()[1].copy()
    assert dataset[key] == first and first[0] == 3
    assert np.array_equal(np.random.get_state()[1], outside), 'the caller\'s state is restored'
    assert dataset[SampleKey(3, seed=1235)] != first
