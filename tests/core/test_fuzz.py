"""Property tests of the parsers that see client-controlled input."""

from __future__ import annotations

import re
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmobs_core._headers import decode_header, invalid_trace_headers
from llmobs_core._ids import is_valid_request_id
from llmobs_core.redaction import redact
from llmobs_core.server import carrier_from_pairs
from llmobs_flask import LLMObsWSGIMiddleware
from tests.conftest import Observed

FUZZ = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
header_text = st.text(
    alphabet=st.characters(min_codepoint=0, max_codepoint=0x2FFF), max_size=600
)


@FUZZ
@given(header_text)
def test_request_id_check_total(value: str) -> None:
    valid = is_valid_request_id(value)

    assert valid == bool(re.fullmatch(r"[A-Za-z0-9._-]{1,128}", value))


@FUZZ
@given(
    st.dictionaries(st.sampled_from(["traceparent", "tracestate", "x"]), header_text)
)
def test_trace_header_check_never_raises(headers: dict[str, str]) -> None:
    dropped = invalid_trace_headers(headers)

    assert set(dropped) <= {"traceparent", "tracestate"}


@FUZZ
@given(st.binary(max_size=400))
def test_decode_header_total(raw: bytes) -> None:
    assert isinstance(decode_header(raw), str)


@FUZZ
@given(st.lists(st.tuples(header_text, header_text), max_size=8))
def test_carrier_keys_lowercase(pairs: list[tuple[str, str]]) -> None:
    carrier = carrier_from_pairs(pairs)

    assert all(key == key.lower() for key in carrier)


@FUZZ
@given(st.text(max_size=2000))
def test_redact_never_raises(text: str) -> None:
    assert isinstance(redact(text), str)


@FUZZ
@given(
    st.text(alphabet=" abcxyz.,;:!?\n", max_size=80),
    st.from_regex(r"[a-z]{1,10}\.[a-z]{1,10}@example\.(com|org)", fullmatch=True),
    st.text(alphabet=" abcxyz.,;:!?\n", max_size=80),
)
def test_redact_removes_embedded_email(before: str, email: str, after: str) -> None:
    text = f"{before} {email} {after}"

    assert email not in redact(text)


# The fixture only provides a configuration; nothing in it is per input.
@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    st.dictionaries(
        st.sampled_from(
            [
                "HTTP_X_REQUEST_ID",
                "HTTP_TRACEPARENT",
                "HTTP_TRACESTATE",
                "HTTP_X_TENANT_ID",
                "HTTP_X_TENANT_TIER",
                "HTTP_X_USER_ID",
                "HTTP_X_PLATFORM",
                "HTTP_X_LLMOBS_DEBUG",
            ]
        ),
        st.text(alphabet=st.characters(max_codepoint=0xFF), max_size=300),
    ),
    st.text(alphabet=st.characters(max_codepoint=0xFF), max_size=200),
)
def test_wsgi_request_never_fails(
    observed: Observed, headers: dict[str, str], path: str
) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    environ: dict[str, Any] = {
        "REQUEST_METHOD": "GET",
        "SCRIPT_NAME": "",
        "PATH_INFO": "/" + path,
        "wsgi.url_scheme": "http",
        **headers,
    }
    statuses: list[str] = []
    response_headers: list[list[tuple[str, str]]] = []

    def start_response(status: str, headers: list[tuple[str, str]], *args: Any) -> Any:
        statuses.append(status)
        response_headers.append(headers)
        return lambda data: None

    body = LLMObsWSGIMiddleware(app)(environ, start_response)
    chunks = list(body)
    body.close()  # type: ignore[attr-defined]

    assert chunks == [b"ok"]
    assert statuses == ["200 OK"]
    (request_id,) = [v for k, v in response_headers[0] if k.lower() == "x-request-id"]
    assert is_valid_request_id(request_id)
    assert "\r" not in request_id
    assert "\n" not in request_id


@FUZZ
@given(st.text(alphabet=st.characters(max_codepoint=0x3100), max_size=200))
def test_whitespace_split_matches_regex(text: str) -> None:
    import unicodedata

    from llmobs_core.privacy._hashing import _normalize_text

    expected = re.sub(r"\s+", " ", unicodedata.normalize("NFC", text)).strip()

    assert _normalize_text(text) == expected
