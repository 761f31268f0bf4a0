"""Request span names and ``http.route`` across routers, mounts and root paths.

The span is named ``METHOD TEMPLATE``, with the template in ``http.route``.
As the OpenTelemetry HTTP span conventions ask, a request that matched no
route is named ``METHOD`` and has no ``http.route``.
"""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Mount, Route, Router
from starlette.types import Receive, Scope, Send

from llmobs_asgi import LLMObsMiddleware
from tests._servers import run_uvicorn_in_thread
from tests.conftest import Observed


async def text(request: Request) -> Response:
    return PlainTextResponse("ok")


async def raw_app(scope: Scope, receive: Receive, send: Send) -> None:
    await PlainTextResponse("raw")(scope, receive, send)


def fastapi_app() -> FastAPI:
    app = FastAPI()

    @app.get("/direct/{name}")
    async def direct(name: str) -> dict[str, str]:
        return {"name": name}

    items = APIRouter(prefix="/items")

    @items.get("/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        return {"item": item_id}

    versioned = APIRouter()
    versioned.include_router(items)
    app.include_router(versioned, prefix="/v1")
    app.include_router(versioned, prefix="/v2/{tenant}")

    mounted = APIRouter()
    mounted.mount("/m", Router(routes=[Route("/x/{q}", text)]))
    app.include_router(mounted, prefix="/inc/{org}")

    sub = FastAPI()

    @sub.get("/things/{thing_id}")
    async def thing(thing_id: str) -> dict[str, str]:
        return {"thing": thing_id}

    app.mount("/sub", sub)
    deeper = Mount("/deeper/{depth}", routes=[Route("/d/{y}", text)])
    app.mount("/star", Starlette(routes=[Route("/s/{x}", text), deeper]))
    app.mount("/t/{tenant}", Router(routes=[Route("/r/{z}", text)]))
    app.mount("/raw", raw_app)
    app.add_middleware(LLMObsMiddleware)
    return app


FASTAPI_CASES = [
    ("GET", "/direct/x", "GET /direct/{name}", 200),
    ("GET", "/v1/items/5", "GET /v1/items/{item_id}", 200),
    ("GET", "/v2/acme/items/5", "GET /v2/{tenant}/items/{item_id}", 200),
    ("GET", "/v2/other/items/6", "GET /v2/{tenant}/items/{item_id}", 200),
    ("GET", "/inc/o1/m/x/4", "GET /inc/{org}/m/x/{q}", 200),
    ("GET", "/sub/things/2", "GET /sub/things/{thing_id}", 200),
    ("GET", "/star/s/1", "GET /star/s/{x}", 200),
    ("GET", "/star/deeper/3/d/2", "GET /star/deeper/{depth}/d/{y}", 200),
    ("GET", "/t/acme/r/9", "GET /t/{tenant}/r/{z}", 200),
    ("GET", "/raw/any/thing", "GET /raw/{path}", 200),
    ("POST", "/direct/x", "POST /direct/{name}", 405),
    ("PURGE", "/direct/x", "HTTP /direct/{name}", 405),
    ("GET", "/nope", "GET", 404),
    ("GET", "/sub/nope", "GET", 404),
    ("GET", "/star/nope", "GET", 404),
    ("GET", "/v1/items/not-a-number", "GET /v1/items/{item_id}", 422),
]


def request_span(observed: Observed) -> ReadableSpan:
    """Wait for the request span: the server ends it on its own thread."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        servers = [span for span in observed.spans if span.kind is SpanKind.SERVER]
        if servers:
            assert len(servers) == 1
            return servers[0]
        time.sleep(0.01)
    raise AssertionError(f"no request span; got {observed.names()}")


def fetch(app: Any, method: str, path: str, **server: Any) -> httpx.Response:
    with run_uvicorn_in_thread(app, **server) as url:
        return httpx.request(method, f"{url}{path}")


def expected_route(name: str) -> str | None:
    _, _, route = name.partition(" ")
    return route or None


@pytest.mark.parametrize(("method", "path", "name", "status"), FASTAPI_CASES)
def test_fastapi_route_template(
    observed: Observed, method: str, path: str, name: str, status: int
) -> None:
    response = fetch(fastapi_app(), method, path)
    span = request_span(observed)

    assert response.status_code == status
    assert span.name == name
    assert dict(span.attributes or {}).get("http.route") == expected_route(name)


@pytest.mark.parametrize(
    ("path", "name"),
    [
        ("/v1/items/5", "GET /api/v1/items/{item_id}"),
        ("/v2/acme/items/5", "GET /api/v2/{tenant}/items/{item_id}"),
        ("/sub/things/2", "GET /api/sub/things/{thing_id}"),
        ("/star/deeper/3/d/2", "GET /api/star/deeper/{depth}/d/{y}"),
        ("/t/acme/r/9", "GET /api/t/{tenant}/r/{z}"),
        ("/raw/x", "GET /api/raw/{path}"),
        ("/nope", "GET"),
    ],
)
def test_server_root_path_in_template(observed: Observed, path: str, name: str) -> None:
    response = fetch(fastapi_app(), "GET", path, root_path="/api")
    span = request_span(observed)

    assert response.status_code in (200, 404)
    assert span.name == name
    assert dict(span.attributes or {}).get("http.route") == expected_route(name)
    assert dict(span.attributes or {})["url.path"] == f"/api{path}"


def test_unknown_method_recorded_as_other(observed: Observed) -> None:
    fetch(fastapi_app(), "PURGE", "/direct/x")
    attributes = dict(request_span(observed).attributes or {})

    assert attributes["http.request.method"] == "_OTHER"
    assert attributes["http.request.method_original"] == "PURGE"


def test_llmobs_inside_mounted_app(observed: Observed) -> None:
    sub = FastAPI()

    @sub.get("/things/{thing_id}")
    async def thing(thing_id: str) -> dict[str, str]:
        return {"thing": thing_id}

    sub.add_middleware(LLMObsMiddleware)
    app = FastAPI()
    app.mount("/sub", sub)
    response = fetch(app, "GET", "/sub/things/2")
    span = request_span(observed)

    assert response.json() == {"thing": "2"}
    assert span.name == "GET /sub/things/{thing_id}"


class FragileRoute(Route):
    """A route whose template cannot be read once ``broken`` is set."""

    broken = False

    @property
    def path_format(self) -> str:  # type: ignore[override]
        if self.broken:
            raise RuntimeError("path_format is unavailable")
        return self._path_format

    @path_format.setter
    def path_format(self, value: str) -> None:
        self._path_format = value


def starlette_app() -> Starlette:
    fragile = FragileRoute("/fragile/{x}", text)
    fragile.broken = True
    nested = Starlette(routes=[Mount("/q/{k}", routes=[Route("/leaf/{z}", text)])])
    return Starlette(
        routes=[
            Route("/a/{x}", text),
            fragile,
            Mount("/raw", raw_app),
            Mount("/routed", routes=[Route("/r/{y}", text)]),
            Mount("/p/{tenant}", app=nested),
        ],
        middleware=[Middleware(LLMObsMiddleware)],
    )


@pytest.mark.parametrize(
    ("path", "name", "status"),
    [
        ("/a/1", "GET /a/{x}", 200),
        ("/raw/zz", "GET /raw/{path}", 200),
        ("/routed/r/2", "GET /routed/r/{y}", 200),
        ("/routed/nope", "GET", 404),
        ("/p/acme/q/k1/leaf/3", "GET /p/{tenant}/q/{k}/leaf/{z}", 200),
        ("/p/other/q/k2/leaf/4", "GET /p/{tenant}/q/{k}/leaf/{z}", 200),
        ("/p/acme/nope", "GET", 404),
    ],
)
def test_starlette_route_template(
    observed: Observed, path: str, name: str, status: int
) -> None:
    response = fetch(starlette_app(), "GET", path)
    span = request_span(observed)

    assert response.status_code == status
    assert span.name == name
    assert dict(span.attributes or {}).get("http.route") == expected_route(name)


def test_unreadable_route_keeps_response(observed: Observed) -> None:
    response = fetch(starlette_app(), "GET", "/fragile/1")
    span = request_span(observed)

    assert response.status_code == 200
    assert response.text == "ok"
    assert "x-request-id" in response.headers
    assert span.name == "GET"
    assert "http.route" not in dict(span.attributes or {})
