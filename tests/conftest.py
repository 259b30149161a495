"""Shared test set-up: Triton interpreter, NaN-poisoned outputs, replayable seeds, markers.

``TRITON_INTERPRET=1`` must be set before anything imports triton, so CI runs the Triton
kernels' logic on CPU tensors. ``TRITON_F32_DEFAULT=ieee`` keeps TF32 out of comparisons on
GPU. pytest puts this folder on ``sys.path`` (a conftest outside any package), so tests import
``spec_oracle`` and ``model_utils`` by name.

Seeds: the ``seed`` fixture seeds ``torch`` and ``random`` and returns the seed, which tests
put in their assertion messages. By default it is derived from the test's node id, so tests
draw different inputs from each other but the same ones on every run (CI does not fail on one
run in many without a change). To draw fresh inputs, and find inputs a fixed seed misses,
ask for new seeds::

    pytest tests/ops --seed random              # a fresh seed per test and run
    MMSM_TEST_SEED=random bash tools/run_tests.sh
    pytest "tests/ops/test_sasf.py::test_x[...]" --seed 123456   # replay a reported seed

``--seed`` wins over ``MMSM_TEST_SEED``; both take ``random`` or an integer (then every test
uses it). A failing test that used the fixture reports its seed and the command to replay it.
"""
import os
import random
import zlib
from typing import Optional

os.environ.setdefault('TRITON_INTERPRET', '1')
os.environ.setdefault('TRITON_F32_DEFAULT', 'ieee')

import pytest  # noqa: E402
import torch  # noqa: E402

pytest_plugins = ['pytester']  # tests/test_seeds.py runs pytest inside pytest

SEED_ENV = 'MMSM_TEST_SEED'
_SEED = pytest.StashKey[int]()


def pytest_addoption(parser):
    parser.addoption('--seed', metavar='random|N', default=None,
                     help='seed of the `seed` fixture: random (fresh per test) or an integer '
                     f'(every test); default: derived from the test id (also: {SEED_ENV})')


def _seed_choice(config) -> Optional[str]:
    """The requested seed, 'random' or an integer as text; None for per-test fixed seeds."""
    choice = config.getoption('--seed') or os.environ.get(SEED_ENV) or None
    if choice is not None and choice != 'random' and not choice.isdigit():
        raise pytest.UsageError(f'--seed / {SEED_ENV} is {choice!r}: use random, or an integer '
                                '>= 0 to replay a reported seed; leave unset for per-test seeds')
    return choice


def pytest_configure(config):
    config.addinivalue_line('markers', 'cuda: needs a CUDA GPU (skipped without one)')
    config.addinivalue_line('markers', 'slow: long-running; deselect with -m "not slow"')
    _seed_choice(config)


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason='needs a CUDA GPU')
    for item in items:
        if 'cuda' in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def seed(request) -> int:
    """The test's seed (see the module docstring), seeded into torch and random."""
    choice = _seed_choice(request.config)
    if choice is None:
        value = zlib.crc32(request.node.nodeid.encode()) % 2**31
    elif choice == 'random':
        value = random.SystemRandom().randrange(2**31)
    else:
        value = int(choice)
    request.node.stash[_SEED] = value
    torch.manual_seed(value)
    random.seed(value)
    return value


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Add the seed and the replay command to the report of a failing test that used it."""
    outcome = yield
    report = outcome.get_result()
    value = item.stash.get(_SEED, None)
    if report.failed and value is not None:
        report.sections.append(('seed', f'seed {value}; replay: pytest "{item.nodeid}" '
                                        f'--seed {value}'))


@pytest.fixture(autouse=True)
def poison_outputs(monkeypatch):
    """Fill every buffer the ops allocate with NaN, so unwritten elements fail the test."""
    from mmspatialmamba.ops import _utils
    real = _utils.new_output
    monkeypatch.setattr(_utils, 'new_output',
                        lambda *a, **k: real(*a, **k).fill_(float('nan')))


@pytest.fixture(scope='session')
def coco_root(tmp_path_factory) -> str:
    """A 6-image (4 train, 2 val) synthetic COCO set, 64x64, made once per test run."""
    from mmspatialmamba.datasets import make_coco_instances
    root = str(tmp_path_factory.mktemp('coco'))
    make_coco_instances(root, num_train=4, num_val=2, image_size=(64, 64), seed=1)
    return root


@pytest.fixture(scope='session')
def ade_root(tmp_path_factory) -> str:
    """A 6-image (4 train, 2 val) synthetic ADE20K-layout set, 64x64, made once per test run."""
    from mmspatialmamba.datasets import make_ade_semantic
    root = str(tmp_path_factory.mktemp('ade'))
    make_ade_semantic(root, num_train=4, num_val=2, image_size=(64, 64), seed=1)
    return root
