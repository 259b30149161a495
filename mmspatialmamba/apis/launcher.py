"""Distributed launch for the tools, including multi-process runs on CPUs (torchrun or Slurm,
with gloo).

mmengine 0.10.7 assumes CUDA for distributed runs; :func:`setup_launcher` works around that
(see its docstring and docs/stack.md). It starts the process group itself, so it runs just
before the Runner is built.
"""
import contextlib
import logging
from typing import Iterator

import torch
import torch.distributed as dist
from mmengine.config import Config, ConfigDict
from mmengine.dist import init_dist
from mmengine.logging import print_log

from ..errors import BadInputError


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


@contextlib.contextmanager
def _without_cuda_device_selection() -> Iterator[None]:
    """Make ``torch.cuda.set_device`` a no-op inside the block, on a torch without CUDA.

    mmengine 0.10.7's Slurm set-up (``mmengine.dist.utils._init_dist_slurm``) reads the rank,
    world size and master node from Slurm's variables, then calls
    ``torch.cuda.set_device(local_rank)``, which a CPU-only torch does not have
    (``AttributeError: module 'torch._C' has no attribute '_cuda_setDevice'``). The original
    function is back when the block ends.
    """
    set_device = torch.cuda.set_device
    torch.cuda.set_device = lambda device: None
    try:
        yield
    finally:
        torch.cuda.set_device = set_device


def _init_cpu_process_group(launcher: str) -> None:
    """Start the gloo process group of a CPU run: torchrun's variables, or Slurm's through
    mmengine (``SLURM_PROCID``, ``SLURM_NTASKS``, ``SLURM_LOCALID``, the first node of
    ``SLURM_NODELIST`` by ``scontrol``; ``MASTER_PORT`` or 29500)."""
    if dist.is_initialized():
        return
    if launcher == 'pytorch':
        dist.init_process_group(backend='gloo')
    else:
        with _without_cuda_device_selection():
            init_dist('slurm', backend='gloo')


def setup_launcher(cfg: Config, launcher: str) -> None:
    """Set ``cfg.launcher`` and, for a multi-process run without CUDA, make it work on CPU.

    mmengine 0.10.7 assumes CUDA for distributed runs: its ``init_dist`` calls
    ``torch.cuda.set_device``, the Runner gives DDP ``device_ids=[LOCAL_RANK]``, and SyncBN
    only works on GPU. Without CUDA and with ``launcher='pytorch'`` (torchrun) or ``'slurm'``
    (srun) this creates the gloo process group itself (mmengine then skips ``init_dist``),
    wraps with ``device_ids=None`` and turns SyncBN into BN in the model config.

    Raises:
        BadInputError: For 'mpi' without CUDA (use torchrun or srun), or an unknown launcher.
    """
    if launcher not in ('none', 'pytorch', 'slurm', 'mpi'):
        raise BadInputError(f"unknown launcher {launcher!r}; use 'none', 'pytorch', 'slurm' or "
                         "'mpi'")
    cfg.launcher = launcher
    if launcher == 'none' or torch.cuda.is_available():
        return
    if launcher == 'mpi':
        raise BadInputError('--launcher mpi needs CUDA; for a multi-process CPU run use '
                         'torchrun: bash tools/dist_train.sh CONFIG NPROC (--launcher pytorch), '
                         'or srun: bash tools/slurm_train.sh PARTITION JOB_NAME CONFIG '
                         '(--launcher slurm)')
    _init_cpu_process_group(launcher)
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
    abort after a finished run ("terminate called without an active exception") and torchrun
    then reports the run as failed.
    """
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
