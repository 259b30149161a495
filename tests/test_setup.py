"""The set-up script names the failing step and the fix, and shows the mmcv build's progress."""
import os
import subprocess
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_setup_reports_failing_step_and_fix():
    env = dict(os.environ, PYTHON='/nonexistent/python3')
    result = subprocess.run(['bash', os.path.join(ROOT, 'tools', 'setup_env.sh')], env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert '[setup] FAILED at step: check python (/nonexistent/python3)' in result.stderr
    assert 'set PYTHON=/path/to/python3 and run again' in result.stderr


PROGRESS = os.path.join(ROOT, 'tools', 'build_progress.sh')
# Lines as `pip wheel -v` writes them while ninja compiles mmcv (paths shortened).
NINJA_LOG = """\
  running build_ext
  Emitting ninja build file /tmp/pip-wheel-x/mmcv/build/temp.linux-x86_64-cpython-311/build.ninja...
  Compiling objects...
  [1/77] c++ -MMD -MF /tmp/b/mmcv/ops/csrc/pytorch/active_rotated_filter.o.d -pthread -c x.cpp
  /tmp/torch/include/c10/core/TensorImpl.h:2093:29: warning: default member initializers for \
bit-fields only available with -std=c++20 [-Wc++20-extensions]
  [2/77] c++ -MMD -MF /tmp/b/mmcv/ops/csrc/pytorch/assign_score_withk.o.d -pthread -c y.cpp
  x = a[3/4];
  [12/77] c++ -MMD -MF /tmp/b/mmcv/ops/csrc/pytorch/nms.o.d -pthread -c z.cpp
"""


def _bash(script: str, timeout: int = 60) -> subprocess.CompletedProcess:
    return subprocess.run(['bash', '-c', f'set -euo pipefail; source {PROGRESS}; {script}'],
                          capture_output=True, text=True, timeout=timeout)


def test_progress_line_reads_ninja_units_from_build_log(tmp_path):
    log = tmp_path / 'build.log'
    log.write_text(NINJA_LOG)
    result = _bash(f'progress_line mmcv {log} 192')
    assert result.stdout.strip() == (f'[setup] mmcv: 12/77 units, 3m12s elapsed, about 17m20s '
                                     f'left at this rate (log: {log})')
    log.write_text(NINJA_LOG.split('  [1/77]')[0])
    result = _bash(f'progress_line mmcv {log} 7')
    assert 'preparing the build (no unit compiled yet), 7s elapsed' in result.stdout
    log.write_text(NINJA_LOG + '  [77/77] c++ last.cpp\n')
    assert 'mmcv: 77/77 units, 6m40s elapsed, linking' in _bash(
        f'progress_line mmcv {log} 400').stdout


def test_run_with_progress_reports_while_building_and_returns_status(tmp_path):
    log = tmp_path / 'build.log'
    build = ' '.join(f'echo "[{i}/3] c++ unit{i}.cpp"; sleep 1;' for i in range(1, 4))
    result = _bash(f"run_with_progress mmcv {log} 1 bash -c '{build}'")
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert any('/3 units' in line and f'(log: {log})' in line for line in lines), lines
    assert lines[-1].startswith('[setup] mmcv: finished in ') and 'exit status 0' in lines[-1]
    assert log.read_text().count('c++ unit') == 3  # the build's own output goes to the log
    failed = _bash(f"run_with_progress mmcv {log} 5 bash -c 'echo oops; exit 3'")
    assert failed.returncode == 3 and 'exit status 3' in failed.stderr


def test_stopping_setup_stops_the_build(tmp_path):
    """A killed set-up leaves no compiler running (the build has its own process group)."""
    pid_file, log = tmp_path / 'build.pid', tmp_path / 'build.log'
    script = (f'set -euo pipefail; source {PROGRESS}; '
              f"run_with_progress mmcv {log} 1 bash -c 'echo $$ > {pid_file}; sleep 300'")
    setup = subprocess.Popen(['bash', '-c', script], stderr=subprocess.PIPE, text=True)
    for _ in range(100):
        if pid_file.exists() and pid_file.read_text().strip():
            break
        time.sleep(0.1)
    build_pid = int(pid_file.read_text())
    setup.terminate()
    assert setup.wait(timeout=30) == 130
    assert 'mmcv: build stopped' in setup.stderr.read()
    for _ in range(50):
        if not os.path.exists(f'/proc/{build_pid}'):
            break
        time.sleep(0.1)
    assert not os.path.exists(f'/proc/{build_pid}'), 'the build outlived the set-up'
