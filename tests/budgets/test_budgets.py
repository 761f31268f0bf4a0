from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from opentelemetry.trace import StatusCode
from prometheus_client import CollectorRegistry

import llmobs_core
from llmobs_core.budgets import (
    Budget,
    BudgetBook,
    BudgetDecision,
    BudgetEmitter,
    BudgetOutcome,
    InMemoryBudgetStore,
    budget_decision,
)
from llmobs_core.context import RequestState, enter_request, exit_request
from tests.budgets.conftest import FakeClock
from tests.conftest import TEST_HASH_KEY, Observed

# $1 per million tokens, so 1,000,000 input tokens cost exactly $1.
PRICES = {"test-model": {"input": 1.0, "output": 1.0}}


def make_book(clock: FakeClock, *budgets: Budget, **kwargs: Any) -> BudgetBook:
    return BudgetBook(budgets, clock=clock, registry=CollectorRegistry(), **kwargs)


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    for metric in registry.collect():
        for item in metric.samples:
            if item.name == name and labels.items() <= item.labels.items():
                return item.value
    return None


@pytest.mark.parametrize(
    ("arguments", "error", "message"),
    [
        pytest.param({"name": ""}, ValueError, "budget name", id="empty-name"),
        pytest.param({"name": "a b"}, ValueError, "budget name", id="space-name"),
        pytest.param({"name": "x" * 49}, ValueError, "budget name", id="long-name"),
        pytest.param({"limit_usd": 0}, ValueError, "limit_usd", id="zero-limit"),
        pytest.param({"limit_usd": -1.0}, ValueError, "limit_usd", id="negative"),
        pytest.param(
            {"limit_usd": float("inf")}, ValueError, "limit_usd", id="inf-limit"
        ),
        pytest.param({"limit_usd": True}, ValueError, "limit_usd", id="bool-limit"),
        pytest.param({"period": "week"}, ValueError, "period", id="period"),
        pytest.param({"soft_ratio": 0}, ValueError, "soft_ratio", id="ratio-zero"),
        pytest.param({"soft_ratio": 1.5}, ValueError, "soft_ratio", id="ratio-big"),
        pytest.param({"scope": {"model": "x"}}, ValueError, "'model'", id="key"),
        pytest.param({"scope": {"tenant_id": ""}}, TypeError, "tenant_id", id="empty"),
        pytest.param({"scope": {"tenant_id": 7}}, TypeError, "tenant_id", id="int"),
        pytest.param({"scope": ["tenant_id"]}, TypeError, "mapping", id="list"),
    ],
)
def test_budget_rejects_invalid(
    arguments: dict[str, Any], error: type[Exception], message: str
) -> None:
    values: dict[str, Any] = {"name": "chat", "limit_usd": 10.0}
    values.update(arguments)
    with pytest.raises(error, match=message):
        Budget(**values)


def test_budget_scope_is_read_only() -> None:
    scope = {"tenant_tier": "free"}
    budget = Budget(name="free", scope=scope, limit_usd=1.0)
    scope["tenant_tier"] = "pro"
    assert budget.scope == {"tenant_tier": "free"}
    with pytest.raises(TypeError):
        budget.scope["tenant_tier"] = "pro"  # type: ignore[index]


def test_budget_hashable_and_equal() -> None:
    first = Budget(name="free", scope={"tenant_tier": "free"}, limit_usd=1.0)
    second = Budget(name="free", scope={"tenant_tier": "free"}, limit_usd=1.0)
    assert first == second
    assert len({first, second}) == 1


def test_budget_scope_matching() -> None:
    budget = Budget(
        name="chat-free",
        scope={"feature_name": "chat", "tenant_tier": "free"},
        limit_usd=1.0,
    )
    assert budget.matches("chat", "free", "t1")
    assert not budget.matches("chat", "pro", "t1")
    assert not budget.matches("search", "free", "t1")
    assert not budget.matches("chat", None, None)
    assert Budget(name="all", limit_usd=1.0).matches(None, None, None)


@pytest.mark.parametrize(
    ("spent", "outcome"),
    [
        pytest.param(0.0, BudgetOutcome.ALLOW, id="nothing-spent"),
        pytest.param(8.0, BudgetOutcome.ALLOW, id="at-soft-limit"),
        pytest.param(8.01, BudgetOutcome.DEGRADE, id="past-soft-limit"),
        pytest.param(9.99, BudgetOutcome.DEGRADE, id="just-below-limit"),
        pytest.param(10.0, BudgetOutcome.DENY, id="exactly-at-limit"),
        pytest.param(12.5, BudgetOutcome.DENY, id="past-limit"),
    ],
)
def test_decision_outcomes(
    clock: FakeClock, spent: float, outcome: BudgetOutcome
) -> None:
    book = make_book(clock, Budget(name="chat", limit_usd=10.0))
    book.add_spend(spent)
    decision = book.decide()
    assert decision.outcome is outcome
    assert decision.budget == "chat"
    assert decision.spent_usd == pytest.approx(spent)
    assert decision.limit_usd == 10.0
    assert decision.remaining_usd == pytest.approx(max(0.0, 10.0 - spent))
    assert decision.period_end == datetime(2026, 3, 5, tzinfo=UTC)
    assert not decision.store_failed


def test_decision_flags(clock: FakeClock) -> None:
    book = make_book(clock, Budget(name="chat", limit_usd=1.0, soft_ratio=0.5))
    assert book.decide().allowed
    book.add_spend(0.6)
    assert book.decide().degraded
    book.add_spend(0.4)
    assert book.decide().denied


def test_decision_most_restrictive_budget_wins(clock: FakeClock) -> None:
    book = make_book(
        clock,
        Budget(name="global", limit_usd=100.0),
        Budget(name="free", scope={"tenant_tier": "free"}, limit_usd=2.0),
        Budget(name="acme", scope={"tenant_id": "acme"}, limit_usd=3.0),
    )
    book.add_spend(1.0, tenant_tier="free", tenant_id="acme")
    book.add_spend(0.7, tenant_tier="free", tenant_id="other")
    decision = book.decide(tenant_tier="free", tenant_id="acme")
    assert decision.budget == "free"
    assert decision.outcome is BudgetOutcome.DEGRADE
    assert decision.spent_usd == pytest.approx(1.7)
    pro = book.decide(tenant_tier="pro", tenant_id="acme")
    assert pro.budget == "acme"
    assert pro.remaining_usd == pytest.approx(2.0)
    assert book.decide(tenant_tier="pro").budget == "global"


def test_decision_without_matching_budget(clock: FakeClock) -> None:
    book = make_book(
        clock, Budget(name="free", scope={"tenant_tier": "free"}, limit_usd=1)
    )
    decision = book.decide(tenant_tier="pro")
    assert decision == BudgetDecision(BudgetOutcome.ALLOW)
    assert decision.budget is None
    assert decision.limit_usd is None


def test_day_period_rolls_over_at_utc_midnight() -> None:
    clock = FakeClock(datetime(2026, 3, 4, 23, 59, 59, tzinfo=UTC))
    book = make_book(clock, Budget(name="chat", limit_usd=1.0))
    book.add_spend(1.0)
    assert book.decide().denied
    clock.advance(seconds=1)
    decision = book.decide()
    assert decision.allowed
    assert decision.spent_usd == 0.0
    assert decision.period_end == datetime(2026, 3, 6, tzinfo=UTC)


def test_day_period_uses_utc_not_local_offset() -> None:
    # 01:30 at UTC+2 is 23:30 UTC on the previous day.
    local = timezone(timedelta(hours=2))
    clock = FakeClock(datetime(2026, 3, 5, 1, 30, tzinfo=local))
    book = make_book(clock, Budget(name="chat", limit_usd=1.0))
    assert book.decide().period_end == datetime(2026, 3, 5, tzinfo=UTC)


def test_hour_period_rolls_over_on_the_hour(clock: FakeClock) -> None:
    book = make_book(clock, Budget(name="chat", limit_usd=1.0, period="hour"))
    book.add_spend(1.0)
    decision = book.decide()
    assert decision.denied
    assert decision.period_end == datetime(2026, 3, 4, 11, tzinfo=UTC)
    clock.advance(minutes=29, seconds=59)
    assert book.decide().denied
    clock.advance(seconds=1)
    assert book.decide().allowed


def test_add_spend_ignores_invalid_costs(clock: FakeClock) -> None:
    book = make_book(clock, Budget(name="chat", limit_usd=1.0))
    for cost in (0.0, -1.0, float("nan"), float("inf")):
        book.add_spend(cost)
    assert book.decide().spent_usd == 0.0


def test_book_rejects_invalid_arguments(clock: FakeClock) -> None:
    chat = Budget(name="chat", limit_usd=1.0)
    with pytest.raises(ValueError, match="'chat' is used twice"):
        make_book(clock, chat, Budget(name="chat", limit_usd=2.0))
    with pytest.raises(ValueError, match="on_store_error"):
        make_book(clock, chat, on_store_error="maybe")
    with pytest.raises(TypeError, match="add\\(\\) and get_many\\(\\)"):
        make_book(clock, chat, store=object())
    with pytest.raises(TypeError, match="wrap a single budget"):
        BudgetBook(chat)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="Budget objects"):
        BudgetBook([{"name": "chat"}])  # type: ignore[list-item]


def test_in_memory_store_thread_safe() -> None:
    store = InMemoryBudgetStore()
    threads = [
        threading.Thread(target=lambda: [store.add("k", 0.5, 60) for _ in range(1000)])
        for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert store.get_many(["k", "missing"]) == [4000.0, 0.0]


def test_in_memory_store_expires_keys() -> None:
    now = [100.0]
    store = InMemoryBudgetStore(clock=lambda: now[0])
    store.add("k", 1.0, 60)
    now[0] = 159.9
    assert store.get_many(["k"]) == [1.0]
    now[0] = 160.0
    assert store.get_many(["k"]) == [0.0]


class BrokenStore:
    def add(self, key: str, amount_usd: float, ttl_seconds: int) -> float:
        raise ConnectionError("store down")

    def get_many(self, keys: Sequence[str]) -> list[float]:
        raise ConnectionError("store down")


@pytest.mark.parametrize("policy", ["allow", "degrade", "deny"])
def test_store_failure_follows_policy(
    clock: FakeClock, policy: str, caplog: pytest.LogCaptureFixture
) -> None:
    registry = CollectorRegistry()
    book = BudgetBook(
        [Budget(name="chat", limit_usd=1.0)],
        store=BrokenStore(),
        on_store_error=policy,
        clock=clock,
        registry=registry,
    )
    with caplog.at_level(logging.WARNING, logger="llmobs_core.budgets"):
        decision = book.decide()
        book.add_spend(0.5)
    assert decision.outcome is BudgetOutcome(policy)
    assert decision.store_failed
    assert decision.spent_usd is None
    assert decision.budget == "chat"
    errors = "llm_budget_store_errors_total"
    assert sample(registry, errors, operation="read") == 1
    assert sample(registry, errors, operation="write") == 1
    assert any("store down" in record.getMessage() for record in caplog.records)


def test_metrics_follow_decisions(clock: FakeClock) -> None:
    registry = CollectorRegistry()
    book = BudgetBook(
        [Budget(name="chat", limit_usd=2.0)], clock=clock, registry=registry
    )
    book.add_spend(0.5)
    assert sample(registry, "llm_budget_spend_usd", budget="chat") == 0.5
    assert sample(registry, "llm_budget_remaining_usd", budget="chat") == 1.5
    book.add_spend(1.7)
    book.decide()
    book.decide()
    assert sample(registry, "llm_budget_remaining_usd", budget="chat") == 0.0
    assert (
        sample(registry, "llm_budget_decisions_total", budget="chat", outcome="deny")
        == 2
    )


def test_books_share_metrics_of_one_registry(clock: FakeClock) -> None:
    registry = CollectorRegistry()
    first = BudgetBook([Budget(name="a", limit_usd=1)], registry=registry)
    second = BudgetBook([Budget(name="b", limit_usd=1)], registry=registry)
    assert first.metrics is second.metrics


def test_budget_decision_without_budgets(observed: Observed) -> None:
    assert budget_decision() == BudgetDecision(BudgetOutcome.ALLOW)


def configure_budgets(
    observed: Observed, *budgets: Budget, clock: FakeClock
) -> BudgetBook:
    book = BudgetBook(budgets, clock=clock, registry=observed.registry)
    llmobs_core.configure(
        tracer_provider=observed.provider,
        registry=observed.registry,
        hash_key=TEST_HASH_KEY,
        prices=PRICES,
        budgets=book,
    )
    return book


def test_configure_accepts_budget_list(observed: Observed) -> None:
    config = llmobs_core.configure(
        registry=observed.registry,
        hash_key=TEST_HASH_KEY,
        budgets=[Budget(name="chat", limit_usd=1.0)],
    )
    assert config.budgets is not None
    assert [b.name for b in config.budgets.budgets] == ["chat"]
    assert any(isinstance(e, BudgetEmitter) for e in config.fanout.emitters)
    with pytest.raises(TypeError, match="wrap a single budget"):
        llmobs_core.configure(
            hash_key=TEST_HASH_KEY,
            budgets=Budget(name="chat", limit_usd=1.0),  # type: ignore[arg-type]
        )


def call_model(tokens: int) -> None:
    with llmobs_core.observe_llm_call("chat", "test-model") as call:
        call.set_usage(input_tokens=tokens, output_tokens=0)


def test_calls_spend_and_deny(observed: Observed, clock: FakeClock) -> None:
    configure_budgets(
        observed,
        Budget(
            name="chat-free",
            scope={"feature_name": "chat", "tenant_tier": "free"},
            limit_usd=1.0,
        ),
        clock=clock,
    )
    state = RequestState(request_id="r1", tenant_tier="free")
    tokens = enter_request(state)
    try:
        assert budget_decision(feature_name="chat").allowed
        call_model(850_000)
        degraded = budget_decision(feature_name="chat")
        assert degraded.degraded
        assert degraded.spent_usd == pytest.approx(0.85)
        call_model(150_000)
        denied = budget_decision(feature_name="chat")
        assert denied.denied
        assert denied.remaining_usd == 0.0
        with llmobs_core.observe_llm_call("chat", "test-model") as call:
            call.mark_budget_exceeded(denied.budget)
        assert budget_decision(feature_name="search").allowed
    finally:
        exit_request(tokens)
    events = observed.events
    assert [e["status"] for e in events] == ["ok", "ok", "budget_exceeded"]
    assert events[2]["cost_usd"] is None
    spans = [s for s in observed.spans if s.name == "call_llm"]
    assert spans[2].status.status_code is StatusCode.UNSET
    assert [e.name for e in spans[2].events] == ["llm.budget_exceeded"]
    assert spans[2].events[0].attributes == {"reason": "chat-free"}
    assert observed.sample("llm_requests_total", status="budget_exceeded") == 1


def test_budget_decision_reads_request_context(
    observed: Observed, clock: FakeClock
) -> None:
    configure_budgets(
        observed,
        Budget(
            name="acme",
            scope={"tenant_id": "acme", "feature_name": "chat"},
            limit_usd=1.0,
        ),
        clock=clock,
    )
    state = RequestState(tenant_id="acme", feature_name="chat")
    tokens = enter_request(state)
    try:
        call_model(1_000_000)
        assert budget_decision().denied
        assert budget_decision(tenant_id="other").allowed
        with llmobs_core.bind_context(tenant_id="other"):
            assert budget_decision().allowed
        with llmobs_core.feature("search"):
            assert budget_decision().allowed
    finally:
        exit_request(tokens)


def test_denied_call_status_survives_exception(
    observed: Observed, clock: FakeClock
) -> None:
    configure_budgets(observed, Budget(name="chat", limit_usd=1.0), clock=clock)

    def denied_call() -> None:
        with llmobs_core.observe_llm_call("chat", "m") as call:
            call.mark_budget_exceeded()
            raise RuntimeError("over budget")

    with pytest.raises(RuntimeError):
        denied_call()
    event = observed.events[0]
    assert event["status"] == "budget_exceeded"
    assert event["error_type"] == "RuntimeError"


def test_float_sums_reach_the_limit() -> None:
    book = BudgetBook([Budget(name="b", scope={}, limit_usd=1.0)])
    for _ in range(10):
        book.add_spend(0.1)

    assert book.decide().outcome is BudgetOutcome.DENY


def test_store_returning_wrong_shape_fails_open() -> None:
    class ShortStore(InMemoryBudgetStore):
        def get_many(self, keys: Sequence[str]) -> list[float]:
            return []

    book = BudgetBook([Budget(name="b", scope={}, limit_usd=1.0)], store=ShortStore())

    decision = book.decide()

    assert decision.outcome is BudgetOutcome.ALLOW
    assert decision.store_failed is True
