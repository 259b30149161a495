"""Load checkpoint files without letting them run code.

A checkpoint is a pickle, and a pickle can name any importable callable (``os.system``,
``builtins.exec``...) for the unpickler to call: ``torch.load(..., weights_only=False)`` on a
downloaded file is a remote-code-execution path. Every load here is therefore
``weights_only=True``, where torch only rebuilds tensors and plain containers, plus exactly
the data types that mmengine's own checkpoints hold (:data:`MMENGINE_CHECKPOINT_GLOBALS`:
``message_hub`` pickles ``HistoryBuffer`` objects of numpy arrays and scalars), and the
release's ImageNet files are read with their pickled training config as a plain mapping
(:data:`RELEASE_CHECKPOINT_GLOBALS`). Those extra globals are allowed only for the duration
of one load, never process-wide.

A file that needs anything else raises :class:`UnsafeCheckpointError`, naming the file, the
globals it needs and the opt-in for a trusted file: ``--trust-checkpoint`` on the tools or
``MMSM_TRUST_CHECKPOINTS=1``. With the opt-in, such a file is loaded with
``weights_only=False`` after a logged warning; files that load safely still load safely.
Before any of that, :func:`check_checkpoint_file` refuses a file that is missing, empty, cut
short or not written by ``torch.save`` at all (a text or HTML file), with a message that says
which.

Importing this module (``import mmspatialmamba`` does) registers :func:`load_from_local` as
mmengine's loader for local paths, so ``init_cfg=Pretrained``, ``load_from``, ``resume``,
``mmengine.runner.load_checkpoint`` and mmdet's/mmseg's ``init_detector``/``init_model`` in
the same process all go through it. mmengine 0.10.7's own ``load_from_local``
(``mmengine/runner/checkpoint.py``) calls ``torch.load(filename, map_location)`` without
``weights_only``: that fails on mmengine's own checkpoints under torch >= 2.6 and unpickles
anything under torch < 2.6 or with ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1``. Ours always passes
``weights_only=True`` (which that variable cannot override) and widens torch's allow-list
only by the data types above, so it loads nothing that can run code unless the user opts in.
Remote schemes (``https://``, ``open-mmlab://``...) keep mmengine's loaders, which leave
``weights_only`` at torch's default (True since torch 2.6). See docs/stack.md
("Checkpoint loading").
"""
import contextlib
import logging
import os
import os.path as osp
import pickle
import re
import zipfile
from collections import OrderedDict
from typing import Any, Callable, Iterator, List, Sequence, Tuple, Union

import numpy as np
import torch
from mmengine.logging import HistoryBuffer, print_log
from mmengine.runner.checkpoint import CheckpointLoader

from .errors import BadInputError, MissingFileError

TRUST_ENV = 'MMSM_TRUST_CHECKPOINTS'
TRUST_FLAG = '--trust-checkpoint'
_TRUE, _FALSE = ('1', 'true', 'yes'), ('', '0', 'false', 'no')

SafeGlobal = Union[Callable, Tuple[Callable, str]]


def _numpy_globals() -> List[SafeGlobal]:
    """The numpy globals that arrays and scalars of numeric dtypes pickle to.

    numpy 2 names its pickling helpers ``numpy._core.multiarray.*``, numpy 1
    ``numpy.core.multiarray.*``: both names map to the installed functions, so checkpoints
    written under either load under either. Object arrays are not allowed.
    """
    try:
        from numpy._core import multiarray
    except ImportError:  # numpy 1
        from numpy.core import multiarray
    helpers = [(getattr(multiarray, name), f'{package}.multiarray.{name}')
               for name in ('_reconstruct', 'scalar')
               for package in ('numpy._core', 'numpy.core')]
    numeric = [np.bool_] + [getattr(np, f'{kind}{bits}') for kind in ('int', 'uint')
                            for bits in (8, 16, 32, 64)] + [np.float16, np.float32, np.float64]
    dtype_classes = [type(np.dtype(t)) for t in numeric]  # e.g. numpy.dtypes.Float64DType
    return [np.ndarray, np.dtype, *dtype_classes, *helpers]


_HISTORY_BUFFER_METHODS = ('min', 'max', 'current', 'mean')


def _history_buffer_method(owner: Any, name: str) -> Callable:
    """Stands in for ``builtins.getattr``, which only ever fetches a statistics method here.

    A pickled ``HistoryBuffer`` carries its ``statistics_methods`` (``HistoryBuffer.min``...),
    which protocol 2 writes as ``getattr(HistoryBuffer, 'min')``. The real ``getattr`` would
    reach any attribute of any allowed object; this one returns only those four methods.
    """
    if owner is HistoryBuffer and name in _HISTORY_BUFFER_METHODS:
        return getattr(HistoryBuffer, name)
    raise pickle.UnpicklingError(
        f'the checkpoint asks for getattr({owner!r}, {name!r}); only '
        f'HistoryBuffer.{{{", ".join(_HISTORY_BUFFER_METHODS)}}} are allowed')


# What mmengine 0.10.7 checkpoints need beyond torch's default allow-list (checked with
# torch.serialization.get_unsafe_globals_in_checkpoint on a Runner checkpoint with optimizer,
# param scheduler and message_hub; tests/test_safe_loading.py keeps it checked).
MMENGINE_CHECKPOINT_GLOBALS: List[SafeGlobal] = [
    HistoryBuffer, (_history_buffer_method, 'builtins.getattr'), *_numpy_globals()]

# The release's ImageNet checkpoints are written by its classification/utils/utils.py
# (``save_checkpoint_ema``), which also stores the training config, a yacs ``CfgNode`` (a
# dict subclass), under 'config'. That name is mapped to ``OrderedDict``, which torch already
# allows: the config loads as a plain mapping, no yacs code runs and yacs need not be
# installed. Written from the release's code; the published files were not inspected.
RELEASE_CHECKPOINT_GLOBALS: List[SafeGlobal] = [(OrderedDict, 'yacs.config.CfgNode')]


class UnsafeCheckpointError(BadInputError, pickle.UnpicklingError):
    """A checkpoint needs globals that a ``weights_only`` load does not allow.

    A :class:`~mmspatialmamba.errors.BadInputError`, so the tools report it as one line.
    """


def checkpoints_trusted() -> bool:
    """Whether the user opted in to unpickling any checkpoint (``MMSM_TRUST_CHECKPOINTS``).

    Raises:
        BadInputError: If the variable holds something other than 1/true/yes or 0/false/no.
    """
    value = os.environ.get(TRUST_ENV, '').strip().lower()
    if value not in _TRUE + _FALSE:
        raise BadInputError(f'{TRUST_ENV}={os.environ[TRUST_ENV]!r}: use 1 to trust every '
                            'checkpoint this process loads, or 0 / unset for safe loading')
    return value in _TRUE


def add_trust_argument(parser) -> None:
    """Add ``--trust-checkpoint`` to a tool's ``argparse`` parser."""
    parser.add_argument(TRUST_FLAG, action='store_true',
                        help='load checkpoints that need more than tensors and mmengine\'s own '
                        'types (weights_only=False): they can run code, so only for files '
                        f'you trust (same as {TRUST_ENV}=1)')


def apply_trust_argument(args) -> None:
    """Opt in for the whole process (and its workers) if the tool got ``--trust-checkpoint``."""
    if args.trust_checkpoint:
        os.environ[TRUST_ENV] = '1'


@contextlib.contextmanager
def _allowing(extra: Sequence[SafeGlobal]) -> Iterator[None]:
    """Allow ``extra`` for ``weights_only`` loads inside the block only.

    torch's ``safe_globals`` removes its entries on exit; entries the user had already added
    process-wide are left out of it, so they stay.
    """
    already = set(torch.serialization.get_safe_globals())
    with torch.serialization.safe_globals([g for g in extra if g not in already]):
        yield


def _offending_globals(filename: str, error: Exception) -> List[str]:
    """The globals of ``filename`` that are not allowed (call inside :func:`_allowing`)."""
    try:
        return sorted(torch.serialization.get_unsafe_globals_in_checkpoint(filename))
    except (ValueError, RuntimeError, OSError):  # a legacy (non-zip) file: read torch's error
        return re.findall(r'GLOBAL (\S+) was not an allowed global', str(error))


# The first bytes of the two formats torch.load reads: torch.save's zip archive (the default
# since torch 1.6) and its legacy format, a pickle of protocol 2 or later.
_ZIP_MAGIC = b'PK\x03\x04'
_PICKLE_PROTO = b'\x80'


def check_checkpoint_file(filename: str) -> None:
    """Raise unless ``filename`` exists and looks like a file ``torch.load`` can read.

    Reads the first bytes and, for the zip format, the archive's directory, which
    ``torch.save`` writes last (a download or copy cut short has none); the weights are
    not read. A tool calls it before its run starts, and every local load goes through it.

    Raises:
        MissingFileError: If there is no such file.
        BadInputError: If the file is empty, cut short, or not written by ``torch.save``
            (a text or HTML file saved under a checkpoint's name).
    """
    if not osp.isfile(filename):
        raise MissingFileError(
            f'checkpoint {filename!r} does not exist; check the path (relative paths are taken '
            'from the current directory). For a backbone pretrained in a config, set '
            '--cfg-options model.backbone.init_cfg.checkpoint=PATH, or init_cfg=None to train '
            'from scratch')
    with open(filename, 'rb') as f:
        head = f.read(64)
    if head.startswith(_ZIP_MAGIC):
        if zipfile.is_zipfile(filename):
            return
        problem = ('it is cut short: a torch.save zip archive without its directory, as an '
                   'interrupted download or copy leaves it; download or copy it again')
    elif head.startswith(_PICKLE_PROTO):
        return
    elif not head:
        problem = 'the file is empty; download or copy it again'
    else:
        problem = (f'it is not a PyTorch checkpoint: it starts with {head[:16]!r}, where a '
                   "file written by torch.save starts with b'PK' (zip) or b'\\x80' (pickle); "
                   'check that the path names the checkpoint (a failed download can save an '
                   'HTML error page under its name)')
    raise BadInputError(f'checkpoint {filename!r} cannot be loaded: {problem}')


def load_checkpoint_file(filename: str, map_location: Any = None) -> Any:
    """``torch.load`` a local checkpoint with ``weights_only=True`` and mmengine's types.

    Args:
        filename: Path of a file written by ``torch.save`` (mmengine checkpoints included).
        map_location: As for ``torch.load``.

    Returns:
        The unpickled object (usually a dict).

    Raises:
        MissingFileError, BadInputError: From :func:`check_checkpoint_file`.
        UnsafeCheckpointError: If the file needs other globals and the user did not opt in
            (``MMSM_TRUST_CHECKPOINTS=1`` / ``--trust-checkpoint``).
    """
    check_checkpoint_file(filename)
    with _allowing(MMENGINE_CHECKPOINT_GLOBALS + RELEASE_CHECKPOINT_GLOBALS):
        try:
            return torch.load(filename, map_location=map_location, weights_only=True)
        except pickle.UnpicklingError as error:
            offending = _offending_globals(filename, error)
            # torch wraps the unpickler's own message (kept as __context__) in generic advice
            reason = (f'it needs {offending}' if offending else
                      f'the weights-only unpickler stopped: {error.__context__ or error}')
    if not checkpoints_trusted():
        raise UnsafeCheckpointError(
            f'checkpoint {filename!r} cannot be loaded with weights_only=True: {reason}. '
            'Unpickling it fully could run code from the file. If you trust this file (you know '
            f'who made it), pass {TRUST_FLAG} to tools/train.py, test.py or infer.py, or set '
            f'{TRUST_ENV}=1; otherwise do not load it')
    print_log(f'trusted ({TRUST_FLAG} / {TRUST_ENV}=1): loading {filename!r} with '
              f'weights_only=False because {reason}; unpickling it can run any code the file '
              'contains', logger='current', level=logging.WARNING)
    return torch.load(filename, map_location=map_location, weights_only=False)


@CheckpointLoader.register_scheme(prefixes='', force=True)
def load_from_local(filename: str, map_location: Any = None) -> Any:
    """mmengine's loader for local paths, through :func:`load_checkpoint_file`.

    Raises:
        MissingFileError, BadInputError, UnsafeCheckpointError: See
            :func:`load_checkpoint_file`.
    """
    return load_checkpoint_file(osp.expanduser(filename), map_location)
