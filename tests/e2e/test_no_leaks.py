"""No user text or raw identifier leaves either example gateway in telemetry.

Each request message contains an e-mail address, a card number, a phone
number and an API key, and each request carries a raw user id and a hostile
request id. The requests go through the FastAPI and the Flask example gateways
to the fake provider. Every JSON
event line, every Prometheus label value and every span attribute and span
event attribute is then searched for those strings, in each capture mode.
Only allowed debug traffic may carry the raw text, and only in
``input_content``. Those cases are the positive controls: they show that the
search finds text when it is there.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx
import pytest
from flask.testing import FlaskClient
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind
from prometheus_client import CollectorRegistry

import llmobs_core
from examples.fake_provider.app import FakeProviderConfig
from examples.fake_provider.app import create_app as create_fake_provider
from examples.fastapi_gateway.app import create_app as create_fastapi_gateway
from examples.flask_gateway.app import close_app
from examples.flask_gateway.app import create_app as create_flask_gateway
from llmobs_core.privacy import CaptureMode, PrivacyPolicy, sign_debug_token
from llmobs_core.privacy.policy import CAPTURE_CONTENT_ENV
from tests._servers import run_uvicorn_in_thread
from tests.conftest import TEST_HASH_KEY, Observed

CHAT_PATH = "/api/chat/assistant"
NUTRITION_PATH = "/api/nutrition/coach"
PROVIDER_TIMEOUT = 5.0
SPAN_WAIT_SECONDS = 5.0

EMAIL = "jane.doe@example.com"
CARD_NUMBER = "4111 1111 1111 1111"
PHONE_NUMBER = "+44 20 7946 0958"
API_KEY = "sk-proj-abcdefghijklmnopqrstuvwxyz123456"
USER_ID = "user-8812@example.com"
SENDING_TENANT = "tenant-blue"
DEBUG_TENANT = "tenant-debug"
HOSTILE_REQUEST_ID = f"<script>{EMAIL}</script>;{API_KEY}"
DEBUG_HEADER = "X-LLMobs-Debug"

# A word of the prompt that no redaction rule touches, so it shows where any
# prompt text went, even text that snippets may legitimately keep.
PROMPT_MARKER = "Quokka"
PII_SENTENCE = (
    f"I am {EMAIL}, my card {CARD_NUMBER}, call {PHONE_NUMBER}, key {API_KEY}."
)
PLACEHOLDERS = ("[EMAIL]", "[CARD]", "[PHONE]", "[API_KEY]")

# Raw values that must not appear, also in the compact forms a normalizing
# step could produce. Matching ignores case.
RAW_VALUES = {
    "e-mail address": EMAIL,
    "card number": CARD_NUMBER,
    "card number digits": CARD_NUMBER.replace(" ", ""),
    "phone number": PHONE_NUMBER,
    "phone number digits": "442079460958",
    "API key": API_KEY,
    "raw user id": USER_ID,
    "raw user id local part": USER_ID.split("@")[0],
    "hostile request id": HOSTILE_REQUEST_ID,
}
PROMPT_TEXT = {"prompt marker": PROMPT_MARKER}
HEX_32 = re.compile(r"[0-9a-f]{32}")
HEX_64 = re.compile(r"[0-9a-f]{64}")

Located = tuple[str, str]
"""A text and where it was found, such as ``event 2 field tenant_id``."""

# Key of a different deployment: its tokens must not verify on this one.
FOREIGN_HASH_KEY = "another-deployment-key-0123456789"


@dataclass(frozen=True, slots=True)
class FeatureRequest:
    """One request of the test traffic."""

    path: str
    stream: bool
    question: str

    @property
    def message(self) -> str:
        """The user message, with personal data, sent in the request body."""
        return f"{PROMPT_MARKER} asks: {PII_SENTENCE} {self.question}"


TRAFFIC = (
    FeatureRequest(CHAT_PATH, False, "How do I export a report to CSV?"),
    FeatureRequest(CHAT_PATH, True, "Where do I create an API key?"),
    FeatureRequest(NUTRITION_PATH, False, "How much protein should I eat a day?"),
    FeatureRequest(NUTRITION_PATH, True, "Is one soda a day too much sugar?"),
    # The third message again, so the nutrition feature returns its cached answer.
    FeatureRequest(NUTRITION_PATH, True, "How much protein should I eat a day?"),
)
EXPECTED_CACHE_HITS = [False, False, False, False, True]


def unsigned_debug_header() -> str:
    return "true"


def forged_debug_token() -> str:
    return sign_debug_token(FOREIGN_HASH_KEY, ttl_seconds=60)


def signed_debug_token() -> str:
    return sign_debug_token(TEST_HASH_KEY, ttl_seconds=60)


@dataclass(frozen=True, slots=True)
class CaptureCase:
    """A privacy set-up, the traffic's debug signals, and the expected mode.

    Attributes:
        policy: Keyword arguments of ``PrivacyPolicy`` besides the hash key.
        capture_mode: ``capture_mode`` expected in every event.
        tenant_id: Value of ``X-Tenant-ID``.
        capture_env: Value of the OpenTelemetry content capture variable, or
            None to unset it.
        debug_header: Builds the ``X-LLMobs-Debug`` value of each request.
        rejected_reason: Reason label of ``llmobs_debug_tokens_rejected_total``
            expected to count every request.
    """

    policy: Mapping[str, Any] = field(default_factory=dict)
    capture_mode: CaptureMode = CaptureMode.NONE
    tenant_id: str = SENDING_TENANT
    capture_env: str | None = None
    debug_header: Callable[[], str] | None = None
    rejected_reason: str | None = None


SNIPPETS_FOR_ALL = {"capture": CaptureMode.SNIPPET, "sample_rate": 1.0}

NO_RAW_CONTENT_CASES = [
    pytest.param(CaptureCase(), id="default-policy"),
    pytest.param(
        CaptureCase(SNIPPETS_FOR_ALL, CaptureMode.SNIPPET),
        id="snippet-policy",
    ),
    # The variable alone gives snippets for every trace.
    pytest.param(
        CaptureCase({}, CaptureMode.SNIPPET, capture_env="true"),
        id="otel-capture-env",
    ),
    pytest.param(
        CaptureCase(
            {**SNIPPETS_FOR_ALL, "debug_tenants": frozenset({DEBUG_TENANT})},
            CaptureMode.SNIPPET,
        ),
        id="debug-allow-list-other-tenant",
    ),
    pytest.param(
        CaptureCase(debug_header=unsigned_debug_header, rejected_reason="malformed"),
        id="unsigned-debug-header",
    ),
    pytest.param(
        CaptureCase(debug_header=forged_debug_token, rejected_reason="bad_signature"),
        id="forged-debug-token",
    ),
]

FULL_CONTENT_CASES = [
    pytest.param(
        CaptureCase(
            {"debug_tenants": frozenset({DEBUG_TENANT})},
            CaptureMode.FULL,
            tenant_id=DEBUG_TENANT,
        ),
        id="debug-allow-listed-tenant",
    ),
    pytest.param(
        CaptureCase(capture_mode=CaptureMode.FULL, debug_header=signed_debug_token),
        id="signed-debug-token",
    ),
]


# ---------------------------------------------------------------- gateways


@dataclass(frozen=True, slots=True)
class Reply:
    status_code: int
    request_id: str | None


class Gateway(Protocol):
    def post(
        self, path: str, body: dict[str, Any], headers: dict[str, str]
    ) -> Reply: ...

    def scrape_metrics(self) -> str: ...


@dataclass(frozen=True, slots=True)
class FastAPIGateway:
    """The FastAPI gateway under uvicorn, reached over loopback HTTP."""

    client: httpx.Client

    def post(self, path: str, body: dict[str, Any], headers: dict[str, str]) -> Reply:
        response = self.client.post(path, json=body, headers=headers)
        return Reply(response.status_code, response.headers.get("x-request-id"))

    def scrape_metrics(self) -> str:
        return self.client.get("/metrics").text


@dataclass(frozen=True, slots=True)
class FlaskGateway:
    """The Flask gateway, reached through Flask's test client."""

    client: FlaskClient

    def post(self, path: str, body: dict[str, Any], headers: dict[str, str]) -> Reply:
        response = self.client.post(path, json=body, headers=headers, buffered=True)
        return Reply(response.status_code, response.headers.get("x-request-id"))

    def scrape_metrics(self) -> str:
        return self.client.get("/metrics").get_data(as_text=True)


@pytest.fixture(scope="module")
def provider_url() -> Iterator[str]:
    with run_uvicorn_in_thread(
        create_fake_provider(FakeProviderConfig(latency_scale=0))
    ) as url:
        yield f"{url}/v1"


@pytest.fixture(params=["fastapi", "flask"])
def gateway(
    request: pytest.FixtureRequest, observed: Observed, provider_url: str
) -> Iterator[Gateway]:
    # Neither gateway configures llmobs itself, so each test configures it
    # with its own privacy policy, on the registry the gateway serves.
    if request.param == "flask":
        app = create_flask_gateway(
            provider_url, registry=observed.registry, provider_timeout=PROVIDER_TIMEOUT
        )
        yield FlaskGateway(app.test_client())
        close_app(app)
        return
    asgi_app = create_fastapi_gateway(
        provider_url, registry=observed.registry, provider_timeout=PROVIDER_TIMEOUT
    )
    with (
        run_uvicorn_in_thread(asgi_app) as url,
        httpx.Client(base_url=url, timeout=10.0) as client,
    ):
        yield FastAPIGateway(client)


# ---------------------------------------------------------------- traffic


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the traffic of one test produced."""

    replies: list[Reply]
    events: list[dict[str, Any]]
    spans: tuple[ReadableSpan, ...]
    labels: list[Located]
    metrics_text: str


def configure_privacy(
    observed: Observed, case: CaptureCase, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The variable is read when the policy is built, so it is set first.
    if case.capture_env is None:
        monkeypatch.delenv(CAPTURE_CONTENT_ENV, raising=False)
    else:
        monkeypatch.setenv(CAPTURE_CONTENT_ENV, case.capture_env)
    llmobs_core.configure(
        tracer_provider=observed.provider,
        registry=observed.registry,
        privacy=PrivacyPolicy(hash_key=TEST_HASH_KEY, **case.policy),
    )


def request_headers(case: CaptureCase) -> dict[str, str]:
    headers = {
        "X-User-ID": USER_ID,
        "X-Tenant-ID": case.tenant_id,
        "X-Tenant-Tier": "enterprise",
        "X-Request-ID": HOSTILE_REQUEST_ID,
    }
    if case.debug_header is not None:
        headers[DEBUG_HEADER] = case.debug_header()
    return headers


def send_traffic(
    observed: Observed,
    gateway: Gateway,
    case: CaptureCase,
    monkeypatch: pytest.MonkeyPatch,
) -> Outcome:
    configure_privacy(observed, case, monkeypatch)
    replies = []
    for item in TRAFFIC:
        body = {"message": item.message, "stream": item.stream}
        replies.append(gateway.post(item.path, body, request_headers(case)))
    wait_for_request_spans(observed, len(TRAFFIC))

    return Outcome(
        replies=replies,
        events=observed.events,
        spans=observed.spans,
        labels=label_values(observed.registry),
        metrics_text=gateway.scrape_metrics(),
    )


def wait_for_request_spans(observed: Observed, count: int) -> None:
    # Under uvicorn a request span ends after the last body message is sent,
    # so the client can hold the whole response before the span is exported.
    deadline = time.monotonic() + SPAN_WAIT_SECONDS
    while len(request_spans(observed.spans)) < count and time.monotonic() < deadline:
        time.sleep(0.01)


def request_spans(spans: Iterable[ReadableSpan]) -> list[ReadableSpan]:
    return [span for span in spans if span.kind is SpanKind.SERVER]


# ---------------------------------------------------------------- searching


def flatten(where: str, value: Any) -> Iterator[Located]:
    """Yield every scalar in ``value`` as text, and every mapping key."""
    if value is None:
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            yield f"{where} key", str(key)
            yield from flatten(f"{where}.{key}", item)
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from flatten(f"{where}[{index}]", item)
    else:
        yield where, str(value)


def event_texts(
    events: list[dict[str, Any]], skipped_field: str | None = None
) -> list[Located]:
    texts: list[Located] = []
    for index, event in enumerate(events):
        for name, value in event.items():
            if name != skipped_field:
                texts += flatten(f"event {index} field {name}", value)
    return texts


def span_texts(spans: Iterable[ReadableSpan]) -> list[Located]:
    texts: list[Located] = []
    for span in spans:
        where = f"span {span.name!r}"
        texts.append((f"{where} name", span.name))
        texts += flatten(f"{where} attributes", dict(span.attributes or {}))
        for event in span.events:
            texts.append((f"{where} event name", event.name))
            texts += flatten(
                f"{where} event {event.name!r} attributes",
                dict(event.attributes or {}),
            )
        if span.status.description:
            texts.append((f"{where} status", span.status.description))
    return texts


def label_values(registry: CollectorRegistry) -> list[Located]:
    return [
        (f"{sample.name}{{{label}}}", value)
        for metric in registry.collect()
        for sample in metric.samples
        for label, value in sample.labels.items()
    ]


def find_leaks(texts: Iterable[Located], needles: Mapping[str, str]) -> list[str]:
    """Return ``"<needle name> in <where>"`` for every needle found in a text."""
    return [
        f"{name} in {where}"
        for where, text in texts
        for name, needle in needles.items()
        if needle.casefold() in text.casefold()
    ]


def raw_text_needles() -> dict[str, str]:
    messages = {f"raw message {i}": item.message for i, item in enumerate(TRAFFIC)}
    return {**RAW_VALUES, **messages}


def prompt_field(capture_mode: CaptureMode) -> str | None:
    """Return the event field that may contain prompt text in a capture mode."""
    return {
        CaptureMode.NONE: None,
        CaptureMode.SNIPPET: "input_snippet",
        CaptureMode.FULL: "input_content",
    }[capture_mode]


def expected_user_id_hash() -> str:
    key = TEST_HASH_KEY.encode()
    return hmac.new(key, USER_ID.encode(), hashlib.sha256).hexdigest()


# ---------------------------------------------------------------- checks


def check_traffic_observed(outcome: Outcome, case: CaptureCase) -> None:
    """Check that every request produced the telemetry that is then searched."""
    events = outcome.events
    assert [reply.status_code for reply in outcome.replies] == [200] * len(TRAFFIC)
    assert len(events) == len(TRAFFIC)
    assert [event["streaming"] for event in events] == [r.stream for r in TRAFFIC]
    assert [event["cache_hit"] for event in events] == EXPECTED_CACHE_HITS
    assert {event["feature_name"] for event in events} == {
        "chat.assistant",
        "nutrition.coach",
    }
    assert [event["capture_mode"] for event in events] == [case.capture_mode] * len(
        TRAFFIC
    )
    assert len(request_spans(outcome.spans)) == len(TRAFFIC)
    assert [span.name for span in outcome.spans].count("call_llm") == len(TRAFFIC)
    label_set = {value for _, value in outcome.labels}
    assert {"chat.assistant", "nutrition.coach", "enterprise"} <= label_set


def check_identifiers(outcome: Outcome) -> None:
    expected_hash = expected_user_id_hash()
    for event in outcome.events:
        assert HEX_64.fullmatch(event["user_id_hash"])
        assert event["user_id_hash"] == expected_hash
        assert HEX_32.fullmatch(event["request_id"])
    echoed = [reply.request_id for reply in outcome.replies]
    assert echoed == [event["request_id"] for event in outcome.events]


def check_no_leaks(
    outcome: Outcome, *, raw_allowed_in: str | None, prompt_allowed_in: str | None
) -> None:
    """Search every surface for raw values and for prompt text.

    Args:
        outcome: The telemetry of the traffic.
        raw_allowed_in: The one event field that may contain raw values, if
            any.
        prompt_allowed_in: The one event field that may contain prompt text
            (the marker word), if any.
    """
    metrics = [("GET /metrics", outcome.metrics_text)]
    spans = span_texts(outcome.spans)
    raw_needles = raw_text_needles()
    raw_events = event_texts(outcome.events, raw_allowed_in)
    assert find_leaks(raw_events, raw_needles) == []
    assert find_leaks(outcome.labels, raw_needles) == []
    assert find_leaks(metrics, raw_needles) == []
    assert find_leaks(spans, raw_needles) == []
    prompt_events = event_texts(outcome.events, prompt_allowed_in)
    assert find_leaks(prompt_events, PROMPT_TEXT) == []
    assert find_leaks(outcome.labels, PROMPT_TEXT) == []
    assert find_leaks(metrics, PROMPT_TEXT) == []
    assert find_leaks(spans, PROMPT_TEXT) == []


def check_snippets(events: list[dict[str, Any]]) -> None:
    for event in events:
        snippet = event["input_snippet"]
        assert snippet
        assert snippet.startswith(f"{PROMPT_MARKER} asks: I am [EMAIL]")
        for placeholder in PLACEHOLDERS:
            assert placeholder in snippet
        # A cached answer has no output text to capture.
        if not event["cache_hit"]:
            assert event["output_snippet"]


def check_rejected_debug_tokens(observed: Observed, case: CaptureCase) -> None:
    if case.rejected_reason is None:
        return
    rejected = observed.sample(
        "llmobs_debug_tokens_rejected_total", reason=case.rejected_reason
    )
    assert rejected == len(TRAFFIC)


# ---------------------------------------------------------------- tests


@pytest.mark.parametrize("case", NO_RAW_CONTENT_CASES)
def test_no_raw_values_in_telemetry(
    observed: Observed,
    gateway: Gateway,
    case: CaptureCase,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    outcome = send_traffic(observed, gateway, case, monkeypatch)

    check_traffic_observed(outcome, case)
    check_identifiers(outcome)
    check_rejected_debug_tokens(observed, case)
    # Snippets are searched for raw values like every other field.
    check_no_leaks(
        outcome,
        raw_allowed_in=None,
        prompt_allowed_in=prompt_field(case.capture_mode),
    )
    for event in outcome.events:
        assert event["input_content"] is None
        assert event["output_content"] is None
        if case.capture_mode is CaptureMode.NONE:
            assert event["input_snippet"] is None
            assert event["output_snippet"] is None
    if case.capture_mode is CaptureMode.SNIPPET:
        check_snippets(outcome.events)


@pytest.mark.parametrize("case", FULL_CONTENT_CASES)
def test_debug_content_only_in_input_content(
    observed: Observed,
    gateway: Gateway,
    case: CaptureCase,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    outcome = send_traffic(observed, gateway, case, monkeypatch)

    check_traffic_observed(outcome, case)
    check_identifiers(outcome)
    for item, event in zip(TRAFFIC, outcome.events, strict=True):
        assert item.message in event["input_content"]
        assert event["input_snippet"] is None
        assert event["output_snippet"] is None
    check_no_leaks(
        outcome, raw_allowed_in="input_content", prompt_allowed_in="input_content"
    )
