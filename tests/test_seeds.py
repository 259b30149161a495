"""The ``seed`` fixture of tests/conftest.py: fixed per test by default, fresh on request.

Each case runs pytest in-process (pytester) on two small tests that use the fixture, with a
copy of tests/conftest.py, and reads back the seeds they got.
"""
import os.path as osp

import pytest

CONFTEST = osp.join(osp.dirname(osp.abspath(__file__)), 'conftest.py')
TESTS = """
import random
import torch

def test_a(seed):
    record('a', seed, torch.randint(2**30, ()).item(), random.random())

def test_b(seed):
    record('b', seed, torch.randint(2**30, ()).item(), random.random())

def test_fails(seed):
    assert seed < 0, f'seed {seed}'

def record(name, *values):
    with open('seeds.txt', 'a') as f:
        f.write(' '.join(map(str, (name,) + values)) + '\\n')
"""


@pytest.fixture
def suite(pytester):
    pytester.makeconftest(open(CONFTEST).read())
    pytester.makepyfile(test_seeded=TESTS)
    return pytester


def _run(pytester, *args) -> dict:
    """Run the suite; returns ``{test: (seed, torch draw, random draw)}``."""
    seeds = pytester.path / 'seeds.txt'
    if seeds.exists():
        seeds.unlink()
    result = pytester.runpytest_inprocess('-p', 'no:cacheprovider', *args)
    result.assert_outcomes(passed=2, failed=1)
    rows = [line.split() for line in seeds.read_text().splitlines()]
    return {name: (int(seed), int(draw), float(uniform)) for name, seed, draw, uniform in rows}


def test_seeds_are_fixed_per_test_by_default(suite, monkeypatch):
    monkeypatch.delenv('MMSM_TEST_SEED', raising=False)
    first, second = _run(suite), _run(suite)
    assert first == second
    assert first['a'][0] != first['b'][0] and first['a'][1:] != first['b'][1:]


@pytest.mark.parametrize('how', ['option', 'env'])
def test_random_draws_fresh_seeds(how, suite, monkeypatch):
    monkeypatch.delenv('MMSM_TEST_SEED', raising=False)
    default = _run(suite)
    if how == 'env':
        monkeypatch.setenv('MMSM_TEST_SEED', 'random')
    args = ('--seed', 'random') if how == 'option' else ()
    first, second = _run(suite, *args), _run(suite, *args)
    assert len({first['a'][0], second['a'][0], default['a'][0]}) == 3


def test_integer_seed_replays(suite, monkeypatch):
    monkeypatch.setenv('MMSM_TEST_SEED', 'random')  # the option wins over the environment
    replay = _run(suite, '--seed', '123456')
    assert replay['a'] == replay['b'] and replay['a'][0] == 123456


def test_failure_reports_seed_and_replay_command(suite, monkeypatch):
    monkeypatch.delenv('MMSM_TEST_SEED', raising=False)
    result = suite.runpytest_inprocess('-p', 'no:cacheprovider', '-k', 'fails')
    result.assert_outcomes(failed=1)
    message = next(line for line in result.outlines if 'AssertionError: seed' in line)
    value = int(message.rsplit(' ', 1)[1])
    result.stdout.fnmatch_lines([f'seed {value}; replay: pytest "test_seeded.py::test_fails" '
                                 f'--seed {value}'])


def test_bad_seed_is_a_usage_error(suite, monkeypatch):
    monkeypatch.setenv('MMSM_TEST_SEED', 'often')
    result = suite.runpytest_inprocess('-p', 'no:cacheprovider')
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--seed / MMSM_TEST_SEED is 'often': use random*"])
