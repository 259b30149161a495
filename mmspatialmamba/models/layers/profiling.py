"""Named profiler ranges around the steps of a Spatial-Mamba block's forward.

:class:`~.blocks.SpatialMambaBlock` and its mixer :class:`~.sasf.StructureAwareSSM` run each
step of their forward inside :func:`profile_range`, so ``torch.profiler`` reports the time of
each part of the model as it runs (``tools/profile_block.py`` reads these ranges). While no
profiler records, and under ``torch.compile``, a range is a shared ``nullcontext``: one flag
check per step and no profiler event.
"""
import contextlib
from typing import ContextManager

import torch
from torch.profiler import record_function

# The mixer's steps and the block's, in the order the forward runs them; every step of the
# block's forward is inside exactly one of these ranges.
MIXER_PARTS = ('in_proj', 'conv2d+silu', 'x_proj+dt', 'sasf_core', 'out_norm', 'gate',
               'out_proj')
BLOCK_PARTS = ('cpe1', 'ln_1', *MIXER_PARTS, 'residual1', 'cpe2', 'ln_2', 'mlp', 'residual2')
RANGE_PREFIX = 'spatial_mamba/'  # a part's range is named e.g. 'spatial_mamba/in_proj'

_NO_RANGE = contextlib.nullcontext()


def profile_range(part: str) -> ContextManager[None]:
    """A ``record_function`` range named ``RANGE_PREFIX + part`` while a profiler records.

    Args:
        part: One of :data:`BLOCK_PARTS`.

    Returns:
        The range, or a shared no-op context when no profiler records or Dynamo traces.
    """
    if torch.compiler.is_compiling() or not torch.autograd._profiler_enabled():
        return _NO_RANGE
    return record_function(RANGE_PREFIX + part)
