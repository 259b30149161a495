"""``benchmarks/gpu_check.sh --dry-run``: every part runs at tiny sizes on the CPU and reports.

The dry run is the GPU check's only test without a GPU: it runs the same scripts and the same
code paths (the Triton kernels interpreted), so a renamed function or a broken config shows up
here rather than during the one run on a lent GPU. Its numbers mean nothing; the assertions
check that every part ran and wrote rows with positive numbers.
"""
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / 'benchmarks' / 'gpu_check.sh'


def load_driver():
    spec = importlib.util.spec_from_file_location('gpu_check', ROOT / 'benchmarks' / 'gpu_check.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def dry_run(tmp_path_factory):
    out = tmp_path_factory.mktemp('gpu_check')
    proc = subprocess.run(['bash', str(SCRIPT), str(out), '--dry-run'], capture_output=True,
                          text=True, timeout=900, env=dict(os.environ, PYTHON=sys.executable))
    assert proc.returncode == 0, f'{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}'
    return out


def rows(out, name):
    return json.loads((out / name).read_text())['rows']


def test_every_part_ran(dry_run):
    status = [json.loads(line) for line in (dry_run / 'parts.jsonl').read_text().splitlines()]
    assert [s['part'] for s in status] == list(load_driver().PARTS)
    assert all(s['rc'] == 0 for s in status), status
    assert sorted(p.name for p in dry_run.iterdir()) == sorted([
        'parts.jsonl', 'tests.json', 'ops-fp32.json', 'ops-bf16.json', 'backbone.json',
        'maskrcnn.json', 'gpu_check.md', 'gpu_check.log'])


def test_cuda_tests_collected_and_skipped(dry_run):
    tests = rows(dry_run, 'tests.json')
    assert tests, 'no cuda-marked test was collected'
    assert {r['outcome'] for r in tests} == {'skipped'}     # no GPU here


@pytest.mark.parametrize('dtype', ['fp32', 'bf16'])
def test_ops_rows(dry_run, dtype):
    ops = rows(dry_run, f'ops-{dtype}.json')
    assert {(r['shape'].startswith('scan'), r['backend']) for r in ops} == {
        (scan, backend) for scan in (False, True) for backend in ('triton', 'torch')}
    assert all(r['fwd_ms'] > 0 and r['fwd_bwd_ms'] > 0 for r in ops)


@pytest.mark.parametrize('name, models, amps', [
    ('backbone.json', {'SpatialMamba(custom)'}, {None, 'bf16'}),
    ('maskrcnn.json', {'Mask R-CNN SpatialMamba-T (ours)', 'Mask R-CNN Swin-T (mmdet)'},
     {None}),
])
def test_model_rows(dry_run, name, models, amps):
    measured = rows(dry_run, name)
    assert {(r['model'], r['amp'], r['mode']) for r in measured} == {
        (m, a, mode) for m in models for a in amps for mode in ('inference', 'train')}
    assert all(r['images_per_s'] > 0 and r['latency_ms'] > 0 and r['peak_mem_mib'] > 0
               for r in measured)


def test_markdown_has_every_table(dry_run):
    text = (dry_run / 'gpu_check.md').read_text()
    for heading in ('## cuda-marked tests', '## Ops', '## T backbone', '## Mask R-CNN'):
        assert heading in text
    assert 'no result' not in text and 'FAILED' not in text and 'TIMED OUT' not in text
    assert '| bf16 | small-a (1, 8, 7, 9) | triton |' in text


def test_usage_errors(tmp_path, capsys):
    proc = subprocess.run(['bash', str(SCRIPT), str(tmp_path), '--dryrun'], capture_output=True,
                          text=True)
    assert proc.returncode == 2 and 'unknown option --dryrun' in proc.stderr
    driver = load_driver()
    with pytest.raises(SystemExit):
        driver.main(['report', str(tmp_path / 'missing')])
    assert 'is not a directory' in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason='checks the message shown without a GPU')
def test_timings_without_gpu_say_dry_run(tmp_path, capsys):
    with pytest.raises(SystemExit):
        load_driver().main(['backbone', str(tmp_path)])
    assert 'pass --dry-run' in capsys.readouterr().err


class FailsInTraining(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 1)

    def forward(self, x):
        if self.training:
            raise RuntimeError('boom')
        return [self.conv(x)]


def test_a_failing_measurement_is_recorded_and_the_rest_still_run(tmp_path):
    """One failing step becomes an error row (and a non-zero count); the others are measured."""
    driver = load_driver()
    out = driver.JsonRows(str(tmp_path / 'backbone.json'), device='cpu', torch='-', triton='-',
                          warmup=0, iters=1)
    failures = driver._time_steps(out, 'flaky', 'torch', FailsInTraining(), 'backbone',
                                  torch.randn(1, 3, 4, 4), None, [None, 'bf16'], 0, 1,
                                  lambda amp, mode: {})
    assert failures == 2
    assert [(r['amp'], r['mode'], r.get('error')) for r in out.rows] == [
        (None, 'inference', None), (None, 'train', 'RuntimeError: boom'),
        ('bf16', 'inference', None), ('bf16', 'train', 'RuntimeError: boom')]
    assert '| flaky | fp32 | train | ERROR: RuntimeError: boom |' in driver.report(str(tmp_path))
