"""Cost budgets: spend per feature, tier or tenant, checked before each call.

A ``BudgetBook`` contains ``Budget`` limits and a store of spend. Its
``BudgetEmitter`` adds every finished call's ``cost_usd`` to the budgets the
call matches, and ``budget_decision()`` returns ``allow``, ``degrade`` or
``deny`` for the next call. The application decides what ``degrade`` means,
for example a cheaper model or a lower ``max_tokens``.

A decision reads spend before the call's cost is known, so calls that were
allowed concurrently can together overspend a budget. The excess is below
the total cost of the calls in flight when the last one was allowed: at most
the number of concurrent calls times the cost of the dearest call.
"""

from __future__ import annotations

import enum
import logging
import math
import re
import threading
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Literal

from opentelemetry.trace import Span
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge

from llmobs_core._budget_stores import (
    BudgetStore,
    BudgetStoreError,
    InMemoryBudgetStore,
    RedisBudgetStore,
)
from llmobs_core._ratelimit import RateLimitedWarning
from llmobs_core.context import current_context, current_feature
from llmobs_core.emitters._base import StageEvent
from llmobs_core.schema import LLMCallLog

__all__ = [
    "SCOPE_KEYS",
    "Budget",
    "BudgetBook",
    "BudgetDecision",
    "BudgetEmitter",
    "BudgetOutcome",
    "BudgetStore",
    "BudgetStoreError",
    "InMemoryBudgetStore",
    "RedisBudgetStore",
    "budget_book_from",
    "budget_decision",
]

logger = logging.getLogger(__name__)

SCOPE_KEYS = frozenset({"feature_name", "tenant_tier", "tenant_id"})
"""Event fields a budget's scope may match on."""
PERIODS: Mapping[str, timedelta] = MappingProxyType(
    {"hour": timedelta(hours=1), "day": timedelta(days=1)}
)
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,48}$")


LIMIT_TOLERANCE_USD = 1e-6
"""Spend this close below a limit counts as reaching it (float sums)."""


class BudgetOutcome(enum.StrEnum):
    """Outcome of a budget decision, from least to most restrictive."""

    ALLOW = "allow"
    DEGRADE = "degrade"
    DENY = "deny"


_SEVERITY = {BudgetOutcome.ALLOW: 0, BudgetOutcome.DEGRADE: 1, BudgetOutcome.DENY: 2}


@dataclass(frozen=True, slots=True, kw_only=True)
class Budget:
    """A spend limit in US dollars for the calls that match a scope.

    Args:
        name: Short name, 1 to 48 letters, digits, ``_``, ``.`` or ``-``; the
            ``budget`` label of the budget metrics.
        scope: Values of ``feature_name``, ``tenant_tier`` and ``tenant_id``
            that a call must all have to count; an empty mapping matches
            every call.
        limit_usd: Spend per period at which calls are denied.
        period: ``"day"`` or ``"hour"``; periods start at UTC midnight or on
            the UTC hour.
        soft_ratio: Fraction of ``limit_usd`` past which calls are degraded.

    Raises:
        ValueError: For an invalid name, scope key, limit, period or ratio.
        TypeError: For a scope that is not a mapping of strings.
    """

    name: str
    scope: Mapping[str, str] = field(default_factory=dict)
    limit_usd: float
    period: Literal["day", "hour"] = "day"
    soft_ratio: float = 0.8

    def __post_init__(self) -> None:
        _check_name(self.name)
        object.__setattr__(self, "scope", _checked_scope(self.name, self.scope))
        if not _is_number(self.limit_usd) or not self.limit_usd > 0:
            raise ValueError(
                f"budget {self.name!r}: limit_usd must be a finite number above 0, "
                f"got {self.limit_usd!r}"
            )
        if self.period not in PERIODS:
            raise ValueError(
                f"budget {self.name!r}: period must be 'day' or 'hour', "
                f"got {self.period!r}"
            )
        if not _is_number(self.soft_ratio) or not 0 < self.soft_ratio <= 1:
            raise ValueError(
                f"budget {self.name!r}: soft_ratio must be above 0 and at most 1, "
                f"got {self.soft_ratio!r}; use 1 for no degrade step"
            )

    def __hash__(self) -> int:
        # The scope is a read-only mapping, which has no hash of its own.
        scope = tuple(sorted(self.scope.items()))
        return hash((self.name, scope, self.limit_usd, self.period, self.soft_ratio))

    def matches(
        self, feature_name: str | None, tenant_tier: str | None, tenant_id: str | None
    ) -> bool:
        """Return whether a call with these attributes counts against the budget."""
        values = {
            "feature_name": feature_name,
            "tenant_tier": tenant_tier,
            "tenant_id": tenant_id,
        }
        return all(values[key] == value for key, value in self.scope.items())

    def period_bounds(self, now: datetime) -> tuple[datetime, datetime]:
        """Return the UTC start and end of the period that contains ``now``."""
        now = now.astimezone(UTC)
        start = now.replace(minute=0, second=0, microsecond=0)
        if self.period == "day":
            start = start.replace(hour=0)
        return start, start + PERIODS[self.period]

    def outcome(self, spent_usd: float) -> BudgetOutcome:
        """Return the outcome for a call when ``spent_usd`` is already spent.

        Spend within a micro-dollar of the limit counts as at the limit, so
        float sums such as ten times 0.1 reach a limit of 1.0.
        """
        if spent_usd >= self.limit_usd - LIMIT_TOLERANCE_USD:
            return BudgetOutcome.DENY
        if spent_usd > self.soft_ratio * self.limit_usd:
            return BudgetOutcome.DEGRADE
        return BudgetOutcome.ALLOW


def _is_number(value: object) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
    )


def _check_name(name: object) -> None:
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(
            f"budget name must be 1 to 48 letters, digits, '_', '.' or '-', "
            f"got {name!r}; it becomes the 'budget' metric label"
        )


def _checked_scope(name: str, scope: object) -> Mapping[str, str]:
    if not isinstance(scope, Mapping):
        raise TypeError(
            f"budget {name!r}: scope must be a mapping such as "
            f"{{'tenant_tier': 'free'}}, got {scope!r}"
        )
    unknown = set(scope) - SCOPE_KEYS
    if unknown:
        raise ValueError(
            f"budget {name!r}: unknown scope keys {sorted(unknown)!r}; use "
            f"{sorted(SCOPE_KEYS)!r}"
        )
    for key, value in scope.items():
        if not isinstance(value, str) or not value:
            raise TypeError(
                f"budget {name!r}: scope value {key}={value!r} must be a non-empty str"
            )
    return MappingProxyType(dict(scope))


@dataclass(frozen=True, slots=True)
class BudgetDecision:
    """Budget outcome for the next call, with the numbers of the deciding budget.

    When several budgets match, the most restrictive outcome wins. Among equal
    outcomes, the budget with the least money remaining decides.
    """

    outcome: BudgetOutcome
    budget: str | None = None
    """Name of the budget that decided, or None when no budget matches."""
    spent_usd: float | None = None
    """Spend of the budget's current period; None if the store failed."""
    limit_usd: float | None = None
    remaining_usd: float | None = None
    """``limit_usd - spent_usd``, at least 0; None if the store failed."""
    period_end: datetime | None = None
    """UTC instant when the budget's period ends and its spend restarts at 0."""
    store_failed: bool = False
    """True when the store could not be read and ``on_store_error`` decided."""

    @property
    def allowed(self) -> bool:
        """Whether the call may go ahead unchanged."""
        return self.outcome is BudgetOutcome.ALLOW

    @property
    def degraded(self) -> bool:
        """Whether the call should go ahead in a cheaper form."""
        return self.outcome is BudgetOutcome.DEGRADE

    @property
    def denied(self) -> bool:
        """Whether the call must not be made."""
        return self.outcome is BudgetOutcome.DENY


class BudgetMetrics:
    """Prometheus metrics of the budgets, registered once per registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.spend = Gauge(
            "llm_budget_spend_usd",
            "US dollars spent in the budget's current period, as last read.",
            ("budget",),
            multiprocess_mode="mostrecent",
            registry=registry,
        )
        self.remaining = Gauge(
            "llm_budget_remaining_usd",
            "US dollars left in the budget's current period, as last read.",
            ("budget",),
            multiprocess_mode="mostrecent",
            registry=registry,
        )
        self.decisions = Counter(
            "llm_budget_decisions",
            "Budget decisions, by deciding budget ('none' if none matched) "
            "and outcome.",
            ("budget", "outcome"),
            registry=registry,
        )
        self.store_errors = Counter(
            "llm_budget_store_errors",
            "Failed reads and writes of the budget store.",
            ("operation",),
            registry=registry,
        )


_metrics_lock = threading.Lock()
_metrics_by_registry: weakref.WeakKeyDictionary[CollectorRegistry, BudgetMetrics] = (
    weakref.WeakKeyDictionary()
)


def budget_metrics_for(registry: CollectorRegistry | None = None) -> BudgetMetrics:
    """Return the budget metrics of a registry, registering them on first use."""
    registry = registry if registry is not None else REGISTRY
    with _metrics_lock:
        metrics = _metrics_by_registry.get(registry)
        if metrics is None:
            metrics = BudgetMetrics(registry)
            _metrics_by_registry[registry] = metrics
    return metrics


def _utc_now() -> datetime:
    return datetime.now(UTC)


class BudgetBook:
    """Budgets, the store of their spend, and the decisions made from them.

    Args:
        budgets: The budgets; names must be unique.
        store: Where spend is kept; an ``InMemoryBudgetStore`` by default,
            which each process keeps on its own. Use a ``RedisBudgetStore``
            to share spend across processes and hosts.
        on_store_error: Outcome when the store cannot be read: ``"allow"``
            (fail open, the default), ``"degrade"`` or ``"deny"``.
        registry: Prometheus registry of the budget metrics;
            ``prometheus_client.REGISTRY`` by default.
        clock: Returns the current time as an aware datetime; for tests.

    Raises:
        TypeError: If an item of ``budgets`` is not a ``Budget``, or the
            store lacks ``add`` or ``get_many``.
        ValueError: For duplicate budget names or an unknown
            ``on_store_error``.
    """

    def __init__(
        self,
        budgets: Sequence[Budget],
        *,
        store: BudgetStore | None = None,
        on_store_error: str = "allow",
        registry: CollectorRegistry | None = None,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self.budgets = _checked_budgets(budgets)
        if store is not None and not isinstance(store, BudgetStore):
            raise TypeError(
                f"store must have add() and get_many(), got {store!r}; use "
                "InMemoryBudgetStore or RedisBudgetStore"
            )
        self.store: BudgetStore = store if store is not None else InMemoryBudgetStore()
        try:
            self.on_store_error = BudgetOutcome(on_store_error)
        except ValueError:
            raise ValueError(
                f"on_store_error must be 'allow', 'degrade' or 'deny', "
                f"got {on_store_error!r}"
            ) from None
        self.metrics = budget_metrics_for(registry)
        self._clock = clock
        self._warning = RateLimitedWarning(logger)

    def decide(
        self,
        *,
        feature_name: str | None = None,
        tenant_tier: str | None = None,
        tenant_id: str | None = None,
    ) -> BudgetDecision:
        """Return the decision for a call with these attributes; never raises."""
        matching = [
            b for b in self.budgets if b.matches(feature_name, tenant_tier, tenant_id)
        ]
        if not matching:
            return self._count(BudgetDecision(BudgetOutcome.ALLOW))
        now = self._clock()
        try:
            spent = self.store.get_many([_key(b, now) for b in matching])
            decisions = [
                self._decision(budget, amount, now)
                for budget, amount in zip(matching, spent, strict=True)
            ]
        except Exception as error:  # noqa: BLE001 - never fail the request
            return self._count(self._store_failed(matching[0], now, error))
        return self._count(min(decisions, key=_restrictiveness))

    def add_spend(
        self,
        cost_usd: float,
        *,
        feature_name: str | None = None,
        tenant_tier: str | None = None,
        tenant_id: str | None = None,
    ) -> None:
        """Add a call's cost to every budget it matches; never raises.

        A failed write is counted and logged, and its spend is lost.
        """
        if not _is_number(cost_usd) or cost_usd <= 0:
            return
        now = self._clock()
        for budget in self.budgets:
            if not budget.matches(feature_name, tenant_tier, tenant_id):
                continue
            ttl = int(PERIODS[budget.period].total_seconds() * 2)
            try:
                total = self.store.add(_key(budget, now), cost_usd, ttl)
            except Exception as error:  # noqa: BLE001 - never fail the request
                self._report_store_error("write", budget, error)
                continue
            self._set_gauges(budget, total)

    def record(self, event: LLMCallLog) -> None:
        """Add a finished call's ``cost_usd`` to the budgets it matches."""
        if event.cost_usd is None:
            return
        self.add_spend(
            event.cost_usd,
            feature_name=event.feature_name,
            tenant_tier=event.tenant_tier,
            tenant_id=event.tenant_id,
        )

    def _decision(self, budget: Budget, spent: float, now: datetime) -> BudgetDecision:
        self._set_gauges(budget, spent)
        return BudgetDecision(
            outcome=budget.outcome(spent),
            budget=budget.name,
            spent_usd=spent,
            limit_usd=budget.limit_usd,
            remaining_usd=max(0.0, budget.limit_usd - spent),
            period_end=budget.period_bounds(now)[1],
        )

    def _store_failed(
        self, budget: Budget, now: datetime, error: Exception
    ) -> BudgetDecision:
        self._report_store_error("read", budget, error)
        return BudgetDecision(
            outcome=self.on_store_error,
            budget=budget.name,
            limit_usd=budget.limit_usd,
            period_end=budget.period_bounds(now)[1],
            store_failed=True,
        )

    def _report_store_error(
        self, operation: str, budget: Budget, error: Exception
    ) -> None:
        self.metrics.store_errors.labels(operation).inc()
        self._warning.warn(
            f"store-{operation}",
            "budget store %s failed for budget %r: %s; reads fall back to "
            "on_store_error=%s, and failed writes lose the call's spend",
            operation,
            budget.name,
            error,
            self.on_store_error.value,
        )

    def _set_gauges(self, budget: Budget, spent: float) -> None:
        self.metrics.spend.labels(budget.name).set(spent)
        self.metrics.remaining.labels(budget.name).set(
            max(0.0, budget.limit_usd - spent)
        )

    def _count(self, decision: BudgetDecision) -> BudgetDecision:
        label = decision.budget or "none"
        self.metrics.decisions.labels(label, decision.outcome.value).inc()
        return decision


def _checked_budgets(budgets: Sequence[Budget]) -> tuple[Budget, ...]:
    if isinstance(budgets, Budget) or not isinstance(budgets, Sequence):
        raise TypeError(
            f"budgets must be a list of Budget, got {budgets!r}; wrap a single "
            "budget in a list"
        )
    names: set[str] = set()
    for budget in budgets:
        if not isinstance(budget, Budget):
            raise TypeError(f"budgets must contain Budget objects, got {budget!r}")
        if budget.name in names:
            raise ValueError(
                f"budget name {budget.name!r} is used twice; give each budget "
                "its own name"
            )
        names.add(budget.name)
    return tuple(budgets)


def _key(budget: Budget, now: datetime) -> str:
    start, _ = budget.period_bounds(now)
    return f"{budget.name}:{budget.period}:{start:%Y%m%dT%H}"


def _restrictiveness(decision: BudgetDecision) -> tuple[int, float]:
    remaining = decision.remaining_usd
    return (
        -_SEVERITY[decision.outcome],
        remaining if remaining is not None else -math.inf,
    )


class BudgetEmitter:
    """Emitter that adds every finished call's cost to a ``BudgetBook``.

    ``configure(budgets=...)`` adds one; add it yourself only when building
    the emitter list by hand.
    """

    name = "budget"

    def __init__(self, book: BudgetBook) -> None:
        self.book = book

    def emit_call(self, event: LLMCallLog, span: Span) -> None:
        """Add the call's ``cost_usd`` to the budgets it matches."""
        self.book.record(event)

    def emit_stage(self, event: StageEvent) -> None:
        """Ignore stage events, which carry no cost."""


def budget_book_from(
    budgets: BudgetBook | Sequence[Budget] | None,
    registry: CollectorRegistry | None,
) -> BudgetBook | None:
    """Return the book for ``configure(budgets=...)``, built from a list if needed.

    Raises:
        TypeError, ValueError: As ``BudgetBook``.
    """
    if budgets is None or isinstance(budgets, BudgetBook):
        return budgets
    return BudgetBook(budgets, registry=registry)


def budget_decision(
    *,
    feature_name: str | None = None,
    tenant_tier: str | None = None,
    tenant_id: str | None = None,
) -> BudgetDecision:
    """Return what the configured budgets allow for the next call; never raises.

    Call it before ``call_llm``. An argument left as None is taken from the
    current request (``feature()``, ``bind_context`` and the middleware's
    headers).

    Returns:
        The decision; ``allow`` with no budget when ``configure()`` was given
        no budgets.
    """
    from llmobs_core.config import get_config

    book = get_config().budgets
    if book is None:
        return BudgetDecision(BudgetOutcome.ALLOW)
    feature_name = feature_name or current_feature()
    context = current_context()
    if context is not None:
        tenant_tier = tenant_tier or context.tenant_tier
        tenant_id = tenant_id or context.tenant_id
    return book.decide(
        feature_name=feature_name, tenant_tier=tenant_tier, tenant_id=tenant_id
    )
