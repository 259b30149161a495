"""Cluster launches on CPU (gloo): a two-node torchrun job through tools/dist_train.sh, and a
Slurm job through tools/slurm_train.sh and tools/slurm_test.sh with a stand-in ``srun``.

Each job trains a tiny UperNet (tests/tools/tiny_runs.py) for two iterations on two ranks,
one per node, and every rank writes its weights (rank_weights.py): both ranks must end with
the same weights, different from where they started. The ranks read different images, so
ranks that did not average their gradients would end apart.
"""
import json
import os
import os.path as osp
import socket
import stat
import subprocess
import sys

import pytest
import torch
from tiny_runs import ROOT, dump, tiny_config

from mmspatialmamba.apis import setup_launcher

SEG = 'upernet_spatialmamba_t_ade20k'
HERE = osp.dirname(osp.abspath(__file__))

# Stand-in for Slurm's srun: records its options and command to $FAKE_SRUN_RECORD, then runs
# the command as --ntasks local tasks with the variables Slurm gives each task.
FAKE_SRUN = '''#!{python}
import json, os, subprocess, sys
argv, options = sys.argv[1:], {{}}
while argv[0].startswith('-'):
    if argv[0] == '-p':
        options['-p'], argv = argv[1], argv[2:]
    else:
        key, _, value = argv.pop(0).partition('=')
        options[key] = value
with open(os.environ['FAKE_SRUN_RECORD'], 'w') as f:
    json.dump(dict(options=options, command=argv), f)
ntasks, per_node = int(options['--ntasks']), int(options['--ntasks-per-node'])
tasks = [subprocess.Popen(argv, env=dict(
    os.environ, SLURM_PROCID=str(rank), SLURM_NTASKS=str(ntasks),
    SLURM_LOCALID=str(rank % per_node), SLURM_NODEID=str(rank // per_node),
    SLURM_NODELIST='node[0-1]', SLURM_JOB_NAME=options['--job-name'])) for rank in range(ntasks)]
sys.exit(max(task.wait() for task in tasks))
'''
# Stand-in for `scontrol show hostname NODELIST`: records its arguments, names the first node.
FAKE_SCONTROL = '''#!/usr/bin/env bash
echo "$@" >> "$FAKE_SCONTROL_RECORD"
echo 127.0.0.1
echo 127.0.0.2
'''

pytestmark = pytest.mark.skipif(torch.cuda.is_available(),
                                reason='checks the CPU (gloo) path of the launchers')


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _env(**extra: str) -> dict:
    """The jobs' environment: this Python, rank_weights importable, one thread per process."""
    env = {k: v for k, v in os.environ.items() if k not in ('MASTER_ADDR', 'MASTER_PORT')}
    env.update(PYTHON=sys.executable, PYTHONPATH=HERE, OMP_NUM_THREADS='1',
               PYTHONWARNINGS='ignore', **extra)
    return env


def _ranked_config(ade_root: str, tmp_path) -> str:
    """A tiny UperNet config (2 iterations, no validation) whose ranks save their weights."""
    cfg = tiny_config(SEG, ade_root, str(tmp_path / 'work'), with_val=False)
    cfg.custom_imports.imports.append('rank_weights')
    cfg.custom_hooks = list(cfg.get('custom_hooks', [])) + [dict(type='SaveRankWeightsHook')]
    return dump(cfg, str(tmp_path / 'seg_ranked.py'))


def _assert_ranks_trained_the_same_weights(work_dir: str) -> None:
    runs = [torch.load(osp.join(work_dir, f'rank{rank}_weights.pth'), weights_only=True)
            for rank in (0, 1)]
    assert [(run['rank'], run['world_size']) for run in runs] == [(0, 2), (1, 2)]
    first, second = runs[0]['after'], runs[1]['after']
    assert first.keys() == second.keys()
    different = [k for k in first if not torch.equal(first[k], second[k])]
    assert not different, different[:5]
    moved = [k for k in first if not torch.equal(first[k], runs[0]['before'][k])]
    assert any(k.startswith('backbone.') for k in moved), 'the weights did not train'


def _run(command: list, env: dict, timeout: int = 300) -> str:
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=timeout)
    assert result.returncode == 0, f'{command} failed:\n{result.stdout[-3000:]}\n' \
                                   f'{result.stderr[-5000:]}'
    return result.stdout + result.stderr


def test_two_node_torchrun_job_trains_the_same_weights(ade_root, tmp_path):
    """NNODES=2: node ranks 0 and 1, one process each, meet at MASTER_ADDR:PORT."""
    config, work_dir = _ranked_config(ade_root, tmp_path), str(tmp_path / 'work')
    env = _env(NNODES='2', MASTER_ADDR='127.0.0.1', PORT=str(_free_port()))
    nodes = [subprocess.Popen(['bash', 'tools/dist_train.sh', config, '1', '--work-dir',
                               work_dir], cwd=ROOT, env=dict(env, NODE_RANK=str(rank)),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for rank in (0, 1)]
    outputs = [node.communicate(timeout=300)[0] for node in nodes]
    for node, output in zip(nodes, outputs):
        assert node.returncode == 0, output[-5000:]
    _assert_ranks_trained_the_same_weights(work_dir)


@pytest.fixture
def fake_slurm(tmp_path) -> dict:
    """srun and scontrol stand-ins first on PATH; returns the environment and record files."""
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    for name, text in (('srun', FAKE_SRUN.format(python=sys.executable)),
                       ('scontrol', FAKE_SCONTROL)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(stat.S_IRWXU)
    records = dict(srun=str(tmp_path / 'srun.json'), scontrol=str(tmp_path / 'scontrol.txt'))
    env = _env(PATH=f'{bin_dir}{os.pathsep}{os.environ["PATH"]}',
               MASTER_PORT=str(_free_port()), FAKE_SRUN_RECORD=records['srun'],
               FAKE_SCONTROL_RECORD=records['scontrol'])
    return dict(env=env, **records)


def test_slurm_train_and_test_on_two_tasks(fake_slurm, ade_root, tmp_path):
    """mmdet's interface (PARTITION JOB_NAME CONFIG [WORK_DIR], GPUS, GPUS_PER_NODE,
    CPUS_PER_TASK, SRUN_ARGS) reaches srun; mmengine takes each task's rank from SLURM_PROCID
    and the master from SLURM_NODELIST; then slurm_test.sh evaluates the checkpoint (one
    task)."""
    config, work_dir = _ranked_config(ade_root, tmp_path), str(tmp_path / 'work')
    env = dict(fake_slurm['env'], GPUS='2', GPUS_PER_NODE='1', CPUS_PER_TASK='3',
               SRUN_ARGS='--quotatype=auto --time=10')
    _run(['bash', 'tools/slurm_train.sh', 'cpu_part', 'sm_job', config, work_dir,
          '--cfg-options', 'randomness.seed=7'], env)
    with open(fake_slurm['srun']) as f:
        srun = json.load(f)
    assert srun['options'] == {'-p': 'cpu_part', '--job-name': 'sm_job', '--gres': 'gpu:1',
                               '--ntasks': '2', '--ntasks-per-node': '1',
                               '--cpus-per-task': '3', '--kill-on-bad-exit': '1',
                               '--quotatype': 'auto', '--time': '10'}
    assert srun['command'] == [sys.executable, '-u', osp.join(ROOT, 'tools', 'train.py'),
                               config, '--work-dir', work_dir, '--cfg-options',
                               'randomness.seed=7', '--launcher', 'slurm']
    with open(fake_slurm['scontrol']) as f:
        assert f.read().splitlines() == ['show hostname node[0-1]'] * 2
    _assert_ranks_trained_the_same_weights(work_dir)

    checkpoint = osp.join(work_dir, 'iter_2.pth')
    output = _run(['bash', 'tools/slurm_test.sh', 'cpu_part', 'sm_test', config, checkpoint,
                   '--work-dir', str(tmp_path / 'test')], dict(env, GPUS='1'))
    with open(fake_slurm['srun']) as f:
        srun = json.load(f)
    assert (srun['options']['--job-name'], srun['options']['--ntasks']) == ('sm_test', '1')
    assert srun['command'][2:] == [osp.join(ROOT, 'tools', 'test.py'), config, checkpoint,
                                   '--work-dir', str(tmp_path / 'test'), '--launcher', 'slurm']
    assert 'mIoU' in output


@pytest.mark.parametrize('script, args', [
    ('slurm_train.sh', ['part', 'job']), ('slurm_test.sh', ['part', 'job', 'cfg.py']),
    ('dist_train.sh', ['cfg.py']), ('dist_test.sh', ['cfg.py', 'ckpt.pth'])])
def test_launch_scripts_print_usage_on_missing_arguments(script, args):
    result = subprocess.run(['bash', osp.join(ROOT, 'tools', script), *args],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert result.stderr.startswith(f'usage: bash tools/{script} ')


def test_mpi_launcher_without_cuda_names_the_alternatives():
    from mmengine.config import Config
    with pytest.raises(ValueError, match=r'--launcher mpi needs CUDA; .*tools/dist_train\.sh'
                                         r'.*tools/slurm_train\.sh'):
        setup_launcher(Config(dict(model=dict())), 'mpi')
