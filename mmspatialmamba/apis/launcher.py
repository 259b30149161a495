"""Distributed launch for the tools, including multi-process runs on CPUs (torchrun + gloo).

mmengine 0.10.7 assumes CUDA for distributed runs; :func:`setup_launcher` works around that
(see its docstring and docs/stack.md). It starts the process group itself, so it runs just
before the Runner is built.
"""
import logging

import torch
import torch.distributed as dist
from mmengine.config import Config, ConfigDict
from mmengine.logging import print_log


def _replace_syncbn(node: object) -> int:
    """Replace ``type='SyncBN'`` by ``'BN'`` everywhere in a config tree; count replacements."""
    count = 0
    if isinstance(node, dict):
        if node.get('type') == 'SyncBN':
            node['type'] = 'BN'
            count += 1
        for value in node.values():
            count += _replace_syncbn(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            count += _replace_syncbn(value)
    return count


def setup_launcher(cfg: Config, launcher: str) -> None:
    """Set ``cfg.launcher`` and, for a multi-process run without CUDA, make it work on CPU.

    mmengine 0.10.7 assumes CUDA for distributed runs: its ``init_dist`` calls
    ``torch.cuda.set_device``, the Runner gives DDP ``device_ids=[LOCAL_RANK]``, and SyncBN
    only works on GPU. Without CUDA and with ``launcher='pytorch'`` (torchrun) this creates
    the gloo process group itself (mmengine then skips ``init_dist``), wraps with
    ``device_ids=None`` and turns SyncBN into BN in the model config.

    Raises:
        ValueError: For 'slurm' or 'mpi' without CUDA (use torchrun), or an unknown launcher.
    """
    if launcher not in ('none', 'pytorch', 'slurm', 'mpi'):
        raise ValueError(f"unknown launcher {launcher!r}; use 'none', 'pytorch', 'slurm' or "
                         "'mpi'")
    cfg.launcher = launcher
    if launcher == 'none' or torch.cuda.is_available():
        return
    if launcher != 'pytorch':
        raise ValueError(f'--launcher {launcher} needs CUDA; for a multi-process CPU run use '
                         'torchrun: bash tools/dist_train.sh CONFIG NPROC (--launcher pytorch)')
    if not dist.is_initialized():
        dist.init_process_group(backend='gloo')
    cfg.env_cfg = ConfigDict(cfg.get('env_cfg') or {})
    cfg.env_cfg.dist_cfg = dict(backend='gloo')
    cfg.model_wrapper_cfg = dict(
        type='MMDistributedDataParallel', device_ids=None, broadcast_buffers=False,
        find_unused_parameters=cfg.get('find_unused_parameters', False))
    replaced = _replace_syncbn(cfg.model)
    if replaced:
        print_log(f'no CUDA: {replaced} SyncBN norm config(s) replaced by BN for the CPU '
                  'multi-process run (SyncBN needs GPUs)', logger='current', level=logging.WARNING)


def teardown_launcher() -> None:
    """Destroy the process group of a distributed run, if one is up; call it after the run.

    mmengine's Runner leaves the group up when ``train``/``test`` return. Destroyed before the
    interpreter exits, the backend's threads stop in order; left to the exit, a gloo rank can
    abort after a finished run ("terminate called without an active exception", seen once in
    this project's two-process CPU test) and torchrun then reports the run as failed.
    """
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
