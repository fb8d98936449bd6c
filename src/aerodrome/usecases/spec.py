"""The use-case spec: what a use case is, as data (YAML file or API body).

Structural rules live in the pydantic models below; rules that need the rest of the
platform (known aliases, collections, departments) and the prompt template's variables
are checked by :func:`aerodrome.usecases.validation.check_spec`. The reference is
docs/usecases.md.
"""

from __future__ import annotations

import hashlib
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from aerodrome.config import DataClass
from aerodrome.evidence.criteria import Criterion
from aerodrome.guardrails.injection import InjectionConfig
from aerodrome.guardrails.output import valid_json_schema
from aerodrome.guardrails.output_pii import OutputPiiConfig
from aerodrome.guardrails.pii import PiiConfig
from aerodrome.guardrails.prompt_leak import PromptLeakConfig
from aerodrome.monitoring.alert_rules import AlertRule, duration_s

InputType = Literal["string", "integer", "number", "boolean", "enum", "array"]
RiskTier = Literal["low", "medium", "high"]
ReviewWhen = Literal["always", "flagged", "fallback", "risk_medium", "risk_high"]
ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid")


class InputSpec(_Spec):
    type: InputType = Field(default="string", description="string, integer, number, boolean, enum or array")
    required: bool = Field(default=False, description="a run without it gets 422")
    description: str = Field(default="", description="what to put here (shown to callers)")
    max_length: int | None = Field(default=None, ge=1, description="strings: characters; arrays: items")
    min_length: int | None = Field(default=None, ge=0, description="strings: characters; arrays: items")
    minimum: float | None = Field(default=None, description="numbers: smallest accepted")
    maximum: float | None = Field(default=None, description="numbers: largest accepted")
    values: list[str] | None = Field(default=None, description="enum: the accepted values")
    default: Any = Field(default=None, description="used when the input is absent")
    main: bool = Field(
        default=False, description='filled by the last user message when called as model "usecase:<id>"'
    )

    @model_validator(mode="after")
    def _consistent(self) -> InputSpec:
        if (self.max_length is not None or self.min_length is not None) and self.type not in (
            "string",
            "array",
        ):
            raise ValueError("max_length / min_length apply to string and array inputs only")
        if (self.minimum is not None or self.maximum is not None) and self.type not in ("integer", "number"):
            raise ValueError("minimum / maximum apply to integer and number inputs only")
        if self.type == "enum" and not self.values:
            raise ValueError("an enum input needs its values")
        if self.type != "enum" and self.values is not None:
            raise ValueError("values apply to enum inputs only")
        if self.min_length is not None and self.max_length is not None and self.min_length > self.max_length:
            raise ValueError("min_length is larger than max_length")
        if self.minimum is not None and self.maximum is not None and self.minimum > self.maximum:
            raise ValueError("minimum is larger than maximum")
        if self.main and self.type != "string":
            raise ValueError("the main input must be a string")
        return self


class RetrievalSpec(_Spec):
    collections: list[str] = Field(
        min_length=1, description="collections searched (the caller must may read them)"
    )
    top_k: int = Field(default=6, ge=1, le=50, description="passages put in the prompt")
    min_score: float | None = Field(
        default=None,
        ge=-1.0,
        le=1.0,
        description="dense (cosine) score under which a passage does not count; none left → fallback",
    )
    mode: Literal["hybrid", "lexical", "dense"] = Field(default="hybrid", description="search mode")
    query: str | None = Field(
        default=None, description="template of the search query; default: the main input"
    )
    filters: dict[str, Any] | None = Field(
        default=None, description="metadata filters (see docs/knowledge.md)"
    )
    hidden_instructions: Literal["drop", "flag", "off"] = Field(
        default="drop",
        description="passages carrying hidden instructions: dropped, kept but flagged, or ignored",
    )


class OutputGuardSpec(_Spec):
    max_chars: int | None = Field(default=None, ge=1, description="longest answer accepted")
    banned_terms: list[str] = Field(default=[], description="words or phrases the answer must not contain")
    require_citations: bool = Field(default=False, description="the answer must cite a retrieved passage")
    pii: OutputPiiConfig | None = Field(
        default=None, description="personal data in the answer the caller did not give: flag, redact, block"
    )
    prompt_leak: PromptLeakConfig | None = Field(
        default=None, description="the answer repeats a long verbatim stretch of the instructions"
    )
    on_violation: Literal["flag", "fallback"] = Field(
        default="flag",
        description="flag: keep the answer, flagged (review may hold it); fallback: replace it",
    )


class GuardrailsSpec(_Spec):
    pii: PiiConfig | None = Field(
        default=None, description="PII in the inputs: detect, redact, pseudonymise, block"
    )
    prompt_injection: InjectionConfig | None = Field(
        default=None, description="injection check on the inputs"
    )
    output: OutputGuardSpec | None = Field(default=None, description="checks on the answer")
    custom: dict[str, dict[str, Any]] = Field(
        default={},
        description="further checks on the inputs by registered name (entry point aerodrome.guardrails)",
    )
    pii_data_class: DataClass = Field(
        default="confidential",
        description="the data class of a request whose inputs carry PII sent as is (action detect)",
    )


class OutputSpec(_Spec):
    format: Literal["text", "json"] = Field(default="text", description="text, or JSON valid against schema")
    schema_: dict[str, Any] | None = Field(
        default=None, alias="schema", description="JSON Schema (2020-12) of a json output"
    )
    repair: bool = Field(default=True, description="one repair attempt when the answer fails its schema")
    stream: bool = Field(
        default=False,
        description="release a text answer as the model writes it even with output checks: they then "
        "flag the answer once it is complete (on_violation: flag), and only reasons known before the "
        "model call (input flags, risk, sample) can hold it for review",
    )

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @field_validator("schema_")
    @classmethod
    def _valid_schema(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        return valid_json_schema(value)

    @model_validator(mode="after")
    def _schema_for_json(self) -> OutputSpec:
        if self.format == "json" and self.schema_ is None:
            raise ValueError("a json output needs its schema")
        if self.schema_ is not None and self.schema_.get("type") != "object":
            raise ValueError(
                "the schema must describe an object (type: object), as structured outputs require"
            )
        if self.format == "text" and self.schema_ is not None:
            raise ValueError("a schema needs format: json")
        if self.stream and self.format == "json":
            raise ValueError("output.stream needs format: text (JSON is checked whole against its schema)")
        return self


class FallbackSpec(_Spec):
    on_low_retrieval: str | None = Field(
        default=None, description="answer when no passage reaches min_score (the run is marked fallback)"
    )
    on_invalid_output: str | None = Field(
        default=None, description="answer when the output fails its checks after the repair attempt"
    )
    on_upstream_error: str | None = Field(
        default=None, description="answer when every model of the alias failed (instead of a 502)"
    )


class ReviewSpec(_Spec):
    when: list[ReviewWhen] = Field(
        default=[], description="always, flagged (a guardrail flagged), fallback, risk_medium, risk_high"
    )
    sample_rate: float = Field(default=0.0, ge=0.0, le=1.0, description="share of other runs held at random")


DriftFeature = Literal[
    "input_centroid",
    "input_length",
    "output_length",
    "refusal_rate",
    "fallback_rate",
    "flag_rate",
    "error_rate",
    "useful_rate",
    "p95_latency_s",
]
DRIFT_FEATURES: tuple[str, ...] = DriftFeature.__args__  # type: ignore[attr-defined]


class DriftSpec(_Spec):
    enabled: bool = Field(default=True, description="test live traffic against the baseline (needs one)")
    window: str = Field(default="24h", description="trailing window of live traffic tested (15m, 1h, 1d)")
    min_runs: int = Field(default=100, ge=10, description="fewer runs in the window: no verdict")
    false_alarm_rate: float = Field(
        default=0.01,
        gt=0,
        lt=0.5,
        description="chance that one window of unshifted traffic raises a drift alert (split over the features)",
    )
    features: list[DriftFeature] = Field(
        default=list(DRIFT_FEATURES),  # type: ignore[arg-type]
        min_length=1,
        description="what is compared with the baseline",
    )
    min_rate_change: float = Field(
        default=0.02, ge=0, le=1, description="rates: smaller changes are not drift, however significant"
    )
    min_relative_change: float = Field(
        default=0.2,
        ge=0,
        description="lengths and p95 latency: smaller relative changes are not drift, however significant",
    )
    severity: Literal["info", "warning", "critical"] = Field(default="warning")

    @field_validator("window")
    @classmethod
    def _window(cls, value: str) -> str:
        duration_s(value)
        return value


class MonitoringSpec(_Spec):
    drift: DriftSpec = Field(
        default=DriftSpec(), description="drift of inputs, outputs and rates against the baseline"
    )


class OwnersSpec(_Spec):
    technical: str = Field(default="", description="who keeps it running (email)")
    workflow: str = Field(default="", description="who owns the business workflow (email)")


class UseCaseSpec(_Spec):
    """A use case as configuration. Every change makes a new immutable version."""

    id: str = Field(pattern=ID_PATTERN, description="stable id (lowercase letters, digits, - and _)")
    title: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=4000)
    owners: OwnersSpec = Field(default=OwnersSpec(), description="technical and workflow owners")
    departments: list[str] = Field(
        min_length=1, description="departments it is live in (only they may run it)"
    )
    risk_tier: RiskTier = Field(default="low", description="low, medium or high")
    data_class: DataClass | None = Field(
        default=None, description="the highest data class its inputs may carry (raises the request's class)"
    )
    inputs: dict[str, InputSpec] = Field(min_length=1, description="named, typed inputs")
    system: str | None = Field(default=None, max_length=50_000, description="system message template")
    prompt: str = Field(
        min_length=1, max_length=50_000, description="user message template (sandboxed Jinja2)"
    )
    model: str = Field(min_length=1, description="the catalog alias it calls")
    max_tokens: int | None = Field(default=None, ge=1, description="answer length limit sent to the model")
    temperature: float | None = Field(default=None, ge=0, le=2)
    retrieval: RetrievalSpec | None = Field(default=None, description="knowledge the prompt is grounded in")
    guardrails: GuardrailsSpec = Field(default=GuardrailsSpec(), description="input and output checks")
    output: OutputSpec = Field(default=OutputSpec(), description="text, or JSON with a schema")
    fallback: FallbackSpec = Field(default=FallbackSpec(), description="answers when the normal path fails")
    review: ReviewSpec = Field(default=ReviewSpec(), description="when a person reviews before release")
    definition: dict[str, Any] = Field(
        default={}, description="problem, users, outputs, baseline (free form; used by stage gates)"
    )
    success_criteria: list[Criterion] = Field(
        default=[], description="metrics and thresholds (docs/evidence.md), locked when the pilot starts"
    )
    projected_volume: dict[str, Any] = Field(default={}, description="e.g. {tasks_per_day: 5000}")
    alerts: list[AlertRule] = Field(
        default=[],
        description="alert rules, e.g. {metric: error_rate, above: 0.05, window: 1h} (docs/monitoring.md)",
    )
    monitoring: MonitoringSpec = Field(
        default=MonitoringSpec(), description="drift monitoring against the baseline (docs/monitoring.md)"
    )

    @field_validator("inputs")
    @classmethod
    def _input_names(cls, value: dict[str, InputSpec]) -> dict[str, InputSpec]:
        import re

        for name in value:
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,63}", name):
                raise ValueError(f"input name {name!r} must be an identifier (letters, digits, _)")
            if name in RESERVED_VARIABLES:
                raise ValueError(f"input name {name!r} is reserved for the prompt template")
        if sum(1 for spec in value.values() if spec.main) > 1:
            raise ValueError("only one input may be main")
        return value

    @model_validator(mode="after")
    def _cross_rules(self) -> UseCaseSpec:
        guards = self.guardrails.output
        if guards is not None and guards.require_citations and self.retrieval is None:
            raise ValueError("guardrails.output.require_citations needs retrieval")
        leak = guards.prompt_leak if guards is not None else None
        if leak is not None and leak.enabled and not leak.user_template and self.system is None:
            raise ValueError(
                "guardrails.output.prompt_leak reads the system prompt and this use case has none: "
                "add a system prompt, or set prompt_leak.user_template: true to check the prompt's own text"
            )
        if self.output.stream and guards is not None:
            acting = [
                name
                for name, action in (
                    ("on_violation", guards.on_violation),
                    ("pii.action", guards.pii.action if guards.pii is not None else "flag"),
                    ("prompt_leak.action", leak.action if leak is not None and leak.enabled else "flag"),
                )
                if action != "flag"
            ]
            if acting:
                raise ValueError(
                    "output.stream shows the answer as it is written, so its checks can only flag it: "
                    f"set guardrails.output.{acting[0]}: flag, or output.stream: false"
                )
        if self.fallback.on_low_retrieval is not None and self.retrieval is None:
            raise ValueError("fallback.on_low_retrieval needs retrieval")
        names = [rule.rule_id for rule in self.alerts]
        if len(names) != len(set(names)):
            raise ValueError("two alert rules have the same name; give one a distinct name")
        for rule in self.alerts:
            if rule.source == "budget":
                raise ValueError(
                    f"alert on {rule.metric}: budget alerts are platform rules (alerts.rules in the config)"
                )
        return self

    def main_input(self) -> str | None:
        """The input the last user message fills: the one marked main, else the first required string."""
        for name, spec in self.inputs.items():
            if spec.main:
                return name
        for name, spec in self.inputs.items():
            if spec.type == "string" and spec.required:
                return name
        for name, spec in self.inputs.items():
            if spec.type == "string":
                return name
        return None

    def canonical(self) -> dict[str, Any]:
        """The spec as stored: defaults filled in, aliases used, JSON-safe."""
        return self.model_dump(mode="json", by_alias=True)

    def digest(self) -> str:
        """The content's hash; settings left at their defaults do not count, so new optional fields in a
        later release do not make new versions of unchanged specs."""
        content = self.model_dump(mode="json", by_alias=True, exclude_defaults=True)
        return hashlib.sha256(orjson.dumps(content, option=orjson.OPT_SORT_KEYS)).hexdigest()


# Names the prompt template gets besides the inputs.
RESERVED_VARIABLES = frozenset({"context", "passages", "usecase", "today"})
