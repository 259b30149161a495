"""Random state that a resumed run needs to draw what an unbroken run draws next.

Two kinds of randomness meet in a training run:

* The model's draws in the main process (drop-path masks, the RPN and R-CNN proposal samplers,
  anything on the global Python ``random``, numpy or torch generators, CPU and CUDA). They are
  taken between ``before_train_iter`` and ``after_train_iter``. :class:`RandomStateHook` makes
  every iteration start from the generator states the previous one ended with, stores those
  states in each checkpoint (one entry per rank) and puts them back on ``--resume``. Draws made
  between two iterations (a validation loop, a dataloader iterator drawing its base seed,
  mmengine skipping the batches a resumed run has already trained on) then change nothing.
* The data pipeline's draws (RandomFlip, RandomResize, RandomCrop...), made in dataloader
  workers or, with ``num_workers=0``, in the main process. Those are seeded per sample by
  :mod:`mmspatialmamba.engine.seeded_data`, so they need no stored state.

Everything stored is a tensor, int, float, None, list or dict, so the checkpoint loads with
``torch.load(weights_only=True)``.
"""
import logging
import random
from typing import List, Optional

import numpy as np
import torch
from mmengine.dist import all_gather_object, get_rank, get_world_size
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.registry import HOOKS

CHECKPOINT_KEY = 'random_state'


def capture_random_state() -> dict:
    """The states of this process's global generators, in types ``weights_only`` loads.

    Returns:
        ``{'python': [version, 625 ints, gauss or None], 'numpy': {'keys': 624 ints, 'pos',
        'has_gauss', 'cached_gaussian'}, 'torch': uint8 tensor, 'cuda': uint8 tensor or None}``
        (``cuda``: the current device's generator, None when CUDA is not initialised).
    """
    version, internal, gauss = random.getstate()
    _, keys, pos, has_gauss, cached_gaussian = np.random.get_state()
    cuda = torch.cuda.get_rng_state() if torch.cuda.is_initialized() else None
    return dict(python=[version, list(internal), gauss],
                numpy=dict(keys=keys.tolist(), pos=int(pos), has_gauss=int(has_gauss),
                           cached_gaussian=float(cached_gaussian)),
                torch=torch.get_rng_state(), cuda=cuda)


def restore_random_state(state: dict) -> None:
    """Set this process's global generators to ``state`` (from :func:`capture_random_state`)."""
    version, internal, gauss = state['python']
    random.setstate((version, tuple(internal), gauss))
    numpy = state['numpy']
    np.random.set_state(('MT19937', np.array(numpy['keys'], dtype=np.uint32), numpy['pos'],
                         numpy['has_gauss'], numpy['cached_gaussian']))
    torch.set_rng_state(state['torch'])
    if state['cuda'] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state(state['cuda'])


@HOOKS.register_module()
class RandomStateHook(Hook):
    """Save the generators' states in every checkpoint and restore them on resume.

    After each training iteration the hook records every rank's generator states (gathered
    to all ranks under DDP, so whichever rank writes the checkpoint has them all); before the
    next iteration it restores them, so an iteration's draws depend only on the iterations
    before it. ``before_save_checkpoint`` stores the recorded states under
    ``checkpoint['random_state']`` (a list indexed by rank); a run resumed from that checkpoint
    restores its rank's entry before its first iteration. A checkpoint loaded with
    ``load_from`` to start a new run (not a resume) leaves the generators alone.

    ``tools/train.py`` adds this hook through :func:`mmspatialmamba.engine.make_resumable`.
    """

    priority = 'HIGHEST'  # restore before, and record before, any other hook draws or saves

    def __init__(self) -> None:
        self._states: Optional[List[dict]] = None
        self._loaded: Optional[tuple] = None  # (meta iter, states) of the loaded checkpoint

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        state = capture_random_state()
        self._states = all_gather_object(state) if get_world_size() > 1 else [state]

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        if self._states is not None:
            restore_random_state(self._states[get_rank()])

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        if self._states is None:  # saved outside training, before any iteration
            print_log('no training iteration has run: the checkpoint gets no random state',
                      logger='current', level=logging.WARNING)
            return
        checkpoint[CHECKPOINT_KEY] = self._states

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        self._loaded = checkpoint.get('meta', {}).get('iter'), checkpoint.get(CHECKPOINT_KEY)

    def before_train(self, runner) -> None:
        """Adopt the loaded checkpoint's states if it was resumed (its iteration is the run's)."""
        loaded, self._loaded = self._loaded, None
        if loaded is None or loaded[0] != runner.iter:
            return
        states = loaded[1]
        if states is None:
            print_log('the resumed checkpoint holds no random state (written without '
                      'RandomStateHook): the run continues, but its random draws will differ '
                      'from those of an unbroken run', logger='current', level=logging.WARNING)
        elif len(states) != get_world_size():
            print_log(f'the resumed checkpoint holds the random state of {len(states)} '
                      f'processes, this run has {get_world_size()}: the run continues, but its '
                      'random draws will differ from those of an unbroken run',
                      logger='current', level=logging.WARNING)
        else:
            self._states = states
