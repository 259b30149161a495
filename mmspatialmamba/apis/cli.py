"""What the command-line tools in ``tools/`` share: how they report a user's mistake.

One style for every tool:

* a malformed command line that argparse can see (a missing or conflicting option, a value
  out of range) is reported by ``parser.error``: the usage line, ``<tool>: error: ...``,
  exit status 2 (argparse's convention);
* any other mistake in what the user passed (a file that does not exist, a config of another
  toolkit, an unknown arch, an option the config does not support) raises
  ``FileNotFoundError`` or ``ValueError`` in the library, and the tool wraps the steps that
  read the user's input in :func:`exit_on_user_error`, which prints ``error: <message>`` to
  stderr and exits with status 1 (no traceback).

The run itself (training, counting, timing) is not wrapped, so a bug there keeps its
traceback.
"""
import argparse
import contextlib
from typing import Iterator

import torch

USER_ERRORS = (FileNotFoundError, ValueError)


@contextlib.contextmanager
def exit_on_user_error() -> Iterator[None]:
    """Turn a ``FileNotFoundError`` or ``ValueError`` raised in the block into an exit.

    Raises:
        SystemExit: With the message ``error: <the exception's message>``, which Python
            prints to stderr, and exit status 1.

    Example:
        >>> with exit_on_user_error():
        ...     cfg = load_config(args.config, args.cfg_options)
    """
    try:
        yield
    except USER_ERRORS as error:
        raise SystemExit(f'error: {error}') from None


def resolve_device_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Check ``--threads`` and turn ``--device auto`` into 'cuda' or 'cpu'.

    For the timing tools (``tools/benchmark.py``, ``tools/profile_block.py``), whose parsers
    define ``--device {auto,cpu,cuda}`` and ``--threads``.

    Calls ``parser.error`` (exit 2 with the message) on ``--threads`` < 1 or on
    ``--device cuda`` without a CUDA device.
    """
    if args.threads is not None and args.threads < 1:
        parser.error(f'--threads must be >= 1, got {args.threads}')
    if args.device == 'auto':
        args.device = 'cuda' if torch.cuda.is_available() else 'cpu'
    if args.device == 'cuda' and not torch.cuda.is_available():
        parser.error('--device cuda, but no CUDA device is available; use --device cpu')
