"""``benchmarks/gpu_check.sh --dry-run``: every part runs at tiny sizes on the CPU and reports.

The dry run is the GPU check's only test without a GPU: it runs the same scripts and the same
code paths (the Triton kernels interpreted; the compile part compiles for sm_90 with Triton's
real compiler), so a renamed function or a broken config shows up here rather than during
the one run on a GPU. Its numbers mean nothing; the assertions check that every part ran
and recorded what the real run reads, and that the verdict line and the sanitizer's reading
of its logs work.
"""
import json
import os
import subprocess
import sys

import pytest
import torch
from gpu_plan import ROOT, case_id, load_gpu_check

SCRIPT = ROOT / 'benchmarks' / 'gpu_check.sh'
gpu_check = load_gpu_check()


@pytest.fixture(scope='module')
def dry_run(tmp_path_factory):
    out = tmp_path_factory.mktemp('gpu_check')
    proc = subprocess.run(['bash', str(SCRIPT), str(out), '--dry-run'], capture_output=True,
                          text=True, timeout=1200, env=dict(os.environ, PYTHON=sys.executable))
    assert proc.returncode == 0, f'{proc.stdout[-6000:]}\n{proc.stderr[-4000:]}'
    return out


def results(out):
    return json.loads((out / 'results.json').read_text())


def test_every_part_ran_in_order(dry_run):
    status = [json.loads(line) for line in (dry_run / 'parts.jsonl').read_text().splitlines()]
    assert [s['part'] for s in status] == list(gpu_check.PARTS)
    assert all(s['rc'] == 0 for s in status), status
    assert sorted(p.name for p in dry_run.iterdir()) == sorted([
        'parts.jsonl', 'results.json', 'ops.json', 'gpu_check.md', 'gpu_check.log'])
    # Only the compile part compiles: later parts run interpreted (a GPU run: from its cache).
    assert [s['part'] for s in status if s.get('compiled')] == ['compile'], status


def test_verdict_is_the_first_line(dry_run):
    first = (dry_run / 'gpu_check.md').read_text().splitlines()[0]
    assert first.startswith('VERDICT: PASS: install skipped (dry run); compile pass; tests pass; '
                            'sanitizer '), first
    assert 'determinism pass | speed: ops pass, backbone pass, maskrcnn pass' in first, first


def test_compile_counts_the_real_runs_variants_and_compiles_the_dry_ones(dry_run):
    compiled = results(dry_run)['compile']
    real = compiled['real_run_variants']
    assert real > 100, compiled        # every shape of cases.SHAPES, three dtypes, three ops
    assert f'the real run compiles {real} kernel variants' in (dry_run / 'gpu_check.log'
                                                               ).read_text()
    # The caps in gpu_check.sh and docs/gpu.md are sized from this count: they quote it.
    assert f'the real run compiles {real} kernel variants' in SCRIPT.read_text()
    assert f'kernel variants ({real})' in (ROOT / 'docs' / 'gpu.md').read_text()
    row, = compiled['rows']
    assert row['failures'] == [] and row['variants'] > 0
    # The count is Triton's: one kernel per variant the specialisation model predicts.
    assert row['kernels'] == row['variants'], row


def test_correctness_tests_ran_every_case_of_the_dry_plan(dry_run):
    rows = results(dry_run)['tests']['rows']
    passed = {r['test'].split('::')[-1] for r in rows if r['outcome'] == 'passed'}
    ops = {f'test_op_triton_matches_torch[{case_id(c)}]'
           for c in gpu_check.op_cases(True)}
    assert ops <= passed, ops - passed
    assert sum(t.startswith('test_backbone_triton_matches_torch') for t in passed) == len(
        gpu_check.backbone_cases(True))
    assert all('error_ratio' in r for r in rows if r['test'].endswith(tuple(ops)))
    assert not [r for r in rows if r['outcome'] == 'failed'], rows
    # The ops' older model-shape comparisons are left to plain `pytest -m cuda`.
    assert not [r for r in rows if 'test_cuda_triton_matches_torch' in r['test']], rows


@pytest.mark.skipif(torch.cuda.is_available(), reason='with a GPU the cuda tests run')
def test_cuda_tests_collected_and_skipped_without_a_gpu(dry_run):
    rows = results(dry_run)['tests']['rows']
    cuda = [r for r in rows if 'gpu_correctness' not in r['test']]
    assert cuda, 'no cuda-marked test was collected'
    assert any('test_cuda_matches_oracle' in r['test'] for r in cuda), 'the oracle tests'
    assert {r['outcome'] for r in cuda} == {'skipped'}


def test_sanitizer_and_determinism_parts(dry_run):
    sanitizer = results(dry_run)['sanitizer']['rows']
    if gpu_check._sanitizer_executable() is None:
        assert sanitizer == [dict(tool='all', status='not run', calls_rc=0,
                                  note=sanitizer[0]['note'])]
        assert 'compute-sanitizer not found' in sanitizer[0]['note']
    log = (dry_run / 'gpu_check.log').read_text()
    assert log.count(': finite') == len(gpu_check.small_cases(True)), log[-3000:]
    determinism = results(dry_run)['determinism']['rows']
    assert [r['outcome'] for r in determinism] == ['passed'] * len(
        gpu_check.determinism_cases(True))


def test_ops_rows(dry_run):
    ops = json.loads((dry_run / 'ops.json').read_text())['rows']
    assert {(r['dtype'], r['op'], r['backend']) for r in ops} == {     # the GPU adds fp16
        (d, op, b) for d in ('fp32', 'bf16') for op in ('sasf', 'scan')
        for b in ('triton', 'torch')}
    assert all(r['fwd_ms'] > 0 and r['fwd_bwd_ms'] > 0 and r['finite'] for r in ops)
    assert all(r['rel_err_vs_torch'] < 1e-2 for r in ops if r['backend'] == 'triton')


@pytest.mark.parametrize('part, models, amps', [
    ('backbone', {'SpatialMamba(custom)'}, {None, 'bf16'}),
    ('maskrcnn', {'Mask R-CNN SpatialMamba-T (ours)', 'Mask R-CNN Swin-T (mmdet)'}, {None}),
])
def test_model_rows(dry_run, part, models, amps):
    measured = results(dry_run)[part]['rows']
    assert {(r['model'], r['amp'], r['mode']) for r in measured} == {
        (m, a, mode) for m in models for a in amps for mode in ('inference', 'train')}
    assert all(r['images_per_s'] > 0 and r['latency_ms'] > 0 and r['peak_mem_mib'] > 0
               and r['finite'] for r in measured)


def test_markdown_has_every_table(dry_run):
    text = (dry_run / 'gpu_check.md').read_text()
    for heading in ('## Compile', '## Correctness', '## compute-sanitizer', '## Determinism',
                    '## Ops', '## T backbone', '## Mask R-CNN'):
        assert heading in text
    assert 'no result' not in text and 'FAIL' not in text and 'TIMED OUT' not in text
    assert '| bf16 | small-a (1, 8, 1, 63) | triton |' in text


def write_parts(outdir, *parts):
    with open(outdir / 'parts.jsonl', 'w') as f:
        for name, rc in parts:
            f.write(json.dumps(dict(part=name, rc=rc, seconds=1, cap=9)) + '\n')


def test_verdict_names_each_parts_outcome(tmp_path):
    tests = gpu_check.JsonRows(str(tmp_path), 'tests', command='pytest')
    tests.add(dict(test='t', when='call', outcome='passed', seconds=1, message=''))
    sanitizer = gpu_check.JsonRows(str(tmp_path), 'sanitizer')
    sanitizer.add(dict(tool='memcheck', status='refused', note='Device not supported'))
    write_parts(tmp_path, ('install', 0), ('compile', 0), ('tests', 0), ('sanitizer', 0))
    line = gpu_check.verdict(str(tmp_path))
    assert line.startswith('VERDICT: INCOMPLETE: install pass; compile pass; tests pass; '
                           'sanitizer not run (Device not supported); determinism not run')
    write_parts(tmp_path, ('install', 0), ('compile', 0), ('tests', 1), ('sanitizer', 0),
                ('determinism', 124), ('ops', 0))
    line = gpu_check.verdict(str(tmp_path))
    assert line.startswith('VERDICT: FAIL: ') and 'tests FAIL (exit 1)' in line, line
    assert 'determinism TIMED OUT | speed: ops pass, backbone not run' in line, line


MEMCHECK_LOG = '''========= COMPUTE-SANITIZER
========= Invalid __global__ read of size 4 bytes
=========     at {kernel}+0x1b0 in /tmp/x.py:120
=========     by thread (3,0,0) in block (0,0,0)
=========
========= ERROR SUMMARY: 1 error
'''


RACECHECK_LOG = '''========= COMPUTE-SANITIZER
========= Error: Race reported between Write access at _state_fusion_tap_sums_kernel+0x140
=========     and Read access at _state_fusion_tap_sums_kernel+0xe0 [4 hazards]
=========
========= RACECHECK SUMMARY: 1 hazard displayed (1 error, 0 warnings)
'''


@pytest.mark.parametrize('log, rc, status, ours', [
    (MEMCHECK_LOG.format(kernel='_selective_scan_fwd_kernel'), 0, 'FAIL', 1),
    (RACECHECK_LOG, 0, 'FAIL', 1),
    ('========= RACECHECK SUMMARY: 0 hazards displayed (0 errors, 0 warnings)\n', 0, 'pass', 0),
    (MEMCHECK_LOG.format(kernel='void at::native::vectorized_elementwise_kernel'), 0, 'pass', 0),
    ('========= ERROR SUMMARY: 0 errors\n', 1, 'FAIL', 0),       # the calls themselves failed
    ('========= Error: Device not supported\n', 9, 'refused', None),
])
def test_sanitizer_logs_are_read_per_kernel(log, rc, status, ours):
    row = gpu_check._sanitizer_row('memcheck', rc, log, 1.0)
    assert row['status'] == status and row.get('errors_in_our_kernels') == ours, row


def test_usage_errors(tmp_path, capsys):
    proc = subprocess.run(['bash', str(SCRIPT), str(tmp_path), '--dryrun'], capture_output=True,
                          text=True)
    assert proc.returncode == 2 and 'unknown option --dryrun' in proc.stderr
    with pytest.raises(SystemExit):
        gpu_check.main(['report', str(tmp_path / 'missing')])
    assert 'is not a directory' in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason='checks the message shown without a GPU')
def test_timings_without_gpu_say_dry_run(tmp_path, capsys):
    with pytest.raises(SystemExit):
        gpu_check.main(['backbone', str(tmp_path)])
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
    out = gpu_check.JsonRows(str(tmp_path), 'backbone', device='cpu', torch='-', triton='-',
                             warmup=0, iters=1)
    failures = gpu_check._time_steps(out, 'flaky', 'torch', FailsInTraining(), 'backbone',
                                     torch.randn(1, 3, 4, 4), None, [None, 'bf16'], 0, 1,
                                     lambda amp, mode: {})
    assert failures == 2
    assert [(r['amp'], r['mode'], r.get('error')) for r in out.rows] == [
        (None, 'inference', None), (None, 'train', 'RuntimeError: boom'),
        ('bf16', 'inference', None), ('bf16', 'train', 'RuntimeError: boom')]
    assert '| flaky | fp32 | train | ERROR: RuntimeError: boom |' in gpu_check.report(
        str(tmp_path))


def test_non_finite_results_count_as_failures():
    nan = torch.tensor([1.0, float('nan')])
    assert gpu_check.all_finite([torch.ones(2), {'a': torch.zeros(1)}])
    assert not gpu_check.all_finite([torch.ones(2), {'a': nan}])
    assert gpu_check.all_finite(torch.tensor([1, 2]))           # integer tensors: nothing to check
