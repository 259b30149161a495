"""The compile check leaves the process as it found it: Triton's driver settings,
``JITFunction.run``, the ops' allocator, sizing and launch-device hooks and the environment
come back after a check, also when a case or a compilation raises (the package is installed
for users, whose process must launch its real kernels afterwards).

Runs in a subprocess: the compiler needs ``TRITON_INTERPRET=0``, which this suite does not
have (conftest.py).
"""
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = '''
import io, os, sys
os.environ['TRITON_CACHE_DIR'] = sys.argv[1]
import torch._dynamo  # the ops' first call imports it, which sets TORCHINDUCTOR_CACHE_DIR
from triton.runtime.driver import driver
from triton.runtime.jit import JITFunction
from mmspatialmamba.ops import _utils
from mmspatialmamba.ops.compile_check import cases
from mmspatialmamba.ops.compile_check.compiler import compiling_for
from mmspatialmamba.ops.compile_check.report import Selection, check


def state():
    return dict(environ=dict(os.environ), driver=dict(vars(driver)), run=JITFunction.run,
                new_output=_utils.new_output, gpu_capability=_utils.gpu_capability,
                launch_device=_utils.launch_device)


def changed(before):
    after = state()
    return sorted(k for k in before if before[k] != after[k])


before = state()
failures = check([Selection([90], ['fusion'], ['cls4'], ['fp32'])], io.StringIO())
assert failures == 0, failures
print('after a check:', changed(before))


def broken(shape, dtype):
    raise RuntimeError('a case that raises')


cases.OPS['broken'] = broken
try:
    check([Selection([80], ['broken'], ['cls4'], ['fp32'])], io.StringIO())
except RuntimeError:
    pass
print('after a case raised:', changed(before))
try:
    with compiling_for(86):
        raise RuntimeError('a compilation that raises')
except RuntimeError:
    pass
print('after a compilation raised:', changed(before))
'''


def test_check_restores_the_process(tmp_path):
    proc = subprocess.run([sys.executable, '-c', SCRIPT, str(tmp_path)], capture_output=True,
                          text=True, cwd=ROOT, timeout=600,
                          env={**os.environ, 'TRITON_INTERPRET': '0'})
    assert proc.returncode == 0, proc.stdout + proc.stderr[-4000:]
    assert proc.stdout.splitlines() == ['after a check: []', 'after a case raised: []',
                                        'after a compilation raised: []'], proc.stdout
