"""``SaveRankWeightsHook``: every rank of a distributed run writes its own weights.

mmengine's checkpoints come from rank 0 alone, so they cannot show that all ranks trained the
same model. The launcher tests add this hook to a tiny config (``custom_imports`` of this
module, found through ``PYTHONPATH``) and compare the files.
"""
import os.path as osp

import torch
from mmengine.dist import get_rank, get_world_size
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS


def _weights(runner) -> dict:
    """The model's parameters. Buffers are left out: without SyncBN (GPU only) and with DDP's
    ``broadcast_buffers=False`` (mmengine's default), each rank keeps BatchNorm statistics of
    its own images."""
    model = runner.model.module if is_model_wrapper(runner.model) else runner.model
    return {k: v.detach().clone() for k, v in model.named_parameters()}


@HOOKS.register_module()
class SaveRankWeightsHook(Hook):
    """Write ``rank<R>_weights.pth`` = dict(rank, world_size, before=..., after=...) to the
    work dir: the model's parameters before the first and after the last training step."""

    def before_train(self, runner) -> None:
        self._before = _weights(runner)

    def after_train(self, runner) -> None:
        torch.save(dict(rank=get_rank(), world_size=get_world_size(), before=self._before,
                        after=_weights(runner)),
                   osp.join(runner.work_dir, f'rank{get_rank()}_weights.pth'))
