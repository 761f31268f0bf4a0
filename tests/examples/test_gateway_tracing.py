"""The example gateways' tracing set-up: OTLP variables, resource, provider."""

from __future__ import annotations

import pytest

from examples.fastapi_gateway._tracing import (
    SERVICE_NAME,
    gateway_resource,
    gateway_tracer_provider,
    otlp_traces_endpoint,
)

OTEL_VARIABLES = (
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
    "OTEL_SERVICE_NAME",
    "OTEL_RESOURCE_ATTRIBUTES",
)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in OTEL_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def test_endpoint_unset_returns_none() -> None:
    assert otlp_traces_endpoint() is None


@pytest.mark.parametrize(
    ("base", "expected"),
    [
        ("http://127.0.0.1:4318", "http://127.0.0.1:4318/v1/traces"),
        ("http://127.0.0.1:4318/", "http://127.0.0.1:4318/v1/traces"),
        ("https://127.0.0.2:4318", "https://127.0.0.2:4318/v1/traces"),
        ("http://[::1]:4318", "http://[::1]:4318/v1/traces"),
    ],
)
def test_base_endpoint_gets_traces_path(
    monkeypatch: pytest.MonkeyPatch, base: str, expected: str
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", base)

    assert otlp_traces_endpoint() == expected


def test_traces_endpoint_used_as_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
    monkeypatch.setenv(
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://127.0.0.1:9999/custom"
    )

    assert otlp_traces_endpoint() == "http://127.0.0.1:9999/custom"


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://192.0.2.1:4318", "not on a loopback"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://localhost:4318", "IP address"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "grpc://127.0.0.1:4317", "http(s) URL"),
        ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://[2001:db8::1]:4318", "loopback"),
    ],
)
def test_invalid_endpoint_rejected(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    monkeypatch.setenv(variable, value)

    with pytest.raises(ValueError, match=f"^{variable}=") as raised:
        otlp_traces_endpoint()
    assert message in str(raised.value)


def test_remote_base_rejected_beside_local_traces(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://127.0.0.1:4318")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://192.0.2.1:4318")

    with pytest.raises(ValueError, match=r"^OTEL_EXPORTER_OTLP_ENDPOINT="):
        otlp_traces_endpoint()


def test_grpc_protocol_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")

    with pytest.raises(ValueError, match=r"^OTEL_EXPORTER_OTLP_PROTOCOL='grpc'"):
        otlp_traces_endpoint()


def test_traces_protocol_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/protobuf")

    assert otlp_traces_endpoint() == "http://127.0.0.1:4318/v1/traces"


def test_resource_default_service_name() -> None:
    assert gateway_resource().attributes["service.name"] == SERVICE_NAME


def test_resource_attributes_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "OTEL_RESOURCE_ATTRIBUTES", "service.name=from-attributes,team=llm"
    )

    attributes = gateway_resource().attributes

    assert attributes["service.name"] == "from-attributes"
    assert attributes["team"] == "llm"


def test_service_name_variable_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "service.name=from-attributes")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "from-service-name")

    assert gateway_resource().attributes["service.name"] == "from-service-name"


def test_no_destination_no_provider() -> None:
    assert gateway_tracer_provider(None, otlp=False) is None
