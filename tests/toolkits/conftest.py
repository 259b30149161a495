"""Fixtures for the toolkit tests, shared with the tool tests in ``tests/tools``.

pytest puts only ``tests/`` and each test file's own folder on ``sys.path``; the tiny configs
(``tests/tools/tiny_runs.py``) and the synthetic datasets (``coco_root``, ``ade_root`` of
``tests/tools/conftest.py``) are taken from there rather than written twice.
"""
import os.path as osp
import runpy
import sys

TOOL_TESTS = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'tools')
sys.path.insert(0, TOOL_TESTS)

_tool_fixtures = runpy.run_path(osp.join(TOOL_TESTS, 'conftest.py'))
coco_root = _tool_fixtures['coco_root']
ade_root = _tool_fixtures['ade_root']
