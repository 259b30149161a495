"""The config edits that make a training run resume exactly, and the choice of what to resume.

A run made with :func:`make_resumable` and killed at any point, then resumed with
:func:`prepare_resume` from its last complete checkpoint, draws the same data order,
augmentations and model randomness as an unbroken run (docs/training.md, "Resuming").
"""
import logging
import os.path as osp

from mmengine.config import Config
from mmengine.logging import print_log
from mmengine.runner import CheckpointLoader

from ..errors import MissingFileError
from .checkpoint_files import ATOMIC_BACKEND, check_complete, latest_complete_checkpoint


def make_resumable(cfg: Config) -> None:
    """Edit a training config in place so that its checkpoints resume exactly.

    * adds :class:`~mmspatialmamba.engine.random_state.RandomStateHook` to ``custom_hooks``;
    * wraps ``train_dataloader``'s dataset in ``SeededDataset`` and its sampler in
      ``SeededSampler`` (per-sample augmentation seeds, :mod:`.seeded_data`);
    * makes the ``CheckpointHook`` write through the atomic backend (:mod:`.checkpoint_files`),
      unless the config gives it ``backend_args`` of its own (e.g. remote storage).

    Run it after the checks that name config keys to the user (the wrapping moves
    ``train_dataloader.dataset`` one level down). Applying it twice changes nothing.
    """
    hooks = list(cfg.get('custom_hooks') or [])
    if not any(hook.get('type') == 'RandomStateHook' for hook in hooks):
        cfg.custom_hooks = hooks + [dict(type='RandomStateHook')]
    loader = cfg.train_dataloader
    if loader.dataset.get('type') != 'SeededDataset':
        loader.dataset = dict(type='SeededDataset', dataset=loader.dataset)
        loader.sampler = dict(type='SeededSampler', sampler=loader.sampler)
    checkpoint = (cfg.get('default_hooks') or {}).get('checkpoint')
    if checkpoint is not None and not checkpoint.get('backend_args'):
        checkpoint.backend_args = dict(backend=ATOMIC_BACKEND)


def prepare_resume(cfg: Config, resume: str) -> None:
    """Point ``cfg`` at the checkpoint to resume and take the seed the run was started with.

    Args:
        cfg: The training config (``work_dir`` set); edited in place: ``resume``,
            ``load_from`` and ``randomness.seed``.
        resume: ``'auto'`` for the latest complete checkpoint in ``work_dir`` (none: the run
            starts from scratch, with a warning), or the path of a checkpoint.

    The seed comes from the checkpoint's ``meta`` before the Runner is built, because the
    Runner builds the samplers from the config's seed before it reads the checkpoint (mmengine
    0.10.7 only re-seeds the global generators), and a config without a fixed seed draws a
    new one every run.

    Raises:
        MissingFileError: If ``resume`` names no file.
        BadInputError: If it names a file that is not a complete checkpoint.
    """
    if resume == 'auto':
        path = latest_complete_checkpoint(cfg.work_dir)
        if path is None:
            print_log(f'--resume: no complete checkpoint in {cfg.work_dir}; training starts '
                      'from scratch', logger='current', level=logging.WARNING)
            cfg.resume, cfg.load_from = False, None
            return
    else:
        if not osp.isfile(resume):
            raise MissingFileError(f'--resume {resume}: no such checkpoint file')
        check_complete(resume)
        path = resume
    cfg.resume, cfg.load_from = True, path
    seed = CheckpointLoader.load_checkpoint(path, map_location='cpu').get('meta', {}).get('seed')
    randomness = cfg.get('randomness') or {}
    if seed is not None and randomness.get('seed') != seed:
        if randomness.get('seed') is not None:
            print_log(f'--resume: the config sets seed {randomness["seed"]}, the checkpoint was '
                      f'trained with seed {seed}; continuing with {seed}', logger='current',
                      level=logging.WARNING)
        cfg.randomness = dict(randomness, seed=seed)
