"""The ``llmobs`` command line: cost, latency and regression figures from events.

``llmobs report`` sums call events per group; ``llmobs compare`` sets two
slices of calls side by side and tests whether their difference is noise.
See ``docs/cli.md``.
"""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Sequence

from llmobs_core.cli.commands import run_compare, run_report
from llmobs_core.cli.parser import build_parser

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``).

    Returns:
        0 on success, 1 when an input file cannot be read or stdout was
        closed early, 2 for invalid arguments (argparse exits with 2 itself).
    """
    args = build_parser().parse_args(argv)
    command = run_report if args.command == "report" else run_compare
    if isinstance(sys.stdout, io.TextIOWrapper):
        # Event fields are JSON strings, which may hold lone surrogates
        # ("\ud800"); print those escaped rather than fail on them.
        sys.stdout.reconfigure(errors="backslashreplace")
    try:
        return command(args)
    except BrokenPipeError:
        # The reader of stdout (head, say) exited. Point stdout at devnull so
        # the interpreter's final flush does not raise again, as the Python
        # documentation of SIGPIPE recommends.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
