"""The toolkit tests share the tiny configs of the tool tests (``tests/tools/tiny_runs.py``);
pytest puts only ``tests/`` and each test file's own folder on ``sys.path``, so that folder is
added here. The synthetic datasets (``coco_root``, ``ade_root``) are in ``tests/conftest.py``.
"""
import os.path as osp
import sys

sys.path.insert(0, osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'tools'))
