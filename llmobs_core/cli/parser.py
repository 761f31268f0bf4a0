"""Command-line options of ``llmobs report`` and ``llmobs compare``."""

from __future__ import annotations

import argparse

from llmobs_core.cli.records import GROUP_FIELDS
from llmobs_core.cli.stats import DEFAULT_ALPHA
from llmobs_core.cli.timestamps import parse_timestamp

FORMATS = ("table", "json", "csv")


def build_parser() -> argparse.ArgumentParser:
    """Build the parser of both commands."""
    parser = argparse.ArgumentParser(
        prog="llmobs",
        description="Sum llmobs call events (JSON lines) into cost, latency and "
        "error figures.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    report = commands.add_parser(
        "report", help="totals and per-group figures of the calls"
    )
    _add_common(report)
    report.add_argument(
        "--by",
        action="append",
        type=_grouping,
        default=[],
        metavar="FIELD[,FIELD...]",
        help="add one table grouped by these fields, comma-separated for "
        f"combined groups; repeat for more tables. Fields: {', '.join(GROUP_FIELDS)}",
    )
    report.add_argument(
        "--top",
        type=_positive_int,
        metavar="N",
        help="show only the N costliest groups",
    )
    report.add_argument(
        "--html",
        metavar="FILE",
        help="also write the tables, a cost chart and a latency chart to FILE "
        "as one self-contained HTML page",
    )
    compare = commands.add_parser(
        "compare", help="two slices of calls side by side, with significance tests"
    )
    _add_common(compare)
    _add_sides(compare)
    return parser


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "files", nargs="+", metavar="FILE", help="JSON lines file, .gz, or - for stdin"
    )
    parser.add_argument(
        "--since",
        type=parse_timestamp,
        help="only calls at or after this RFC 3339 time",
    )
    parser.add_argument(
        "--until", type=parse_timestamp, help="only calls before this RFC 3339 time"
    )
    parser.add_argument(
        "--format",
        choices=FORMATS,
        default="table",
        help="output format: table (aligned text, the default), json (one "
        "JSON document) or csv",
    )


def _add_sides(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--field",
        type=_group_field,
        help="field that tells the sides apart, with --a/--b. Fields: "
        f"{', '.join(GROUP_FIELDS)}",
    )
    parser.add_argument("--a", help="value of --field on side A (the baseline)")
    parser.add_argument("--b", help="value of --field on side B")
    parser.add_argument(
        "--before",
        type=parse_timestamp,
        help="side A is the calls before this time; alone, it also starts side B",
    )
    parser.add_argument(
        "--after",
        type=parse_timestamp,
        help="side B is the calls at or after this time; alone, it also ends side A",
    )
    parser.add_argument(
        "--alpha",
        type=_probability,
        default=DEFAULT_ALPHA,
        help=f"significance level of the tests (default {DEFAULT_ALPHA})",
    )


def _grouping(value: str) -> tuple[str, ...]:
    fields = tuple(field.strip() for field in value.split(","))
    for field in fields:
        if field not in GROUP_FIELDS:
            raise argparse.ArgumentTypeError(
                f"invalid --by field {field!r}; use one of {', '.join(GROUP_FIELDS)}"
            )
    return fields


def _group_field(value: str) -> str:
    field = value.strip()
    if field not in GROUP_FIELDS:
        raise argparse.ArgumentTypeError(
            f"invalid field {value!r}; use one of {', '.join(GROUP_FIELDS)}"
        )
    return field


def _probability(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        number = 0.0
    if not 0 < number < 1:
        raise argparse.ArgumentTypeError(
            f"invalid alpha {value!r}; pass a probability between 0 and 1, "
            "for example 0.01"
        )
    return number


def _positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(
            f"invalid count {value!r}; pass a whole number of at least 1"
        )
    return number
