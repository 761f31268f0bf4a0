from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import pytest

from llmobs_core.cli import records
from llmobs_core.cli.records import (
    EVENT_FIELDS,
    Call,
    Feedback,
    MalformedLine,
    parse_line_with_json,
)
from tests.cli._events import call_line, feedback_line

msgspec = pytest.importorskip("msgspec", reason="needs the fast extra")

CALL = '{"timestamp":"2026-03-01T10:00:00Z","model":"m","latency_ms":5,"status":"ok"'

# Lines on which msgspec and json disagree unless the parser handles them.
TRICKY_LINES = [
    call_line(),
    call_line(feature_name="café", extra={"variant": "b"}),
    CALL + ',"extra":{"variant":7}}',
    feedback_line("r1", "rating", 4),
    CALL + "}",
    CALL + ',"latency_ms":NaN}',
    CALL + ',"cost_usd":Infinity}',
    CALL + ',"cost_usd":1' + "0" * 400 + "}",
    CALL + ',"cost_usd":1' + "0" * 300 + "}",
    CALL + ',"cost_usd":1000000}',
    CALL + ',"cost_usd":1000000.5}',
    CALL + ',"latency_ms":1e9}',
    CALL + ',"time_to_first_token_ms":1e10}',
    CALL + ',"output_tokens":1000000000001}',
    CALL + ',"extra":' + '{"a":' * 100_000 + "1" + "}" * 100_000 + "}",
    "[" * 100_000,
    CALL + ',"input_tokens":1' + "0" * 30 + "}",
    CALL + ',"input_tokens":1.0}',
    CALL + ',"input_tokens":true}',
    CALL + ',"input_tokens":-1}',
    CALL + ',"latency_ms":-0.0}',
    CALL + ',"latency_ms":"5"}',
    CALL + ',"cache_hit":1}',
    CALL + ',"extra":[]}',
    CALL + ',"feature_name":null,"variant":{"a":1}}',
    CALL + ',"feature_name":"\\ud800"}',
    CALL + ',"input_snippet":"\\ud800"}',
    CALL + ',"model":"a","model":null}',
    CALL + ',"value":"any","name":[1]}',
    CALL + ',"event":"feedback"}',
    CALL.replace('"model":"m",', ""),
    CALL.replace('"status":"ok"', '"status":null'),
    CALL.replace(',"status":"ok"', ""),
    CALL.replace('"latency_ms":5,', ""),
    CALL.replace("Z", ""),
    CALL.replace("2026-03-01T10:00:00Z", "yesterday"),
    '{"event":"feedback","request_id":"r","name":"n","value":true}',
    '{"event":"feedback","request_id":"r","name":"n","value":1,"timestamp":5}',
    '{"event":"feedback","name":"n","value":1}',
    "[1, 2]",
    '"text"',
    "{not json",
    "",
]
TRICKY_BYTES = [
    (CALL + ',"input_snippet":"\xff"}').encode("latin-1"),
    (CALL + ',"model":"\xff"}').encode("latin-1"),
    b"\xef\xbb\xbf" + CALL.encode() + b"}",
    (CALL + "}").encode("utf-16"),
    (CALL + "}\r\n").encode(),
]


def outcome(parse: Callable[[bytes], Call | Feedback], line: bytes) -> Any:
    """Return what ``parse`` makes of ``line``, comparable across parsers."""
    try:
        event = parse(line)
    except MalformedLine as error:
        return ("malformed", str(error))
    if isinstance(event, Feedback):
        return ("feedback", event)
    values = {name: _as_float(getattr(event.fields, name)) for name in EVENT_FIELDS}
    return ("call", event.timestamp, values)


def _as_float(value: Any) -> Any:
    # msgspec reads integer latencies and costs as floats, json as integers.
    is_number = isinstance(value, int | float) and not isinstance(value, bool)
    return float(value) if is_number else value


@pytest.fixture
def msgspec_parse() -> Callable[[bytes], Call | Feedback]:
    assert records.use_msgspec(True) is True
    return records.parse_line


@pytest.mark.parametrize(
    "line", [line.encode() for line in TRICKY_LINES] + TRICKY_BYTES
)
def test_parsers_agree_on_tricky_line(
    msgspec_parse: Callable[[bytes], Call | Feedback], line: bytes
) -> None:
    assert outcome(msgspec_parse, line) == outcome(parse_line_with_json, line)


def test_parsers_agree_on_damaged_lines(
    msgspec_parse: Callable[[bytes], Call | Feedback],
) -> None:
    rng = random.Random(7)
    valid = [
        call_line(input_tokens=10, output_tokens=3, cost_usd=0.5, extra={"v": "é"}),
        feedback_line("r1", "hallucination", 1.0),
    ]
    alphabet = b'{}[]":,.-+0123456789eEnulltruefalseNaN\\ \xff\xc3\xa9'
    kinds = {"malformed": 0, "call": 0, "feedback": 0}
    for _ in range(3_000):
        line = bytearray(rng.choice(valid).encode())
        for _edit in range(rng.randint(1, 3)):
            position = rng.randrange(len(line))
            if rng.random() < 0.5:
                del line[position]
            else:
                line[position] = alphabet[rng.randrange(len(alphabet))]
        expected = outcome(parse_line_with_json, bytes(line))
        assert outcome(msgspec_parse, bytes(line)) == expected, bytes(line)
        kinds[expected[0]] += 1
    # The damage leaves both valid and malformed lines to compare.
    assert kinds["malformed"] > 100
    assert kinds["call"] > 100
    assert kinds["feedback"] > 100


def test_msgspec_decodes_only_event_fields(
    msgspec_parse: Callable[[bytes], Call | Feedback],
) -> None:
    event = msgspec_parse(call_line(input_snippet="hello").encode())
    assert isinstance(event, Call)
    assert isinstance(event.fields, msgspec.Struct)
    assert not hasattr(event.fields, "input_snippet")


def test_json_parser_when_msgspec_disabled() -> None:
    assert records.use_msgspec(False) is False
    try:
        event = records.parse_line(call_line().encode())
        assert isinstance(event, Call)
        assert type(event.fields).__name__ == "_DictFields"
    finally:
        records.use_msgspec(True)


@pytest.mark.usefixtures("line_parser")
def test_group_value_missing_reads_extra() -> None:
    event = records.parse_line(CALL + ',"feature_name":null,"extra":{"variant":3}}')
    assert isinstance(event, Call)
    assert event.group_value("variant") == "3"
    assert event.group_value("feature_name") is None
    assert event.group_value("region") is None


@pytest.mark.usefixtures("line_parser")
@pytest.mark.parametrize(
    ("variant", "group"),
    [
        ('["a", 1]', '["a",1]'),
        ("true", "true"),
        ("1.5", "1.5"),
        ('{"k": "é"}', '{"k":"é"}'),
        ('"b"', "b"),
        ("null", None),
    ],
)
def test_group_value_extra_as_json(variant: str, group: str | None) -> None:
    event = records.parse_line(CALL + ',"extra":{"variant":' + variant + "}}")
    assert isinstance(event, Call)
    assert event.group_value("variant") == group


def test_group_value_too_deep_for_json() -> None:
    # Built in Python, so deeper than any line the decoders accept.
    nested: list[Any] = []
    for _ in range(100_000):
        nested = [nested]
    event = parse_line_with_json(CALL + "}")
    assert isinstance(event, Call)
    event.fields.extra = {"variant": nested}
    assert event.group_value("variant") is None
