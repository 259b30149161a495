"""Fixtures for the tool tests: tiny synthetic datasets, made once per test run."""
import pytest

from mmspatialmamba.datasets import make_ade_semantic, make_coco_instances


@pytest.fixture(scope='session')
def coco_root(tmp_path_factory) -> str:
    """A 6-image (4 train, 2 val) synthetic COCO set, 64x64."""
    root = str(tmp_path_factory.mktemp('coco'))
    make_coco_instances(root, num_train=4, num_val=2, image_size=(64, 64), seed=1)
    return root


@pytest.fixture(scope='session')
def ade_root(tmp_path_factory) -> str:
    """A 6-image (4 train, 2 val) synthetic ADE20K-layout set, 64x64."""
    root = str(tmp_path_factory.mktemp('ade'))
    make_ade_semantic(root, num_train=4, num_val=2, image_size=(64, 64), seed=1)
    return root
