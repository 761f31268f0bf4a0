"""Build the ``llmobs report`` figures from event files in one streaming pass."""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import datetime

from llmobs_core.cli.aggregate import GroupStats, group_key_function
from llmobs_core.cli.inputs import Inputs
from llmobs_core.cli.records import (
    Call,
    Feedback,
    MalformedLine,
    SkippedLines,
    parse_line,
    parse_lines,
)

Grouping = tuple[str, ...]
GroupKey = tuple[str, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class Window:
    """Half-open time window ``[since, until)`` on the event timestamp."""

    since: datetime | None = None
    until: datetime | None = None

    def contains(self, timestamp: datetime) -> bool:
        """Return whether ``timestamp`` falls in the window."""
        if self.since is not None and timestamp < self.since:
            return False
        return self.until is None or timestamp < self.until


# Calls are first counted in cells, one per combination of the values of all
# ``--by`` fields, so a call updates one GroupStats instead of one per table.
# Cells are merged into the totals and tables at the end, and whenever there
# are more than MAX_CELLS of them or MAX_CELL_CALLS calls in them, which
# bounds their memory: at most two sketch buckets per call counted.
MAX_CELLS = 4_096
MAX_CELL_CALLS = 100_000


@dataclasses.dataclass(slots=True)
class Report:
    """Totals and per-group figures of the calls read.

    Call ``finish`` after the last ``add``, before reading the figures.

    Attributes:
        groupings: Each ``--by`` option, as a tuple of fields.
        totals: Figures over all calls in the window.
        groups: Per grouping, the figures of each group.
        skipped: Malformed lines.
        feedback_events: Valid feedback events read.
        feedback_unmatched: Feedback events whose request id matched no call
            in the window.
    """

    groupings: list[Grouping]
    totals: GroupStats = dataclasses.field(default_factory=GroupStats)
    groups: dict[Grouping, dict[GroupKey, GroupStats]] = dataclasses.field(
        default_factory=dict
    )
    skipped: SkippedLines = dataclasses.field(default_factory=SkippedLines)
    feedback_events: int = 0
    feedback_unmatched: int = 0
    _cell_fields: tuple[str, ...] = dataclasses.field(init=False, repr=False)
    _cell_key: Callable[[Call], GroupKey] = dataclasses.field(init=False, repr=False)
    _cells: dict[GroupKey, GroupStats] = dataclasses.field(
        init=False, repr=False, default_factory=dict
    )
    _cell_calls: int = dataclasses.field(init=False, repr=False, default=0)

    def __post_init__(self) -> None:
        # A grouping given twice gets one table, with each call counted once.
        self.groupings = list(dict.fromkeys(self.groupings))
        fields = (field for grouping in self.groupings for field in grouping)
        self._cell_fields = tuple(dict.fromkeys(fields))
        self._cell_key = group_key_function(self._cell_fields)

    def add(self, call: Call, feedback: Sequence[Feedback] = ()) -> None:
        """Count one call, with the feedback given on its request."""
        key = self._cell_key(call)
        cell = self._cells.get(key)
        if cell is None:
            if len(self._cells) >= MAX_CELLS:
                self.finish()
            cell = self._cells[key] = GroupStats()
        cell.add(call)
        for item in feedback:
            cell.add_feedback(item.name, item.value)
        self._cell_calls += 1
        if self._cell_calls >= MAX_CELL_CALLS:
            self.finish()

    def finish(self) -> None:
        """Merge the calls counted so far into the totals and tables."""
        positions = {
            grouping: [self._cell_fields.index(field) for field in grouping]
            for grouping in self.groupings
        }
        for cell_key, cell in self._cells.items():
            self.totals.merge(cell)
            for grouping, indices in positions.items():
                table = self.groups.setdefault(grouping, {})
                key = tuple(cell_key[index] for index in indices)
                stats = table.get(key)
                if stats is None:
                    stats = table[key] = GroupStats()
                stats.merge(cell)
        self._cells.clear()
        self._cell_calls = 0


def build_report(inputs: Inputs, groupings: list[Grouping], window: Window) -> Report:
    """Read every input once for feedback and once for calls.

    Feedback counts toward the groups of the first call in the window with
    the same request id; a request with several calls is counted once.
    Memory grows with the number of feedback events and groups, not calls.
    """
    report = Report(groupings)
    pending = _collect_feedback(inputs)
    report.feedback_events = sum(len(items) for items in pending.values())
    bounded = window.since is not None or window.until is not None
    for source, lines in inputs.sources():
        for event in parse_lines(source, lines, report.skipped):
            if isinstance(event, Feedback):
                continue
            if bounded and not window.contains(event.timestamp):
                continue
            request_id = event.fields.request_id
            if pending and request_id and request_id in pending:
                report.add(event, pending.pop(request_id))
            else:
                report.add(event)
    report.finish()
    report.feedback_unmatched = sum(len(items) for items in pending.values())
    return report


def _collect_feedback(inputs: Inputs) -> dict[str, list[Feedback]]:
    # Malformed lines are counted by the main pass, not here.
    pending: dict[str, list[Feedback]] = defaultdict(list)
    for _source, lines in inputs.sources():
        for line in lines:
            if b"feedback" not in line:
                continue
            try:
                event = parse_line(line)
            except MalformedLine:
                continue
            if isinstance(event, Feedback):
                pending[event.request_id].append(event)
    return pending


def top_groups(
    table: dict[GroupKey, GroupStats], top: int | None
) -> list[tuple[GroupKey, GroupStats]]:
    """Return the groups by cost, highest first, then by calls; at most ``top``."""
    rows = sorted(
        table.items(), key=lambda item: (-item[1].cost_usd, -item[1].calls, item[0])
    )
    return rows if top is None else rows[:top]
