"""ONNX export: standard operators only, ONNX Runtime equal to PyTorch, the tool's checks."""
import os
import subprocess
import sys

import pytest
import torch

onnx = pytest.importorskip('onnx')
pytest.importorskip('onnxruntime')

from mmspatialmamba.deploy import onnx_export  # noqa: E402
from mmspatialmamba.models import SpatialMamba  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOOL = os.path.join(ROOT, 'tools', 'export_onnx.py')


def test_backbone_exports_standard_ops_and_matches_pytorch(tmp_path, seed):
    """A small backbone at an odd size (rows and cols not multiples of 32): every op in the
    default ONNX domain, and ONNX Runtime within float32 rounding of PyTorch on every stage."""
    model = SpatialMamba(arch=dict(dims=16, depths=[1, 1, 2, 1]), backend='torch').eval()
    for p in model.parameters():                 # away from the ones/zeros initialisation
        p.data.add_(0.05 * torch.randn_like(p))
    images = torch.randn(2, 3, 72, 100)
    path = str(tmp_path / 'backbone.onnx')
    names = onnx_export.export(model, images, path)
    report = onnx_export.check(path, model, images, repeats=1)
    assert names == ['out0', 'out1', 'out2', 'out3']
    assert report.nonstandard_ops == []
    assert report.output_shapes == [(2, 16, 18, 25), (2, 32, 9, 13), (2, 64, 5, 7),
                                    (2, 128, 3, 4)]
    assert report.max_rel_error < 1e-5, f'seed {seed}: {report}'


def test_nonstandard_ops_are_reported(tmp_path):
    """A node in a custom domain (what a CUDA-extension export would produce) is named."""
    from onnx import TensorProto, helper
    node = helper.make_node('SelectiveScan', ['x'], ['y'], domain='mamba')
    graph = helper.make_graph([node], 'g',
                              [helper.make_tensor_value_info('x', TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info('y', TensorProto.FLOAT, [1])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 18),
                                                    helper.make_opsetid('mamba', 1)])
    path = str(tmp_path / 'custom.onnx')
    onnx.save(model, path)
    assert onnx_export.nonstandard_ops(path) == ['mamba::SelectiveScan']


def test_tool_exports_upernet_logits(tmp_path):
    """The shipped UperNet config end to end: logits at the input size, error printed and
    within 1e-4, exit status 0."""
    out = tmp_path / 'upernet.onnx'
    result = subprocess.run(
        [sys.executable, TOOL, 'configs/upernet_spatialmamba_t_ade20k.py', '--shape', '64', '64',
         '--out', str(out), '--repeats', '1'], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert 'exported segmentor logits at 1x3x64x64' in result.stdout
    assert 'outputs 1x150x64x64' in result.stdout
    assert 'ONNX Runtime vs PyTorch: max rel. error' in result.stdout
    assert out.stat().st_size > 1e6


def test_tool_fails_when_error_exceeds_tolerance(tmp_path, monkeypatch, capsys):
    """A result outside the tolerance (or a custom-domain operator) makes the tool exit 1
    with the reason."""
    sys.path.insert(0, os.path.join(ROOT, 'tools'))
    try:
        import export_onnx
    finally:
        sys.path.pop(0)
    bad = onnx_export.CheckReport(max_rel_error=3e-3, max_abs_error=1.0, torch_ms=1.0,
                                  ort_ms=1.0, output_shapes=[(1, 16, 8, 8)],
                                  nonstandard_ops=['mamba::SelectiveScan'])
    monkeypatch.setattr(onnx_export, 'export', lambda *a, **k: ['out0'])
    monkeypatch.setattr(onnx_export, 'check', lambda *a, **k: bad)
    monkeypatch.chdir(ROOT)
    status = export_onnx.main(['configs/upernet_spatialmamba_t_ade20k.py', '--shape', '64', '64',
                               '--out', str(tmp_path / 'x.onnx'), '--backbone-only'])
    err = capsys.readouterr().err
    assert status == 1
    assert 'relative error 3.00e-03 exceeds 1e-04' in err
    assert 'operators outside the standard ONNX domain: mamba::SelectiveScan' in err


@pytest.mark.parametrize('argv, message', [
    (['--shape', '16', '64'], '--shape must be at least 32 32'),
    (['--shape', '64', '64', '--batch-size', '0'], '--batch-size must be >= 1'),
])
def test_tool_rejects_bad_arguments(tmp_path, argv, message):
    result = subprocess.run([sys.executable, TOOL, 'configs/upernet_spatialmamba_t_ade20k.py',
                             '--out', str(tmp_path / 'x.onnx'), *argv], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert message in result.stderr


def test_tool_reports_a_missing_config_in_one_line(tmp_path):
    result = subprocess.run([sys.executable, TOOL, 'configs/no_such_config.py', '--shape', '64',
                             '64', '--out', str(tmp_path / 'x.onnx')], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith('error: config')
    assert 'Traceback' not in result.stderr
