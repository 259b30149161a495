"""What the picture tools (``tools/analysis/erf.py``, ``tools/analysis/dependency_map.py``)
share on the command line: their common options and how a run starts and ends.

Each tool builds its own parser, calls :func:`add_common_arguments`, parses with
:func:`parse_common`, and hands its ``run(args)`` to :func:`run_tool`. Bad input follows the
style of every tool (:mod:`mmspatialmamba.apis.cli`): one line and exit status 1, the
traceback with ``--debug``.
"""
import argparse
import json
from typing import Any, Callable, Dict, List, Optional

import torch

from ..apis.cli import add_debug_argument, check_threads, exit_on_user_error
from ..checkpoint_io import add_trust_argument, apply_trust_argument

Summary = Dict[str, Any]


def add_common_arguments(parser: argparse.ArgumentParser, seed_help: str) -> None:
    """Add ``--json``, ``--seed``, ``--threads``, the checkpoint-trust option and ``--debug``."""
    parser.add_argument('--json', metavar='PATH', help='also write the numbers as JSON')
    parser.add_argument('--seed', type=int, default=0, help=seed_help)
    parser.add_argument('--threads', type=int, help='torch CPU threads (default: torch\'s)')
    add_trust_argument(parser)
    add_debug_argument(parser)


def parse_common(parser: argparse.ArgumentParser,
                 argv: Optional[List[str]]) -> argparse.Namespace:
    """Parse ``argv``; ``--threads`` below 1 is a usage error (``parser.error``, exit 2)."""
    args = parser.parse_args(argv)
    check_threads(parser, args)
    return args


def run_tool(run: Callable[[argparse.Namespace], Summary], args: argparse.Namespace) -> Summary:
    """Apply the trust option and ``--threads``, then ``run(args)``; returns its summary.

    A :class:`~mmspatialmamba.errors.BadInputError` ends the process with one line (exit
    status 1) unless ``args.debug``.
    """
    with exit_on_user_error(args.debug):
        apply_trust_argument(args)
        if args.threads:
            torch.set_num_threads(args.threads)
        return run(args)


def write_summary(path: Optional[str], summary: Summary) -> None:
    """Write ``summary`` (JSON-serialisable numbers) to ``path`` if one was given."""
    if path:
        with open(path, 'w') as f:
            json.dump(summary, f, indent=2)
