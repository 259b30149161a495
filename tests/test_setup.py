"""The set-up script names the failing step and the fix."""
import os
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_setup_reports_failing_step_and_fix():
    env = dict(os.environ, PYTHON='/nonexistent/python3')
    result = subprocess.run(['bash', os.path.join(ROOT, 'tools', 'setup_env.sh')], env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert '[setup] FAILED at step: check python (/nonexistent/python3)' in result.stderr
    assert 'set PYTHON=/path/to/python3 and run again' in result.stderr
