"""The Triton releases users have: the oldest supported one and the GPU check machine's
compile every kernel (the pinned one: ``tests/ops/test_compile_check.py``); an older one is
refused with the fix, never passed over in silence.

Each side release is installed once with pip into ``$MMSM_TRITON_CACHE/triton-<version>``
(default ``~/.cache/mmspatialmamba``, outside the clone; about 600 MB and 10 s each), then
``tools/compile_check.py --quick --strict`` runs in a subprocess with it on ``PYTHONPATH``,
ahead of the environment's own Triton. No GPU is needed.
"""
import os
import re
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
import triton

from mmspatialmamba.ops import _fallback, _validate, dispatch
from mmspatialmamba.ops.compile_check.fake_cuda import fake_cuda

ROOT = Path(__file__).resolve().parents[2]
SIDE_TRITONS = {
    '.'.join(map(str, _validate.MIN_TRITON)) + '.0': 'the oldest supported',
    '3.6.0': 'the one PyTorch 2.11 brings',
}
CACHE = Path(os.environ.get('MMSM_TRITON_CACHE', Path.home() / '.cache' / 'mmspatialmamba'))


def side_triton(version: str) -> Path:
    """The folder holding ``triton==version``, installed there first if need be."""
    target = CACHE / f'triton-{version}'
    if (target / 'triton' / '__init__.py').is_file():
        return target
    partial = CACHE / f'triton-{version}.partial'
    shutil.rmtree(partial, ignore_errors=True)
    proc = subprocess.run([sys.executable, '-m', 'pip', 'install', '--quiet', '--no-deps',
                           '--no-compile', '--disable-pip-version-check', '--target',
                           str(partial), f'triton=={version}'], capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, (f'pip could not install triton=={version} into {partial} '
                                  f'(network?): {proc.stderr[-2000:]}; install it there by '
                                  'hand, or set MMSM_TRITON_CACHE to a folder that has it')
    partial.rename(target)
    return target


@pytest.mark.parametrize('version', list(SIDE_TRITONS), ids=list(SIDE_TRITONS.values()))
def test_every_kernel_compiles_under_side_triton(version):
    env = {**os.environ, 'TRITON_INTERPRET': '0',
           'PYTHONPATH': os.pathsep.join(filter(None, [str(side_triton(version)),
                                                       os.environ.get('PYTHONPATH')]))}
    proc = subprocess.run([sys.executable, 'tools/compile_check.py', '--quick', '--strict'],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=900)
    report = proc.stdout + proc.stderr
    assert f'triton {version},' in report, report[-3000:]      # the side Triton ran
    assert proc.returncode == 0 and '0 failed (strict)' in report, report[-6000:]
    assert 'SUMMARY=True' in report, report[-3000:]            # the chunked scan compiled


def test_setup_py_states_the_floor_the_ops_check():
    bound = re.search(r"'triton>=([\d.]+)'", (ROOT / 'setup.py').read_text())
    assert bound, "setup.py's 'triton' extra has no lower bound"
    assert tuple(int(p) for p in bound.group(1).split('.')) == _validate.MIN_TRITON


@pytest.fixture
def old_triton(monkeypatch):
    """Triton reports the release just below the floor; the one warning is not yet given."""
    major, minor = _validate.MIN_TRITON
    monkeypatch.setattr(triton, '__version__', f'{major}.{minor - 1}.0')
    monkeypatch.setattr(dispatch, '_warned', set(), raising=False)


def test_old_triton_runs_the_pytorch_path_with_one_warning_naming_the_fix(old_triton):
    x = fake_cuda((2, 3, 4))
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter('always')
        assert dispatch.resolve_backend(None, x) == ('torch', False)
        assert dispatch.resolve_backend(None, x) == ('torch', False)
    messages = [str(w.message) for w in record if w.category is _fallback.KernelFallbackWarning]
    assert len(messages) == 1, messages
    floor = '.'.join(map(str, _validate.MIN_TRITON))
    for part in (f'triton>={floor}', triton.__version__, "backend='torch'",
                 'MMSM_BACKEND=torch'):
        assert part in messages[0], messages[0]
    assert dispatch.resolve_backend(None, torch.zeros(2)) == ('torch', False)   # CPU: silent


def test_old_triton_refuses_a_forced_triton_backend(old_triton, monkeypatch):
    major, minor = _validate.MIN_TRITON
    with pytest.raises(RuntimeError, match=rf'need triton>={major}\.{minor}, found '
                                           rf'{major}\.{minor - 1}\.0'):
        dispatch.resolve_backend('triton', fake_cuda((2, 3, 4)))
    monkeypatch.setenv(_validate.ENV_VAR, 'triton')
    with pytest.raises(RuntimeError, match='pip install'):
        dispatch.resolve_backend(None, fake_cuda((2, 3, 4)))


def test_the_triton_version_is_read_only_where_it_decides(monkeypatch):
    """CPU tensors on the automatic choice, and a 'torch' backend, never look Triton up."""
    def looked_up():
        raise AssertionError('old_triton_message consulted')
    monkeypatch.setattr(_validate, 'old_triton_message', looked_up)
    monkeypatch.delenv(_validate.ENV_VAR, raising=False)
    assert dispatch.resolve_backend(None, torch.zeros(2)) == ('torch', False)
    assert dispatch.resolve_backend('torch', fake_cuda((2, 3, 4))) == ('torch', False)
    monkeypatch.setenv(_validate.ENV_VAR, 'torch')
    assert dispatch.resolve_backend(None, fake_cuda((2, 3, 4))) == ('torch', False)


def test_supported_triton_picks_the_kernels_for_cuda_tensors():
    assert _validate.old_triton_message() is None
    assert dispatch.resolve_backend(None, fake_cuda((2, 3, 4))) == ('triton', True)


NO_TRITON = r'''
import sys, warnings
class NoTriton:  # an environment without Triton (a CPU-only install without the extra)
    def find_spec(self, name, path=None, target=None):
        if name == 'triton' or name.startswith('triton.'):
            raise ImportError('No module named ' + repr(name))
sys.meta_path.insert(0, NoTriton())
import torch
from mmspatialmamba.models import SpatialMamba
from unittest import mock
from mmspatialmamba.ops import KernelFallbackWarning, dispatch
model = SpatialMamba(arch=dict(dims=16, depths=[1, 1, 1, 1]), out_indices=(3,))
out = model(torch.randn(1, 3, 64, 64))[0]
assert out.shape == (1, 128, 2, 2) and torch.isfinite(out).all(), out.shape
with warnings.catch_warnings(record=True) as record:
    warnings.simplefilter('always')
    assert dispatch.resolve_backend(None, mock.Mock(is_cuda=True)) == ('torch', False)
assert [w.category for w in record] == [KernelFallbackWarning], record
assert 'not installed' in str(record[0].message), record[0].message
assert 'triton' not in sys.modules
print('ok')
'''


def test_the_pytorch_path_needs_no_triton():
    """Without Triton (a CPU install without the ``triton`` extra) the package imports, the
    backbone runs on the CPU, and CUDA tensors would take the PyTorch path with the fix named."""
    env = {k: v for k, v in os.environ.items() if k != 'TRITON_INTERPRET'}
    proc = subprocess.run([sys.executable, '-c', NO_TRITON], capture_output=True, text=True,
                          timeout=300, env=env, cwd=ROOT.parent)
    assert proc.returncode == 0 and proc.stdout.strip().endswith('ok'), proc.stderr[-3000:]
