from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Runs in a fresh interpreter because the global tracer provider can be set
# only once per process.
GLOBAL_PROVIDER_SCRIPT = textwrap.dedent(
    """
    import json
    from fastapi import FastAPI
    from fastapi.testclient import TestClient
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
        InMemorySpanExporter,
    )
    from prometheus_client import CollectorRegistry

    import llmobs_core as llmobs
    from llmobs_asgi import LLMObsMiddleware

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    llmobs.configure(registry=CollectorRegistry(), hash_key="k" * 32)

    app = FastAPI()
    app.add_middleware(LLMObsMiddleware)

    @app.get("/items/{item_id}")
    async def item(item_id: str) -> dict[str, str]:
        with llmobs.call_llm(model="gpt-4o-mini"):
            pass
        return {"item": item_id}

    with TestClient(app) as client:
        client.get("/items/7")
    print(json.dumps([
        {
            "name": span.name,
            "kind": span.kind.name,
            "id": span.context.span_id,
            "parent": span.parent.span_id if span.parent else None,
        }
        for span in exporter.get_finished_spans()
    ]))
    """
)


def test_fastapi_global_provider_one_server_span() -> None:
    result = subprocess.run(
        [sys.executable, "-c", GLOBAL_PROVIDER_SCRIPT],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    spans = json.loads(result.stdout.strip().splitlines()[-1])
    by_name = {span["name"]: span for span in spans}

    server = [span for span in spans if span["kind"] == "SERVER"]
    assert len(server) == 1
    assert server[0]["name"] == "GET /items/{item_id}"
    ours = by_name["llmobs GET /items/{item_id}"]
    assert ours["kind"] == "INTERNAL"
    assert ours["parent"] == server[0]["id"]
    assert by_name["call_llm"]["kind"] == "CLIENT"
