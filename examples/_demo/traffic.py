"""Plan a mix of gateway requests and send them concurrently."""

from __future__ import annotations

import asyncio
import dataclasses
import random

import httpx

CHAT_PATH = "/api/chat/assistant"
NUTRITION_PATH = "/api/nutrition/coach"
FEATURE_PATHS = {"chat.assistant": CHAT_PATH, "nutrition.coach": NUTRITION_PATH}

STREAM_SHARE = 0.2
TRACEPARENT_SHARE = 0.25
# Share of all requests that ask the fake provider for each failure, and of
# streaming requests that ask for a stream that breaks after two chunks.
ERROR_BEHAVIOR_SHARES = (
    ("rate_limit", 0.02),
    ("server_error", 0.01),
    ("overloaded", 0.007),
    ("slow", 0.006),
)
STREAM_ERROR_SHARE = 0.06

# Gateway status expected for each behaviour. A "stream_error" request gets
# 200 and an error event.
EXPECTED_STATUS = {
    None: 200,
    "rate_limit": 429,
    "server_error": 502,
    "overloaded": 502,
    "slow": 504,
    "stream_error": 200,
}

TENANTS = (
    ("acme", "enterprise"),
    ("globex", "enterprise"),
    ("initech", "pro"),
    ("umbrella", "pro"),
    ("hooli", "free"),
    ("piedpiper", "free"),
)
PLATFORMS = ("ios", "android", "web")
APP_VERSIONS = ("4.12.0", "4.13.1")
REGIONS = ("eu-west-1", "us-east-1")

CHAT_QUESTIONS = (
    "How do I download last month's invoice?",
    "Can I upgrade my plan in the middle of the month?",
    "I forgot my password and the reset e-mail never came.",
    "How do I export the sales report to CSV?",
    "Where do I create an API key with read-only scope?",
    "How do I invite a teammate, and is the seat billed right away?",
    "Why is my PDF export arriving by e-mail?",
    "What does the pro tier cost compared with enterprise?",
)
# Few distinct questions and details, so that many repeat and the gateway's
# cache answers them.
NUTRITION_QUESTIONS = (
    "How much protein should I eat a day?",
    "What is a good breakfast before work?",
    "How much water should I drink when I exercise?",
    "Which snacks are better than chips in the afternoon?",
    "How much fiber do I need a day?",
    "Is one soda a day too much sugar?",
)
NUTRITION_DETAILS = (
    "",
    " I run three times a week.",
    " I am vegetarian.",
    " I work night shifts.",
    " I am training for a marathon.",
    " I am 68 years old.",
    " I am trying to lose weight.",
    " I lift weights.",
    " I have a toddler who copies what I eat.",
    " I travel a lot for work.",
)


@dataclasses.dataclass(frozen=True, slots=True)
class PlannedRequest:
    """One request of the demo traffic.

    Attributes:
        index: Position in the plan.
        feature: Feature name the request is for.
        message: The user's message.
        stream: Whether the request requests server-sent events.
        behavior: Failure requested from the fake provider, or None.
        headers: Request headers.
        trace_id: Trace id sent in ``traceparent``, or None.
    """

    index: int
    feature: str
    message: str
    stream: bool
    behavior: str | None
    headers: dict[str, str]
    trace_id: str | None

    @property
    def path(self) -> str:
        """URL path of the feature's endpoint."""
        return FEATURE_PATHS[self.feature]


@dataclasses.dataclass(frozen=True, slots=True)
class Outcome:
    """Gateway response to one planned request.

    Attributes:
        request: The planned request.
        status_code: HTTP status, or 0 if no response arrived.
        request_id: The ``X-Request-ID`` response header.
        stream_failed: Whether a stream ended with an ``error`` event.
        error: The transport error, if no response arrived.
    """

    request: PlannedRequest
    status_code: int
    request_id: str | None
    stream_failed: bool
    error: str | None


def plan_requests(count: int, seed: int) -> list[PlannedRequest]:
    """Plan ``count`` requests. The same seed gives the same plan."""
    rng = random.Random(seed)
    return [_plan_request(index, rng) for index in range(count)]


def _plan_request(index: int, rng: random.Random) -> PlannedRequest:
    feature = rng.choice(tuple(FEATURE_PATHS))
    stream = rng.random() < STREAM_SHARE
    behavior = _pick_behavior(rng, stream)
    headers = _client_headers(rng)
    trace_id = None
    if rng.random() < TRACEPARENT_SHARE:
        trace_id = f"{rng.getrandbits(128) | 1:032x}"
        headers["traceparent"] = f"00-{trace_id}-{rng.getrandbits(64) | 1:016x}-01"
    if behavior is not None:
        headers["x-fake-behavior"] = behavior
    message = _pick_message(rng, feature, index, behavior)
    return PlannedRequest(index, feature, message, stream, behavior, headers, trace_id)


def _pick_behavior(rng: random.Random, stream: bool) -> str | None:
    if stream and rng.random() < STREAM_ERROR_SHARE:
        return "stream_error"
    draw = rng.random()
    for behavior, share in ERROR_BEHAVIOR_SHARES:
        if draw < share:
            return behavior
        draw -= share
    return None


def _pick_message(
    rng: random.Random, feature: str, index: int, behavior: str | None
) -> str:
    if feature != "nutrition.coach":
        return rng.choice(CHAT_QUESTIONS)
    question = rng.choice(NUTRITION_QUESTIONS) + rng.choice(NUTRITION_DETAILS)
    if behavior is not None:
        # A cache hit skips the provider, so the requested failure would not happen.
        question = f"{question} (request {index})"
    return question


def _client_headers(rng: random.Random) -> dict[str, str]:
    tenant_id, tier = rng.choice(TENANTS)
    user = rng.randrange(50)
    return {
        "x-tenant-id": tenant_id,
        "x-tenant-tier": tier,
        "x-user-id": f"{tenant_id}-user-{user}",
        "x-session-id": f"session-{tenant_id}-{user}-{rng.randrange(3)}",
        "x-platform": rng.choice(PLATFORMS),
        "x-app-version": rng.choice(APP_VERSIONS),
        "x-region": rng.choice(REGIONS),
    }


async def send_requests(
    base_url: str,
    requests: list[PlannedRequest],
    *,
    concurrency: int,
    timeout: float,
) -> list[Outcome]:
    """Send the requests with at most ``concurrency`` in flight.

    Returns:
        One outcome per request, in plan order.
    """
    semaphore = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(
        base_url=base_url, timeout=timeout, limits=limits
    ) as client:

        async def send_limited(request: PlannedRequest) -> Outcome:
            async with semaphore:
                return await _send(client, request)

        return await asyncio.gather(*(send_limited(r) for r in requests))


async def _send(client: httpx.AsyncClient, request: PlannedRequest) -> Outcome:
    body = {"message": request.message, "stream": request.stream}
    try:
        async with client.stream(
            "POST", request.path, json=body, headers=request.headers
        ) as response:
            content = await response.aread()
    except httpx.HTTPError as error:
        return Outcome(request, 0, None, stream_failed=False, error=repr(error))
    stream_failed = request.stream and b"event: error" in content
    request_id = response.headers.get("x-request-id")
    return Outcome(request, response.status_code, request_id, stream_failed, None)
