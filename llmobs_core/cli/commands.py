"""Run ``llmobs report`` and ``llmobs compare`` from parsed arguments."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from llmobs_core.cli.compare import Comparison, SideOf, build_comparison
from llmobs_core.cli.compare_output import (
    render_compare_csv,
    render_compare_json,
    render_compare_text,
)
from llmobs_core.cli.formats import render_csv, render_json, render_text
from llmobs_core.cli.html import collect_chart_data, render_html
from llmobs_core.cli.inputs import InputError, Inputs
from llmobs_core.cli.records import Call, SkippedLines
from llmobs_core.cli.report import Window, build_report


def run_report(args: argparse.Namespace) -> int:
    """Print the report of ``args.files``, and write it as HTML with ``--html``.

    Returns:
        The exit status: 0, 1 when an input cannot be read or the HTML file
        cannot be written, or 2 when ``--since`` is not before ``--until``.
    """
    try:
        window = _window(args)
    except ValueError as error:
        sys.stderr.write(f"llmobs report: {error}\n")
        return 2
    try:
        with Inputs(args.files) as inputs:
            report = build_report(inputs, args.by, window)
            charts = None
            if args.html is not None:
                charts = collect_chart_data(inputs, window)
    except InputError as error:
        sys.stderr.write(f"llmobs report: {error}\n")
        return 1
    render = {"table": render_text, "json": render_json, "csv": render_csv}
    sys.stdout.write(render[args.format](report, args.top))
    _warn_skipped(report.skipped)
    if charts is not None:
        return _write_html(args.html, render_html(report, args.top, charts))
    return 0


def _write_html(path: str, page: str) -> int:
    try:
        Path(path).write_text(page, encoding="utf-8", errors="backslashreplace")
    except OSError as error:
        sys.stderr.write(
            f"llmobs report: failed to write the HTML report {path!r}: "
            f"{error.strerror or error}\n"
        )
        return 1
    return 0


def run_compare(args: argparse.Namespace) -> int:
    """Print the comparison of two slices of ``args.files``; return the status.

    A side without calls is printed like any other, with a warning on
    standard error. The status is 2 for options that define no two distinct
    sides or an empty time window, and 1 when an input cannot be read.
    """
    try:
        window = _window(args)
        side_of, labels, descriptions = _sides(args)
    except ValueError as error:
        sys.stderr.write(f"llmobs compare: {error}\n")
        return 2
    try:
        with Inputs(args.files) as inputs:
            comparison = build_comparison(inputs, side_of, labels, window, args.alpha)
    except InputError as error:
        sys.stderr.write(f"llmobs compare: {error}\n")
        return 1
    render = {
        "table": render_compare_text,
        "json": render_compare_json,
        "csv": render_compare_csv,
    }
    sys.stdout.write(render[args.format](comparison))
    _warn_skipped(comparison.skipped)
    _warn_empty_sides(comparison, descriptions)
    return 0


def _warn_empty_sides(comparison: Comparison, descriptions: tuple[str, str]) -> None:
    sides = (("A", comparison.a), ("B", comparison.b))
    for (name, side), description in zip(sides, descriptions, strict=True):
        if not side.stats.calls:
            sys.stderr.write(
                f"llmobs compare: warning: side {name} ({description}) has no "
                "calls; check the value and the time window\n"
            )


def _window(args: argparse.Namespace) -> Window:
    since, until = args.since, args.until
    if since is not None and until is not None and until <= since:
        raise ValueError(
            f"--until {until.isoformat()} is not later than --since "
            f"{since.isoformat()}; the window would be empty"
        )
    return Window(since, until)


def _sides(
    args: argparse.Namespace,
) -> tuple[SideOf, tuple[str, str], tuple[str, str]]:
    """Return which side a call is on, the side labels and their descriptions.

    Raises:
        ValueError: If the options do not define two distinct sides.
    """
    by_field = args.field is not None or args.a is not None or args.b is not None
    by_time = args.before is not None or args.after is not None
    if by_field == by_time:
        raise ValueError(
            "pass either --field with --a and --b, or --before and/or --after"
        )
    if by_field:
        if args.field is None or args.a is None or args.b is None:
            raise ValueError("--field, --a and --b must be given together")
        if args.a == args.b:
            raise ValueError(
                f"--a and --b are both {args.a!r}; pass two different values "
                f"of {args.field}"
            )
        descriptions = (f"{args.field} {args.a!r}", f"{args.field} {args.b!r}")
        return _field_sides(args.field, args.a, args.b), (args.a, args.b), descriptions
    before = args.before if args.before is not None else args.after
    after = args.after if args.after is not None else args.before
    if after < before:
        raise ValueError(
            f"--after {after.isoformat()} is earlier than --before "
            f"{before.isoformat()}; the sides would overlap"
        )

    def side_of(call: Call) -> str | None:
        if call.timestamp < before:
            return "a"
        return "b" if call.timestamp >= after else None

    labels = (f"before {before.isoformat()}", f"after {after.isoformat()}")
    return side_of, labels, labels


def _field_sides(field: str, a: str, b: str) -> SideOf:
    def side_of(call: Call) -> str | None:
        value = call.group_value(field)
        if value == a:
            return "a"
        return "b" if value == b else None

    return side_of


def _warn_skipped(skipped: SkippedLines) -> None:
    if not skipped.count:
        return
    reasons = ", ".join(f"{n} {reason}" for reason, n in skipped.reasons.most_common())
    sys.stderr.write(f"llmobs: skipped {skipped.count} malformed lines ({reasons})\n")
    for example in skipped.examples:
        sys.stderr.write(f"  {example}\n")
