"""Build the ``llmobs report`` figures from event files in one streaming pass."""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from datetime import datetime

from llmobs_core.cli.aggregate import GroupStats, group_key
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


@dataclasses.dataclass(slots=True)
class Report:
    """Totals and per-group figures of the calls read.

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

    def add(self, call: Call, feedback: list[Feedback]) -> None:
        """Count one call, with the feedback given on its request."""
        targets = [self.totals]
        for grouping in self.groupings:
            table = self.groups.setdefault(grouping, {})
            key = group_key(call, grouping)
            stats = table.get(key)
            if stats is None:
                stats = table[key] = GroupStats()
            targets.append(stats)
        for stats in targets:
            stats.add(call)
            for item in feedback:
                stats.add_feedback(item.name, item.value)


def build_report(inputs: Inputs, groupings: list[Grouping], window: Window) -> Report:
    """Read every input once for feedback and once for calls.

    Feedback counts toward the groups of the first call in the window with
    the same request id; a request with several calls is counted once.
    Memory grows with the number of feedback events and groups, not calls.
    """
    report = Report(groupings)
    pending = _collect_feedback(inputs)
    report.feedback_events = sum(len(items) for items in pending.values())
    for source, lines in inputs.sources():
        for event in parse_lines(source, lines, report.skipped):
            if isinstance(event, Feedback) or not window.contains(event.timestamp):
                continue
            request_id = event.fields.get("request_id")
            feedback = pending.pop(request_id, []) if request_id else []
            report.add(event, feedback)
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
