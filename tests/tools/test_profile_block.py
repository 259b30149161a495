"""tools/profile_block.py times the model's own forward, through its named profiler ranges.

The block's forward runs every step inside one range of ``BLOCK_PARTS``; the tool reads them.
These tests fail when the two drift apart: a range missing, renamed or run twice, or a costly
step left outside every range (the parts would no longer add up to the block's time).
"""
import contextlib
import os.path as osp
import runpy
from types import SimpleNamespace

import pytest
import torch
from tiny_runs import ROOT
from torch.autograd import DeviceType
from torch.profiler import profile

from mmspatialmamba.models.layers import blocks, profiling

TOOL = runpy.run_path(osp.join(ROOT, 'tools', 'profile_block.py'))
# stage 0 of tiny (C=64, D=128) on a 16x16 map: each step costs tens of microseconds or more
ARGS = ['--arch', 'tiny', '--stage', '0', '--batch-size', '2', '--shape', '64', '64',
        '--device', 'cpu', '--threads', '1', '--warmup', '2', '--iters', '3']


def test_parts_add_up_to_the_block(capsys):
    result = TOOL['main'](ARGS + ['--backward'])
    rows = {row['part']: row for row in result['parts']}
    assert list(rows)[:len(profiling.BLOCK_PARTS)] == list(profiling.BLOCK_PARTS)
    assert all(rows[part]['fwd_ms'] > 0 for part in profiling.BLOCK_PARTS)
    block_ms = sum(row['fwd_ms'] for row in rows.values())
    other = rows[TOOL['OTHER']]['fwd_ms']
    assert 0 <= other < 0.2 * block_ms, (other, block_ms, capsys.readouterr().out)
    for part in ('in_proj', 'sasf_core', 'out_proj', 'mlp'):  # their backward is charged too
        assert rows[part]['bwd_ms'] > 0, part


def test_a_missing_range_stops_the_tool(monkeypatch):
    real = profiling.profile_range

    def without_mlp(part):
        return contextlib.nullcontext() if part == 'mlp' else real(part)

    monkeypatch.setattr(blocks, 'profile_range', without_mlp)
    with pytest.raises(RuntimeError, match=r"\{'mlp': 0\}.*BLOCK_PARTS"):
        TOOL['main'](ARGS)


def test_gpu_annotations_of_the_ranges_are_not_counted_twice():
    """With CUDA activity each range is listed twice, on the CPU (with the device time of
    its kernels) and as a GPU annotation; only the first counts."""
    def event(name, device_type, device_us):
        return SimpleNamespace(name=profiling.RANGE_PREFIX + name, device_type=device_type,
                               device_time_total=device_us, cpu_time_total=0.0,
                               sequence_nr=-1, cpu_parent=None)

    events = [event('block', DeviceType.CPU, 6.0), event('block', DeviceType.CUDA, 6.5),
              event('mlp', DeviceType.CPU, 5.0), event('mlp', DeviceType.CUDA, 5.5)]
    fwd, _, calls = TOOL['attribute'](events, 'cuda')
    assert calls == {'mlp': 1}
    assert fwd['mlp'] == 5.0 and fwd[TOOL['OTHER']] == 1.0


def test_ranges_record_only_under_a_profiler():
    assert profiling.profile_range('mlp') is profiling.profile_range('ln_1')  # shared no-op
    block = blocks.SpatialMambaBlock(16).eval()
    x = torch.randn(1, 5, 7, 16)
    with torch.no_grad(), profile() as prof:
        block(x)
    names = [ev.name for ev in prof.events() if ev.name.startswith(profiling.RANGE_PREFIX)]
    assert names == [profiling.RANGE_PREFIX + part for part in profiling.BLOCK_PARTS]
