"""Carry per-request attributes (ids, tenant, feature) through a request.

One context variable, ``llmobs_request``, holds a mutable ``RequestState`` per
request. Inner code changes its fields in place, so values set inside a task
group, a ``run_in_threadpool`` call or a dependency stay visible to the
middleware that owns the request: those copy the context, not the object.

The current feature name is a second context variable, ``llmobs_feature``,
because concurrent tasks of one request may work for different features.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import logging
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextvars import ContextVar, Token
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, ParamSpec, TypeVar, cast, overload

__all__ = [
    "ContextThreadPoolExecutor",
    "FeatureScope",
    "RequestContext",
    "RequestState",
    "bind_context",
    "current_context",
    "current_feature",
    "feature",
    "run_in_context",
]

logger = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")


@dataclass(slots=True)
class RequestState:
    """Mutable attributes of the request being served.

    Plugins create one per request; application code changes it only through
    ``bind_context`` and ``feature``.
    """

    request_id: str | None = None
    trace_id: str | None = None
    tenant_id: str | None = None
    tenant_tier: str | None = None
    user_id_hash: str | None = None
    session_id: str | None = None
    platform: str | None = None
    app_version: str | None = None
    region: str | None = None
    feature_name: str | None = None
    extra: dict[str, str] = field(default_factory=dict)
    feature_from_code: bool = False
    """True once a ``feature()`` scope named the request's feature, so a later
    or nested scope no longer replaces it."""
    debug: bool = False
    """True when the privacy policy allows full content capture for this
    request: an allow-listed tenant or user, or a valid signed debug token.
    Set by the plugins only; ``bind_context`` cannot change it."""


@dataclass(frozen=True, slots=True)
class RequestContext:
    """Read-only snapshot of the current request's attributes."""

    request_id: str | None
    trace_id: str | None
    tenant_id: str | None
    tenant_tier: str | None
    user_id_hash: str | None
    session_id: str | None
    platform: str | None
    app_version: str | None
    region: str | None
    feature_name: str | None
    extra: Mapping[str, str]


llmobs_request: ContextVar[RequestState | None] = ContextVar(
    "llmobs_request", default=None
)
llmobs_feature: ContextVar[str | None] = ContextVar("llmobs_feature", default=None)
llmobs_bound: ContextVar[Mapping[str, Any] | None] = ContextVar(
    "llmobs_bound", default=None
)
"""Values of the enclosing ``with bind_context(...)`` blocks in this task."""

# Attributes of a request that bind_context may set, besides feature_name.
_ATTRIBUTES = (
    "tenant_id",
    "tenant_tier",
    "user_id_hash",
    "session_id",
    "platform",
    "app_version",
    "region",
)
_BINDABLE = frozenset({*_ATTRIBUTES, "feature_name"})


def current_context() -> RequestContext | None:
    """Return a snapshot of the current request's attributes.

    Returns:
        The snapshot, or None outside any request and ``bind_context`` scope.
        Values bound by an enclosing ``with bind_context(...)`` block win
        over the request's, and the feature name is the innermost
        ``feature()`` scope's, if any.
    """
    state = llmobs_request.get()
    if state is None:
        return None
    values = effective_attributes(state, llmobs_bound.get())

    return RequestContext(
        request_id=state.request_id,
        trace_id=state.trace_id,
        feature_name=current_feature(),
        **values,
    )


def effective_attributes(
    state: RequestState, bound: Mapping[str, Any] | None
) -> dict[str, Any]:
    """Return a request's attributes and ``extra``, with bound values applied.

    The feature name is left out: ``current_feature`` resolves it.
    """
    values: dict[str, Any] = {name: getattr(state, name) for name in _ATTRIBUTES}
    values["extra"] = dict(state.extra)
    if bound:
        for name, value in bound.items():
            if name == "extra":
                values["extra"].update(value)
            elif name != "feature_name":
                values[name] = value
    return values


def current_feature() -> str | None:
    """Return the feature name that events made here are tagged with."""
    name = llmobs_feature.get()
    if name is not None:
        return name
    bound = llmobs_bound.get()
    if bound and bound.get("feature_name") is not None:
        return str(bound["feature_name"])
    state = llmobs_request.get()
    return state.feature_name if state is not None else None


RequestTokens = tuple[
    Token[RequestState | None], Token[str | None], Token[Mapping[str, Any] | None]
]


def enter_request(state: RequestState) -> RequestTokens:
    """Make ``state`` the current request and clear feature and bindings.

    Plugins call this at the start of every request, so that nothing from a
    previous request on the same task or thread is visible in this one.

    Returns:
        Tokens to pass to ``exit_request`` in a ``finally`` block.
    """
    return (
        llmobs_request.set(state),
        llmobs_feature.set(None),
        llmobs_bound.set(None),
    )


def exit_request(tokens: RequestTokens) -> None:
    """Restore the context that was current before ``enter_request``.

    A reset from another context (possible when a server finishes a request on
    a different task) falls back to clearing the variables.
    """
    request_token, feature_token, bound_token = tokens
    try:
        llmobs_bound.reset(bound_token)
        llmobs_feature.reset(feature_token)
        llmobs_request.reset(request_token)
    except ValueError:
        logger.debug("llmobs context reset from a foreign context; clearing it")
        llmobs_bound.set(None)
        llmobs_feature.set(None)
        llmobs_request.set(None)


class _Binding:
    """Handle returned by ``bind_context``.

    As a plain call, the values were written to the request's shared state.
    Entering it as a context manager takes them back out of the shared state
    and binds them in this task's context only, so concurrent blocks of one
    request never see or restore each other's values.
    """

    __slots__ = ("_bound", "_bound_token", "_previous", "_state", "_token")

    def __init__(
        self,
        state: RequestState,
        previous: dict[str, Any],
        bound: dict[str, Any],
        token: Token[RequestState | None] | None,
    ) -> None:
        self._state = state
        self._previous = previous
        self._bound = bound
        self._token = token
        self._bound_token: Token[Mapping[str, Any] | None] | None = None

    def __enter__(self) -> RequestContext:
        self._restore_state()
        outer = llmobs_bound.get() or {}
        bound = {**outer, **self._bound}
        if "extra" in outer and "extra" in self._bound:
            bound["extra"] = {**outer["extra"], **self._bound["extra"]}
        self._bound_token = llmobs_bound.set(bound)
        snapshot = current_context()
        assert snapshot is not None  # bind_context always leaves a state set
        return snapshot

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        _reset(llmobs_bound, self._bound_token)
        self._bound_token = None
        _reset(llmobs_request, self._token)
        self._token = None

    def unbind(self) -> None:
        """Restore the values that were current before a plain call."""
        self._restore_state()
        _reset(llmobs_request, self._token)
        self._token = None

    def _restore_state(self) -> None:
        for name, value in self._previous.items():
            setattr(self._state, name, value)
        self._previous = {}


def bind_context(
    *,
    extra: Mapping[str, str] | None = None,
    user_id: str | None = None,
    **attributes: str | None,
) -> _Binding:
    """Set request attributes for the current request.

    As a plain call, the values last until the request ends and are visible
    to the whole request, including its middleware. As a context manager,
    they apply inside the block and to the current task only, and are gone
    on exit. Outside a request (a script or a background job) it starts a
    request-less state.

    Args:
        extra: String attributes merged into the event's ``extra`` field.
        user_id: A raw end-user id; only its keyed hash is kept, as
            ``user_id_hash``.
        **attributes: Any of ``tenant_id``, ``tenant_tier``, ``user_id_hash``,
            ``session_id``, ``platform``, ``app_version``, ``region`` and
            ``feature_name``; each a string or None.

    Returns:
        A handle usable as a context manager; its ``unbind()`` undoes a plain
        call.

    Raises:
        TypeError: For an unknown attribute name or a non-string value.
    """
    _check_bindable({**attributes, "user_id": user_id}, extra)
    if user_id is not None:
        from llmobs_core.config import get_config

        attributes["user_id_hash"] = get_config().hasher(user_id)
    state = llmobs_request.get()
    token = None
    if state is None:
        state = RequestState()
        token = llmobs_request.set(state)

    bound: dict[str, Any] = dict(attributes)
    previous: dict[str, Any] = {name: getattr(state, name) for name in attributes}
    for name, value in attributes.items():
        setattr(state, name, value)
    if extra:
        bound["extra"] = dict(extra)
        previous["extra"] = dict(state.extra)
        state.extra = {**state.extra, **extra}

    return _Binding(state, previous, bound, token)


def _reset(variable: ContextVar[Any], token: Token[Any] | None) -> None:
    """Reset a context variable, tolerating a token from another context."""
    if token is None:
        return
    try:
        variable.reset(token)
    except ValueError:
        logger.debug("%s reset from a foreign context; left as is", variable.name)


def _check_bindable(
    attributes: Mapping[str, object], extra: Mapping[str, str] | None
) -> None:
    unknown = sorted(set(attributes) - _BINDABLE - {"user_id"})
    if unknown:
        raise TypeError(
            f"bind_context() got unknown attribute(s) {unknown}; "
            f"allowed: {sorted(_BINDABLE)} and extra={{...}}"
        )
    for name, value in attributes.items():
        if name == "user_id" and value is None:
            continue
        if value is not None and not isinstance(value, str):
            raise TypeError(
                f"bind_context() needs a str or None for {name}, "
                f"got {name}={value!r} ({type(value).__name__})"
            )
    for key, value in (extra or {}).items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise TypeError(
                f"bind_context(extra=...) needs str keys and values, "
                f"got {key!r}: {value!r}"
            )


def feature(name: str) -> FeatureScope:
    """Tag everything a function or block does with a feature name.

    Use as ``@feature("chat.assistant")`` on a sync or async function, or as
    ``with feature("chat.assistant"):``. Inside, every event carries the name.
    The first ``feature`` entered in a request also becomes the request's
    feature (it replaces the name from the middleware's route map).

    Args:
        name: The feature name, a non-empty string.

    Returns:
        A scope that works as a decorator and as a single-use context manager.

    Raises:
        TypeError: If ``name`` is not a string.
        ValueError: If ``name`` is empty.
    """
    if not isinstance(name, str):
        raise TypeError(f"feature() needs a str name, got name={name!r}")
    if not name.strip():
        raise ValueError(f"feature() needs a non-empty name, got name={name!r}")

    return FeatureScope(name)


class FeatureScope:
    """Scope returned by ``feature()``: a decorator and a context manager."""

    __slots__ = ("_token", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self._token: Token[str | None] | None = None

    def __enter__(self) -> str:
        if self._token is not None:
            raise RuntimeError(
                f"feature({self.name!r}) is already entered; call feature() "
                "once for each 'with' block"
            )
        self._token = _enter_feature(self.name)
        return self.name

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        _reset(llmobs_feature, self._token)
        self._token = None

    @overload
    def __call__(
        self, function: Callable[P, Awaitable[R]]
    ) -> Callable[P, Awaitable[R]]: ...

    @overload
    def __call__(self, function: Callable[P, R]) -> Callable[P, R]: ...

    def __call__(self, function: Callable[P, Any]) -> Callable[P, Any]:
        """Wrap a sync or async function so each call runs in this feature.

        Raises:
            TypeError: For a generator function, whose body runs after the
                call returns; decorate the function that creates the stream.
        """
        if inspect.isgeneratorfunction(function) or inspect.isasyncgenfunction(
            function
        ):
            raise TypeError(
                f"feature({self.name!r}) cannot wrap generator function "
                f"{function.__qualname__}; decorate the function that creates "
                "the stream, or use 'with feature(...)' inside the generator"
            )
        name = self.name
        if inspect.iscoroutinefunction(function):
            async_function = cast(Callable[P, Awaitable[Any]], function)

            @functools.wraps(function)
            async def run_async(*args: P.args, **kwargs: P.kwargs) -> Any:
                token = _enter_feature(name)
                try:
                    return await async_function(*args, **kwargs)
                finally:
                    _reset(llmobs_feature, token)

            return run_async

        @functools.wraps(function)
        def run_sync(*args: P.args, **kwargs: P.kwargs) -> Any:
            token = _enter_feature(name)
            try:
                return function(*args, **kwargs)
            finally:
                _reset(llmobs_feature, token)

        return run_sync


def _enter_feature(name: str) -> Token[str | None]:
    state = llmobs_request.get()
    if state is not None and not state.feature_from_code:
        state.feature_name = name
        state.feature_from_code = True
    return llmobs_feature.set(name)


def run_in_context(function: Callable[P, R]) -> Callable[P, R]:
    """Bind ``function`` to the current context, for work on other threads.

    The context (the request, its span and feature) is captured now; each
    call runs in a fresh copy of it, so one wrapper may run on several
    threads at once. Changes made through ``bind_context`` reach the request,
    because every copy shares the request's ``RequestState``.

    Args:
        function: Any callable.

    Returns:
        A callable with the same signature.
    """
    captured = contextvars.copy_context()

    @functools.wraps(function)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        return captured.copy().run(function, *args, **kwargs)

    return run


class ContextThreadPoolExecutor(ThreadPoolExecutor):
    """Thread pool whose tasks run in a copy of the submitter's context.

    A plain ``ThreadPoolExecutor`` runs tasks in the worker thread's own
    context, so they see no request, span or feature. This executor copies
    the context of the thread that calls ``submit`` (or ``map``) once per
    task.
    """

    def submit(
        self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs
    ) -> Future[R]:
        """Schedule ``fn(*args, **kwargs)`` in a copy of the current context."""
        context = contextvars.copy_context()

        def run() -> R:
            return context.run(fn, *args, **kwargs)

        return super().submit(run)
