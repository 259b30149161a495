"""Checkpoint files that a kill cannot leave half-written, and the search for the latest one.

mmengine 0.10.7 writes a checkpoint with ``open(path, 'wb').write(bytes)`` (``LocalBackend.put``):
a process killed during that write leaves a truncated file under the final name, and a run
that re-saves an existing name (e.g. after resuming from an older checkpoint) first truncates
the complete file. :class:`AtomicLocalBackend` writes to a temporary file in the same folder,
flushes it to disk and renames it over the final name, so the final name always holds a complete
checkpoint or none. :func:`latest_complete_checkpoint` and :func:`check_complete` keep
``--resume`` off truncated files written by anything else.
"""
import glob
import logging
import os
import os.path as osp
import zipfile
from pathlib import Path
from typing import Optional, Union

from mmengine.fileio import LocalBackend, register_backend
from mmengine.logging import print_log

from ..errors import BadInputError

ATOMIC_BACKEND = 'atomic_local'


@register_backend(ATOMIC_BACKEND)
class AtomicLocalBackend(LocalBackend):
    """mmengine's local file backend, whose ``put`` replaces the file in one rename.

    Use it for checkpoints with ``CheckpointHook(backend_args=dict(backend='atomic_local'))``
    (:func:`mmspatialmamba.engine.make_resumable` sets this).
    """

    def put(self, obj: bytes, filepath: Union[str, Path]) -> None:
        """Write ``obj`` to ``filepath`` through ``.<name>.<pid>.tmp`` beside it, then rename."""
        filepath = str(filepath)
        folder, name = osp.split(filepath)
        os.makedirs(folder or '.', exist_ok=True)
        tmp = osp.join(folder, f'.{name}.{os.getpid()}.tmp')
        try:
            with open(tmp, 'wb') as f:
                f.write(obj)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, filepath)
        finally:
            if osp.exists(tmp):
                os.remove(tmp)


def incomplete_reason(path: str) -> Optional[str]:
    """Why ``path`` is not a complete checkpoint, or None when it is.

    ``torch.save`` writes a zip archive whose directory comes last; a file cut short has no
    directory, and a damaged one fails the members' CRC check.
    """
    if not osp.isfile(path):
        return 'no such file'
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError) as error:
        return f'not a complete torch.save archive ({error})'
    return None if bad is None else f'member {bad} is corrupt'


def check_complete(path: str) -> None:
    """Raise if ``path``, named by the user to resume from, is not a complete checkpoint.

    Raises:
        BadInputError: Naming the file, the reason and what to do instead.
    """
    reason = incomplete_reason(path)
    if reason is not None:
        work_dir = osp.dirname(osp.abspath(path))
        raise BadInputError(
            f'--resume {path}: cannot resume from this file: {reason}. It was probably cut '
            'short by a kill or a full disk while it was written. Resume from an earlier '
            f'checkpoint (--resume {osp.join(work_dir, "iter_N.pth")} or epoch_N.pth), or run '
            '--resume without a path to take the latest complete checkpoint in the work dir')


def latest_complete_checkpoint(work_dir: str) -> Optional[str]:
    """The checkpoint ``--resume`` continues from: the newest complete one in ``work_dir``.

    That is the file named in ``work_dir/last_checkpoint`` (as mmengine's
    ``find_latest_checkpoint`` reads it) when it is complete; otherwise the most recently
    written complete ``*.pth`` in ``work_dir``. Every file passed over is logged with the reason.
    Returns None when there is none.
    """
    candidates = sorted(glob.glob(osp.join(work_dir, '*.pth')), key=osp.getmtime, reverse=True)
    pointer = osp.join(work_dir, 'last_checkpoint')
    if osp.isfile(pointer):
        with open(pointer) as f:
            named = f.read().strip()
        if named:
            candidates = [named] + [path for path in candidates
                                    if osp.abspath(path) != osp.abspath(named)]
    for path in candidates:
        reason = incomplete_reason(path)
        if reason is None:
            return path
        print_log(f'--resume: passing over {path}: {reason}', logger='current',
                  level=logging.WARNING)
    return None
