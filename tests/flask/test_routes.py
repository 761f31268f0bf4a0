"""Request span names and ``http.route`` for blueprints and mounted Flask apps.

The template is Flask's rule (``/items/<int:item_id>``) after the request's
script root, so it includes blueprint prefixes and the mount point of an app
that ``DispatcherMiddleware`` or the server mounted under ``SCRIPT_NAME``.
"""

from __future__ import annotations

from typing import Any

import pytest
from flask import Blueprint, Flask
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind
from werkzeug.middleware.dispatcher import DispatcherMiddleware
from werkzeug.routing import Rule
from werkzeug.test import Client

from llmobs_flask import LLMObs, LLMObsWSGIMiddleware
from tests.conftest import Observed


def item_blueprint(name: str) -> Blueprint:
    items = Blueprint(name, __name__)

    @items.get("/items/<int:item_id>")
    def item(item_id: int, **prefix_values: str) -> dict[str, int]:
        return {"item": item_id}

    return items


def blueprint_app() -> Flask:
    app = Flask(__name__)
    LLMObs(app)
    admin = Blueprint("admin", __name__, url_prefix="/admin")

    @admin.get("/users/<user_id>")
    def user(user_id: str) -> dict[str, str]:
        return {"user": user_id}

    version = Blueprint("version", __name__, url_prefix="/v1")
    version.register_blueprint(admin)
    app.register_blueprint(version)
    app.register_blueprint(item_blueprint("first"), url_prefix="/v1")
    app.register_blueprint(item_blueprint("second"), url_prefix="/v2/<tenant>")
    return app


def sub_app(name: str) -> Flask:
    app = Flask(name)

    @app.get("/things/<thing_id>")
    def thing(thing_id: str) -> dict[str, str]:
        return {"thing": thing_id}

    return app


def request_span(observed: Observed) -> ReadableSpan:
    servers = [span for span in observed.spans if span.kind is SpanKind.SERVER]
    assert len(servers) == 1, observed.names()
    return servers[0]


def route_of(span: ReadableSpan) -> Any:
    return dict(span.attributes or {}).get("http.route")


@pytest.mark.parametrize(
    ("path", "route", "status"),
    [
        ("/v1/items/5", "/v1/items/<int:item_id>", 200),
        ("/v2/acme/items/5", "/v2/<tenant>/items/<int:item_id>", 200),
        ("/v1/admin/users/u1", "/v1/admin/users/<user_id>", 200),
        ("/v1/items/not-a-number", None, 404),
        ("/nope", None, 404),
    ],
)
def test_blueprint_route_template(
    observed: Observed, path: str, route: str | None, status: int
) -> None:
    response = blueprint_app().test_client().get(path, buffered=True)
    span = request_span(observed)

    assert response.status_code == status
    assert route_of(span) == route
    assert span.name == f"GET {route}" if route else span.name == "GET"


def test_unknown_method_named_http(observed: Observed) -> None:
    client = blueprint_app().test_client()

    response = client.open("/v1/items/5", method="PURGE", buffered=True)
    span = request_span(observed)

    assert response.status_code == 405
    assert span.name == "HTTP"
    attributes = dict(span.attributes or {})
    assert attributes["http.request.method"] == "_OTHER"
    assert attributes["http.request.method_original"] == "PURGE"


def test_server_script_name_in_template(observed: Observed) -> None:
    client = blueprint_app().test_client()

    response = client.get("/v1/items/5", base_url="http://localhost/api", buffered=True)
    span = request_span(observed)

    assert response.status_code == 200
    assert route_of(span) == "/api/v1/items/<int:item_id>"
    assert dict(span.attributes or {})["url.path"] == "/api/v1/items/5"


def test_dispatcher_apps_each_observed(observed: Observed) -> None:
    front = blueprint_app()
    sub = sub_app("sub")
    LLMObs(sub)
    client = Client(DispatcherMiddleware(front, {"/sub": sub}))

    response = client.get("/sub/things/t1", buffered=True)
    span = request_span(observed)

    assert response.status_code == 200
    assert route_of(span) == "/sub/things/<thing_id>"
    assert span.name == "GET /sub/things/<thing_id>"
    assert dict(span.attributes or {})["url.path"] == "/sub/things/t1"


def test_dispatcher_inside_observed_app(observed: Observed) -> None:
    front = blueprint_app()
    front.wsgi_app = DispatcherMiddleware(  # type: ignore[method-assign]
        front.wsgi_app, {"/sub": sub_app("plain-sub")}
    )
    # A second wrap: the llmobs middleware now runs outside the dispatcher.
    front.wsgi_app = LLMObsWSGIMiddleware(front.wsgi_app)  # type: ignore[method-assign]
    client = front.test_client()

    sub_response = client.get("/sub/things/t1", buffered=True)
    sub_span = request_span(observed)
    observed.exporter.clear()
    front_response = client.get("/v1/items/5", buffered=True)
    front_span = request_span(observed)

    assert sub_response.status_code == 200
    assert route_of(sub_span) == "/sub/things/<thing_id>"
    assert front_response.status_code == 200
    assert route_of(front_span) == "/v1/items/<int:item_id>"


def test_dispatcher_sub_app_error_recorded(observed: Observed) -> None:
    sub = sub_app("failing-sub")

    @sub.get("/boom")
    def boom() -> None:
        raise RuntimeError("handler failed")

    front = Flask("front")
    LLMObs(front)
    front.wsgi_app = LLMObsWSGIMiddleware(  # type: ignore[method-assign]
        DispatcherMiddleware(front.wsgi_app, {"/sub": sub})
    )

    response = front.test_client().get("/sub/boom", buffered=True)
    span = request_span(observed)

    assert response.status_code == 500
    assert route_of(span) == "/sub/boom"
    assert dict(span.attributes or {})["error.type"] == "RuntimeError"


class FragileRule(Rule):
    """A rule whose template cannot be read once ``broken`` is set."""

    broken = False

    @property
    def rule(self) -> str:  # type: ignore[override]
        if self.broken:
            raise RuntimeError("rule is unavailable")
        return self._rule

    @rule.setter
    def rule(self, value: str) -> None:
        self._rule = value


def test_unreadable_rule_keeps_response(observed: Observed) -> None:
    app = Flask(__name__)
    app.url_rule_class = FragileRule
    LLMObs(app)

    @app.get("/fragile/<x>")
    def fragile(x: str) -> dict[str, str]:
        return {"x": x}

    for rule in app.url_map.iter_rules():
        if isinstance(rule, FragileRule):
            rule.broken = True
    response = app.test_client().get("/fragile/1", buffered=True)
    span = request_span(observed)

    assert response.status_code == 200
    assert response.json == {"x": "1"}
    assert "x-request-id" in response.headers
    assert span.name == "GET"
    assert route_of(span) is None
