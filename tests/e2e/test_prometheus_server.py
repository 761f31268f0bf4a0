"""A real prometheus server scrapes the example gateway's /metrics.

Debian's prometheus binary runs on a free 127.0.0.1 port with a temporary
TSDB, scrapes the in-process gateway every second and loads the rules of
deploy/prometheus/llm_rules.yml. The gateway serves the test's private
registry, so only this test's calls are counted.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from examples.fake_provider.app import FakeProviderConfig
from examples.fake_provider.app import create_app as create_fake_provider
from examples.fastapi_gateway.app import create_app as create_gateway
from llmobs_core.emitters.prometheus import LATENCY_BUCKETS_MS
from tests._prometheus import (
    RULES_FILE,
    PrometheusServer,
    is_finite_number,
    requires_prometheus,
    run_prometheus,
)
from tests._servers import run_uvicorn_in_thread
from tests.conftest import Observed

pytestmark = [pytest.mark.prometheus, requires_prometheus]

CALLS = 50
CHAT_PATH = "/api/chat/assistant"
QUERY_TIMEOUT_SECONDS = 30.0
RULES_TIMEOUT_SECONDS = 10.0
P95_QUERY = "histogram_quantile(0.95, sum by (le) (rate(llm_latency_ms_bucket[1m])))"

PROMETHEUS_CONFIG = """\
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files:
  - {rules}
scrape_configs:
  - job_name: llm_gateway
    static_configs:
      - targets: ["{target}"]
"""


@pytest.fixture
def gateway_url(observed: Observed) -> Iterator[str]:
    provider = create_fake_provider(FakeProviderConfig(latency_scale=0))
    with run_uvicorn_in_thread(provider) as provider_url:
        gateway = create_gateway(f"{provider_url}/v1", registry=observed.registry)
        with run_uvicorn_in_thread(gateway) as url:
            yield url


@pytest.fixture
def prometheus(gateway_url: str, tmp_path: Path) -> Iterator[PrometheusServer]:
    target = gateway_url.removeprefix("http://")
    config = PROMETHEUS_CONFIG.format(rules=RULES_FILE, target=target)
    with run_prometheus(config, tmp_path) as server:
        yield server


def send_chat(client: httpx.Client, count: int) -> None:
    for index in range(count):
        body = {"message": f"How do I export report {index} to CSV?"}
        response = client.post(CHAT_PATH, json=body)
        assert response.status_code == 200, response.text


def wait_for_rules(server: PrometheusServer) -> list[dict[str, str]]:
    """Return every rule once each has been evaluated at least once."""
    deadline = time.monotonic() + RULES_TIMEOUT_SECONDS
    while True:
        response = server.client.get("/api/v1/rules")
        response.raise_for_status()
        groups = response.json()["data"]["groups"]
        rules = [rule for group in groups for rule in group["rules"]]
        if rules and all(rule["health"] != "unknown" for rule in rules):
            return rules
        if time.monotonic() > deadline:
            return rules
        time.sleep(0.1)


def test_prometheus_scrapes_gateway(
    prometheus: PrometheusServer, gateway_url: str
) -> None:
    # Prometheus 2.42 applies its targets about 5 s after start, so the first
    # wait takes that long.
    with httpx.Client(base_url=gateway_url, timeout=10.0) as client:
        # rate() needs two samples that differ, so let one scrape see the
        # first call before the others are sent.
        send_chat(client, 1)
        first = prometheus.wait_for_value(
            "sum(llm_requests_total)", 1, QUERY_TIMEOUT_SECONDS
        )
        assert first == 1, prometheus.log()
        send_chat(client, CALLS - 1)

    total = prometheus.wait_for_value(
        "sum(llm_requests_total)", CALLS, QUERY_TIMEOUT_SECONDS
    )

    assert total == CALLS, prometheus.log()
    by_status = prometheus.query("sum by (status) (llm_requests_total)")
    assert [item["metric"]["status"] for item in by_status] == ["ok"]
    p95 = prometheus.query_value(P95_QUERY)
    assert is_finite_number(p95), p95
    assert p95 is not None
    assert 0 < p95 <= LATENCY_BUCKETS_MS[-1]
    recorded = prometheus.wait_for_value(
        'sum(llm:requests:rate5m{feature_name="chat.assistant"}) > bool 0', 1
    )
    assert recorded == 1, prometheus.log()
    rules = wait_for_rules(prometheus)
    assert len(rules) > 20
    failing = {
        rule["name"]: rule.get("lastError") for rule in rules if rule["health"] != "ok"
    }
    assert not failing, failing
