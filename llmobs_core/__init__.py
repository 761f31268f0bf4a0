"""llmobs core: one observable event per LLM call, in logs, metrics and traces."""

from llmobs_core._call import LLMCall
from llmobs_core._open_calls import shutdown
from llmobs_core.budgets import (
    Budget,
    BudgetBook,
    BudgetDecision,
    BudgetEmitter,
    BudgetOutcome,
    InMemoryBudgetStore,
    RedisBudgetStore,
    budget_decision,
)
from llmobs_core.config import Config, configure
from llmobs_core.context import (
    RequestContext,
    bind_context,
    current_context,
    feature,
)
from llmobs_core.emitters import (
    Emitter,
    JsonLogEmitter,
    OTelSpanEmitter,
    PrometheusEmitter,
    install_json_handler,
)
from llmobs_core.emitters import flush_all as flush
from llmobs_core.experiments import assign_variant
from llmobs_core.feedback import FeedbackLog, record_feedback
from llmobs_core.generators import isolate_generator
from llmobs_core.propagation import (
    httpx_event_hooks,
    inject_headers,
    instrument_requests,
    outgoing_headers,
)
from llmobs_core.schema import SCHEMA_VERSION, CallStatus, LLMCallLog
from llmobs_core.server import HeaderNames
from llmobs_core.stages import (
    LLMCallScope,
    StageScope,
    build_prompt,
    call_llm,
    current_call,
    observe_llm_call,
    postprocess,
    retrieve_context,
)

__all__ = [
    "SCHEMA_VERSION",
    "Budget",
    "BudgetBook",
    "BudgetDecision",
    "BudgetEmitter",
    "BudgetOutcome",
    "CallStatus",
    "Config",
    "Emitter",
    "FeedbackLog",
    "HeaderNames",
    "InMemoryBudgetStore",
    "JsonLogEmitter",
    "LLMCall",
    "LLMCallLog",
    "LLMCallScope",
    "OTelSpanEmitter",
    "PrometheusEmitter",
    "RedisBudgetStore",
    "RequestContext",
    "StageScope",
    "assign_variant",
    "bind_context",
    "budget_decision",
    "build_prompt",
    "call_llm",
    "configure",
    "current_call",
    "current_context",
    "feature",
    "flush",
    "httpx_event_hooks",
    "inject_headers",
    "install_json_handler",
    "instrument_requests",
    "isolate_generator",
    "observe_llm_call",
    "outgoing_headers",
    "postprocess",
    "record_feedback",
    "retrieve_context",
    "shutdown",
]
