"""What the command-line tools in ``tools/`` share: how they report a user's mistake.

One style for every tool:

* a malformed command line that argparse can see (a missing or conflicting option, a value
  out of range) is reported by ``parser.error``: the usage line, ``<tool>: error: ...``,
  exit status 2 (argparse's convention);
* any other mistake in what the user passed (a file that does not exist or is not what it
  should be, a config of another toolkit, an unknown arch or backbone argument, an option the
  config does not support) raises :class:`~mmspatialmamba.errors.BadInputError` where it is
  recognised, and the tool runs its whole ``main`` inside :func:`exit_on_user_error`, which
  prints ``error: <message>`` to stderr and exits with status 1, without a traceback; with
  ``--debug`` (:func:`add_debug_argument`) the error keeps its traceback.

Only that type is caught, so a bug (any other exception) keeps its traceback.
"""
import argparse
import contextlib
from typing import Iterator

import torch

from ..errors import BadInputError

DEBUG_FLAG = '--debug'


def add_debug_argument(parser: argparse.ArgumentParser) -> None:
    """Add ``--debug`` to a tool's parser: show an input error's traceback, not one line."""
    parser.add_argument(DEBUG_FLAG, action='store_true',
                        help='on an input error (a bad file, config value or argument) show '
                        'the full traceback instead of the one-line message')


@contextlib.contextmanager
def exit_on_user_error(debug: bool = False) -> Iterator[None]:
    """Turn a :class:`~mmspatialmamba.errors.BadInputError` raised in the block into an exit.

    Args:
        debug: Re-raise the error unchanged (with its traceback) instead; a tool passes
            its ``--debug`` flag.

    Raises:
        SystemExit: With the message ``error: <the exception's message>``, which Python
            prints to stderr, and exit status 1.

    Example:
        >>> with exit_on_user_error(args.debug):
        ...     cfg = load_config(args.config, args.cfg_options)
    """
    try:
        yield
    except BadInputError as error:
        if debug:
            raise
        raise SystemExit(f'error: {error}') from None


def check_threads(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """``parser.error`` (exit 2 with the message) if ``--threads`` is given and below 1."""
    if args.threads is not None and args.threads < 1:
        parser.error(f'--threads must be >= 1, got {args.threads}')


def resolve_device_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Check ``--threads`` and turn ``--device auto`` into 'cuda' or 'cpu'.

    For the timing tools (``tools/benchmark.py``, ``tools/profile_block.py``), whose parsers
    define ``--device {auto,cpu,cuda}`` and ``--threads``.

    Calls ``parser.error`` (exit 2 with the message) on ``--threads`` < 1 or on
    ``--device cuda`` without a CUDA device.
    """
    check_threads(parser, args)
    if args.device == 'auto':
        args.device = 'cuda' if torch.cuda.is_available() else 'cpu'
    if args.device == 'cuda' and not torch.cuda.is_available():
        parser.error('--device cuda, but no CUDA device is available; use --device cpu')
