"""Check that the gateway's responses, call events and spans agree."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from examples._demo.report import Record
from examples._demo.traffic import EXPECTED_STATUS, Outcome


def traffic_summary(outcomes: Sequence[Outcome], seconds: float) -> str:
    """Describe the responses: statuses, broken streams, traced requests."""
    statuses = Counter(outcome.status_code for outcome in outcomes)
    status_text = ", ".join(f"{code}: {n}" for code, n in sorted(statuses.items()))
    streams = sum(1 for outcome in outcomes if outcome.request.stream)
    broken = sum(1 for outcome in outcomes if outcome.stream_failed)
    traced = sum(1 for outcome in outcomes if outcome.request.trace_id)
    return (
        f"Sent {len(outcomes)} requests in {seconds:.1f} s. "
        f"Responses by status: {status_text}.\n"
        f"{streams} requests streamed, {broken} of them ended with an error event. "
        f"{traced} requests carried a traceparent header."
    )


def check_responses(outcomes: Sequence[Outcome]) -> list[str]:
    """Return a problem for each kind of response the traffic plan did not expect."""
    problems = []
    lost = [outcome for outcome in outcomes if outcome.status_code == 0]
    if lost:
        problems.append(
            f"{len(lost)} requests got no response. The first failed with "
            f"{lost[0].error}"
        )
    unexpected = [o for o in outcomes if o.status_code and not _as_expected(o)]
    if unexpected:
        first = unexpected[0]
        problems.append(
            f"{len(unexpected)} responses differ from the expected outcome. "
            f"Request {first.request.index} (behaviour {first.request.behavior}) "
            f"got status {first.status_code}, request_id {first.request_id}"
        )
    return problems


def _as_expected(outcome: Outcome) -> bool:
    behavior = outcome.request.behavior
    expected_failure = behavior == "stream_error"
    return (
        outcome.status_code == EXPECTED_STATUS[behavior]
        and outcome.stream_failed == expected_failure
    )


def check_events(outcomes: Sequence[Outcome], events: Sequence[Record]) -> list[str]:
    """Return problems with the call events: one per request, matching ids.

    Every answered request runs exactly one call_llm scope, so it must have
    exactly one event, with its X-Request-ID and, if the request carried a
    ``traceparent`` header, that header's trace id.
    """
    if not events:
        return ["no call events were logged"]
    answered = [outcome for outcome in outcomes if outcome.status_code]
    problems = []
    if len(events) != len(answered):
        problems.append(
            f"expected one call event per answered request, got {len(events)} "
            f"events for {len(answered)} requests"
        )
    by_request_id: dict[str | None, Record] = {
        event["request_id"]: event for event in events
    }
    missing = [o for o in answered if o.request_id not in by_request_id]
    if missing:
        problems.append(
            f"{len(missing)} responses have an X-Request-ID without a call event, "
            f"first {missing[0].request_id}"
        )
    problems.extend(_check_trace_ids(answered, by_request_id))
    return problems


def _check_trace_ids(
    answered: Sequence[Outcome], by_request_id: dict[str | None, Record]
) -> list[str]:
    traced = [
        (outcome, by_request_id[outcome.request_id])
        for outcome in answered
        if outcome.request.trace_id and outcome.request_id in by_request_id
    ]
    wrong = [
        outcome
        for outcome, event in traced
        if event["trace_id"] != outcome.request.trace_id
    ]
    if not wrong:
        return []
    return [
        f"{len(wrong)} of {len(traced)} call events do not carry the trace id of "
        f"the request's traceparent header, first request_id {wrong[0].request_id}"
    ]


def check_spans(outcomes: Sequence[Outcome], spans: Sequence[Record]) -> list[str]:
    """Return a problem unless every answered request has one SERVER span."""
    answered = sum(1 for outcome in outcomes if outcome.status_code)
    server_spans = sum(1 for span in spans if span["kind"] == "SERVER")
    if server_spans == answered:
        return []
    return [
        f"expected one request span per answered request, got {server_spans} "
        f"SERVER spans for {answered} requests"
    ]


def check_metrics(events: Sequence[Record], requests_total: float) -> list[str]:
    """Return a problem unless ``llm_requests_total`` counts every call event.

    Under gunicorn, one worker serves each scrape, so this checks that the
    scrape sums the samples of all workers.
    """
    if requests_total == len(events):
        return []
    return [
        f"llm_requests_total in /metrics sums to {requests_total:g}, but "
        f"{len(events)} call events were logged"
    ]
