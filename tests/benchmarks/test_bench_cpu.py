"""``benchmarks/bench_cpu.py``: ours beside Swin-T at a tiny size, without the ONNX column.

Its numbers mean nothing here (one round, 64x64). The test checks that both models are built
(mmdet's Swin-T from its config), that both passes run, and that the table and the JSON carry
positive times and ratios consistent with them, so a renamed config or a broken pass fails in
CI rather than when someone benchmarks. The ONNX Runtime column's export and run are what
``tests/deploy`` tests.
"""
import importlib.util
import json
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]


def load_bench():
    spec = importlib.util.spec_from_file_location('bench_cpu', ROOT / 'benchmarks' / 'bench_cpu.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_bench(tmp_path, *args) -> dict:
    """One round at one shape, one thread, no ONNX column; the JSON row. Restores the
    thread count the benchmark sets."""
    threads = torch.get_num_threads()
    try:
        load_bench().main(['--repeats', '1', '--threads', '1', '--no-onnx',
                           '--json', str(tmp_path / 'cpu.json'), *args])
    finally:
        torch.set_num_threads(threads)
    (row,) = json.loads((tmp_path / 'cpu.json').read_text())['rows']
    return row


def test_bench_cpu_rows(tmp_path, capsys):
    row = run_bench(tmp_path, '--shapes', '2x64')
    assert row['input'] == '2x3x64x64'
    for key in ('fwd_ours_ms', 'fwd_swin_ms', 'train_ours_ms', 'train_swin_ms'):
        assert row[key] > 0, key
    assert row['fwd_ratio'] == pytest.approx(row['fwd_ours_ms'] / row['fwd_swin_ms'])
    assert row['train_ratio'] == pytest.approx(row['train_ours_ms'] / row['train_swin_ms'])
    assert row['ort_ours_fwd_ms'] is None
    assert '2x3x64x64' in capsys.readouterr().out


def test_bench_cpu_split(tmp_path, capsys):
    """``--split``: both models' passes spend time in matrix products and convolutions (a
    renamed profiler key would give 0), and the table prints the goal's allowance."""
    row = run_bench(tmp_path, '--shapes', '1x64', '--split')
    for mode in ('fwd', 'train'):
        for name in ('ours', 'swin'):
            assert 0 < row[f'{mode}_{name}_dense_ms'] < 10 * row[f'{mode}_{name}_ms'], (mode, name)
    out = capsys.readouterr().out
    assert 'rest the goal allows' in out
    allowed = 1.3 * row['train_swin_ms'] - row['train_ours_dense_ms']
    assert f'{allowed:20.0f}' in out


def test_parse_shape():
    bench = load_bench()
    assert bench.parse_shape('1x224') == (1, 224)
    assert bench.parse_shape('2X96') == (2, 96)
    for bad in ('224', '1x', '0x224', 'axb'):
        with pytest.raises(Exception, match='must be BATCHxSIDE'):
            bench.parse_shape(bad)
