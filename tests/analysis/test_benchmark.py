"""benchmark.py and profile_block.py on the CPU with a tiny arch: JSON, plot, errors."""
import json

import pytest
import torch
from _tools import load_tool

benchmark = load_tool('benchmark')
profile_block = load_tool('profile_block')

TINY = '{"dims": 16, "depths": [1, 1, 1, 1]}'
FAST = ['--device', 'cpu', '--shape', '64', '64', '--warmup', '0', '--iters', '1',
        '--threads', '1']


@pytest.fixture(autouse=True)
def restore_threads():
    """The tools' --threads sets a process-wide value; give the next tests theirs back."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_backbone_json(tmp_path, capsys):
    out = tmp_path / 'bench.json'
    rows = benchmark.main(['--backbone', TINY, *FAST, '--json', str(out)])
    data = json.loads(out.read_text())
    assert data['iters'] == 1 and len(data['rows']) == len(rows) == 2
    assert {r['mode'] for r in data['rows']} == {'inference', 'train'}
    for row in data['rows']:
        assert row['images_per_s'] > 0 and row['latency_ms'] > 0 and row['peak_mem_mib'] > 0
        assert row['backend'] == 'torch' and row['peak_mem_kind'] == 'cpu process peak RSS'
        assert row['shape'] == [64, 64] and row['model'] == 'SpatialMamba(custom)'
    assert 'img/s' in capsys.readouterr().out


def test_classifier_sweep_plot_amp(tmp_path):
    """Two batch sizes make a sweep; --plot writes a PNG; bf16 autocast runs on the CPU."""
    png = tmp_path / 'sweep.png'
    rows = benchmark.main(['--classifier', TINY, *FAST, '--batch-size', '1', '2', '--amp',
                           '--modes', 'inference', '--plot', str(png)])
    assert [r.batch for r in rows] == [1, 2] and all(r.amp for r in rows)
    assert png.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'


@pytest.mark.parametrize('argv, match', [
    (['--backbone', 'tiny', '--device', 'cpu', '--backend', 'triton'], 'needs a CUDA device'),
    (['--backbone', 'tiny', '--shape', '0', '224'], 'must be positive'),
    (['--backbone', 'tiny', '--classifier', 'tiny'], 'exactly one'),
    (['--backbone', 'tiny', '--device', 'cpu', '--plot', 'x.png'], 'sweep'),
], ids=['triton-cpu', 'shape', 'two-models', 'plot-no-sweep'])
def test_usage_errors(argv, match, capsys):
    with pytest.raises(SystemExit):
        benchmark.main(argv)
    assert match in capsys.readouterr().err


@pytest.mark.parametrize('argv, match', [
    (['--backbone', 'huge'], "^error: unknown arch 'huge'"),
    (['missing_config.py'], "^error: config 'missing_config.py' not found"),
], ids=['arch', 'config'])
def test_user_errors(argv, match):
    """User errors end the tool with 'error: ...' (exit status 1), as in every tool."""
    with pytest.raises(SystemExit, match=match):
        benchmark.main([*argv, *FAST])


def test_profile_block(tmp_path):
    out = tmp_path / 'profile.json'
    result = profile_block.main(['--arch', 'tiny', '--stage', '3', '--batch-size', '1',
                                 '--shape', '64', '64', '--device', 'cpu', '--backward',
                                 '--warmup', '0', '--iters', '1', '--threads', '1',
                                 '--json', str(out)])
    parts = {row['part']: row for row in result['parts']}
    assert set(profile_block.PARTS) <= set(parts)
    assert result['map'] == [2, 2] and result['dim'] == 512
    assert parts['sasf_core']['fwd_ms'] > 0 and parts['mlp']['bwd_ms'] > 0
    assert json.loads(out.read_text())['time_kind'] == 'CPU time'


def test_profile_block_errors(capsys):
    with pytest.raises(SystemExit):
        profile_block.main(['--stage', '4', '--device', 'cpu'])
    assert 'stage' in capsys.readouterr().err


def test_profile_block_unknown_arch():
    with pytest.raises(SystemExit, match="^error: unknown arch 'huge'"):
        profile_block.main(['--arch', 'huge', '--device', 'cpu', '--threads', '1'])
