"""Helpers for the tool tests: tiny versions of the shipped configs, running the tools.

A tiny config is a shipped config pointed at the synthetic data by
:func:`mmspatialmamba.datasets.use_synthetic_data` (64 px images, two-image batches, a short
iteration-based schedule), then shrunk: a 4-block backbone (``dims=16``) and thin heads.
Everything else (pipelines' structure, losses, evaluators, hooks) stays the shipped recipe's.
"""
import os
import os.path as osp
import runpy
import subprocess
import sys
from typing import List, Optional

import pytest

from mmengine.config import Config
from mmengine.registry import DefaultScope

from mmspatialmamba.datasets import use_synthetic_data

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TINY_ARCH = dict(dims=16, depths=[1, 1, 1, 1])
TINY_CHANNELS = [16, 32, 64, 128]
IMAGE_SIZE = 64  # the side of the conftest datasets' images


def tiny_config(name: str, data_root: str, work_dir: str, max_iters: int = 2,
                random_flip: bool = True, with_val: bool = True) -> Config:
    """Load ``configs/<name>.py``, point it at ``data_root`` and shrink it to run in seconds.

    Args:
        name: A shipped config name, e.g. 'maskrcnn_spatialmamba_t_coco'.
        data_root: Synthetic data of the config's task (``coco_root`` or ``ade_root``).
        work_dir: The run's work dir.
        max_iters: Training iterations (one checkpoint at the end; validation then too).
        random_flip: Keep RandomFlip (drop it for runs that must replay exactly).
        with_val: Keep the validation loop.
    """
    cfg = Config.fromfile(osp.join(ROOT, 'configs', f'{name}.py'))
    use_synthetic_data(cfg, data_root, image_size=IMAGE_SIZE, iters=max_iters, lr=1e-3)
    cfg.work_dir = work_dir
    cfg.default_hooks.logger.interval = 1  # tests read every step's losses from the log
    model = cfg.model
    model.backbone.update(arch=TINY_ARCH, drop_path_rate=0.0)
    if cfg.default_scope == 'mmdet':
        model.neck.update(in_channels=TINY_CHANNELS, out_channels=32)
        model.rpn_head.update(in_channels=32, feat_channels=32)
        model.roi_head.bbox_roi_extractor.out_channels = 32
        model.roi_head.mask_roi_extractor.out_channels = 32
        model.roi_head.bbox_head.update(in_channels=32, fc_out_channels=64)
        model.roi_head.mask_head.update(in_channels=32, conv_out_channels=32)
    else:
        model.decode_head.update(in_channels=TINY_CHANNELS, channels=32)
        model.auxiliary_head.update(in_channels=TINY_CHANNELS[2], channels=16)
    if not random_flip:
        for split in ('train', 'val', 'test'):
            dataset = cfg[f'{split}_dataloader'].dataset
            dataset.pipeline = [t for t in dataset.pipeline if t['type'] != 'RandomFlip']
    if not with_val:
        cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
    return cfg


def dump(cfg: Config, path: str) -> str:
    """Write ``cfg`` to ``path`` (a .py config file) and return the path."""
    cfg.dump(path)
    return path


def run_script(tool: str, args: List[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Run ``tools/<tool>.py`` in this process as ``python tools/<tool>.py ARGS`` would.

    The default scope a Runner sets (e.g. 'mmdet') is undone with ``monkeypatch``, so later
    tests build from the registries they name: mmengine 0.10.7 keeps its current scope as the
    newest entry of ``DefaultScope._instance_dict``.
    """
    monkeypatch.setattr(DefaultScope, '_instance_dict', DefaultScope._instance_dict.copy())
    monkeypatch.setattr(sys, 'argv', [f'{tool}.py', *args])
    runpy.run_path(osp.join(ROOT, 'tools', f'{tool}.py'), run_name='__main__')


def assert_one_line_error(tool: str, args: List[str], message: str,
                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Check that ``tools/<tool>.py ARGS`` reports bad input as the tools do.

    Without ``--debug`` the tool ends with ``SystemExit('error: ...')`` on one line, matching
    ``message`` (Python prints that line to stderr, no traceback, and exits with status 1);
    with ``--debug`` the ``BadInputError`` itself propagates (Python prints its traceback).
    """
    from mmspatialmamba.errors import BadInputError
    with pytest.raises(SystemExit, match=f'^error: .*{message}') as exit_:
        run_script(tool, args, monkeypatch)
    assert isinstance(exit_.value.code, str) and '\n' not in exit_.value.code
    with pytest.raises(BadInputError, match=message):
        run_script(tool, [*args, '--debug'], monkeypatch)


def run_tool(args: List[str], cwd: Optional[str] = None, timeout: int = 240,
             check: bool = True) -> subprocess.CompletedProcess:
    """Run ``python <args>`` (a tool under tools/) in a fresh process with 1 thread per op."""
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get('OMP_NUM_THREADS', '1'),
               PYTHONWARNINGS='ignore')
    result = subprocess.run([sys.executable, *args], cwd=cwd or ROOT, env=env,
                            capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f'{" ".join(args)} failed ({result.returncode}):\n'
                             f'{result.stdout[-3000:]}\n{result.stderr[-5000:]}')
    return result
