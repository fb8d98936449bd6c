"""Platform configuration file (YAML) → typed objects. The only YAML reader."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from aerodrome.errors import ConfigError
from aerodrome.guardrails.pii import CustomRecognizer
from aerodrome.monitoring.alert_rules import AlertRule

DataClass = Literal["public", "internal", "confidential", "restricted"]
DATA_CLASS_ORDER: dict[str, int] = {"public": 0, "internal": 1, "confidential": 2, "restricted": 3}
ApprovalStatus = Literal["approved", "trial", "deprecated", "blocked"]
Hosting = Literal["on-prem", "private-cloud", "vendor"]
ContentLogging = Literal["off", "metadata", "full"]
Period = Literal["day", "month", "total"]
ROLES = (
    "platform_admin",
    "department_admin",
    "builder",
    "reviewer",
    "approver",
    "auditor",
    "user",
)


from aerodrome.config_operations import (  # noqa: E402
    JobsConfig,
    RedisConfig,
    ResponseCacheConfig,
    RetentionConfig,
    RetentionPolicy,
    TelemetryConfig,
)

__all__ = [
    "JobsConfig",
    "RedisConfig",
    "ResponseCacheConfig",
    "RetentionConfig",
    "RetentionPolicy",
    "TelemetryConfig",
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Limits(_Model):
    """Requests and tokens per minute; None means unlimited."""

    rpm: int | None = Field(default=None, ge=1, description="requests per minute; empty: unlimited")
    tpm: int | None = Field(
        default=None, ge=1, description="tokens (prompt + completion) per minute; empty: unlimited"
    )


class Budget(_Model):
    """A USD budget over a period. ``soft_pct`` of it raises a warning; the whole refuses."""

    usd: float = Field(
        gt=0, description="hard limit in USD per period: requests past it get 429 budget_exceeded"
    )
    period: Period = Field(default="month", description="day, month (calendar, UTC) or total")
    soft_pct: float = Field(
        default=0.8, gt=0, le=1, description="share of the budget that raises a warning header and event"
    )


class DepartmentConfig(_Model):
    id: str = Field(
        pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$",
        description="short identifier: lowercase letters, digits, - and _",
    )
    name: str = Field(default="", description="display name")
    eligible_users: int = Field(
        default=0, ge=0, description="people who could use AI here (the adoption denominator)"
    )
    content_logging: ContentLogging = Field(
        default="metadata",
        description="what run records keep of prompts and answers: off, metadata (counts only) or full",
    )
    limits: Limits = Field(default=Limits(), description="RPM and TPM for the whole department")
    budget: Budget | None = Field(default=None, description="USD budget for the whole department")


class UserConfig(_Model):
    email: str = Field(description="the user's email (their identity)")
    name: str = ""
    department: str = Field(description="id of the user's department")
    roles: list[str] = Field(
        default=["user"],
        description="platform_admin, department_admin, builder, reviewer, approver, auditor, user",
    )
    attributes: dict[str, Any] = Field(default={}, description="cohort attributes, e.g. {cohort: volunteer}")

    @field_validator("roles")
    @classmethod
    def _known_roles(cls, roles: list[str]) -> list[str]:
        unknown = [r for r in roles if r not in ROLES]
        if unknown:
            raise ValueError(f"unknown role(s) {unknown}; roles are {list(ROLES)}")
        return roles


class ProviderConfig(_Model):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$", description="name deployments refer to")
    kind: str = Field(
        description="openai (any OpenAI-compatible server), anthropic, local, or a plugin's kind"
    )
    base_url: str | None = Field(default=None, description="API base URL including /v1")
    api_key: str | None = Field(
        default=None, description="secret reference: env:NAME or file:/path (never the secret itself)"
    )
    headers: dict[str, str] = Field(
        default={}, description="extra headers sent upstream (not returned by the API)"
    )

    @field_validator("api_key")
    @classmethod
    def _secret_ref(cls, value: str | None) -> str | None:
        if value is None or value.startswith(("env:", "file:")):
            return value
        raise ValueError(
            "api_key must be a secret reference such as 'env:OPENAI_API_KEY' or 'file:/run/secrets/key'"
        )


class Prices(_Model):
    input_per_mtok: float = Field(default=0.0, ge=0, description="USD per million prompt tokens")
    output_per_mtok: float = Field(default=0.0, ge=0, description="USD per million completion tokens")


class DeploymentConfig(_Model):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,127}$", description="name aliases refer to")
    provider: str = Field(description="name of the provider serving it")
    model: str = Field(description="upstream model id, pinned to a version (e.g. gpt-4o-mini-2024-07-18)")
    status: ApprovalStatus = Field(
        default="approved",
        description="approved, trial, deprecated (answers with a warning header) or blocked (refused)",
    )
    hosting: Hosting = Field(default="vendor", description="on-prem, private-cloud or vendor")
    trains_on_data: bool = Field(
        default=False, description="whether the vendor may train on what it receives"
    )
    region: str = Field(default="", description="where the data is processed")
    max_data_class: DataClass = Field(
        default="internal",
        description="highest data class it may receive: public < internal < confidential < restricted",
    )
    prices: Prices = Field(default=Prices(), description="USD per million tokens")
    context_window: int = Field(default=8192, ge=1, description="tokens")
    max_output_tokens: int = Field(
        default=4096,
        ge=1,
        description="largest completion; used to reserve budget when a request sets no max_tokens",
    )
    timeout_s: float = Field(
        default=60.0, gt=0, description="per attempt; for streams, the longest wait for the next bytes"
    )
    weight: float = Field(
        default=1.0, gt=0, description="share of traffic for aliases with strategy weighted"
    )
    kind: Literal["chat", "embeddings"] = Field(default="chat", description="chat or embeddings")


class SemanticCacheConfig(_Model):
    """The semantic response cache of an alias: similar questions served the same answer."""

    threshold: float = Field(
        default=0.92,
        ge=0.5,
        le=1.0,
        description="least cosine similarity (all-MiniLM-L6-v2) between the last user messages for a hit",
    )
    max_chars: int = Field(
        default=1000, ge=1, le=20_000, description="longer questions are not semantic-cached (exact only)"
    )


class AliasCacheConfig(_Model):
    """The response cache of an alias (docs/scaling.md#response-cache): exact, and semantic if set."""

    ttl_s: float = Field(gt=0, le=30 * 86400, description="how long an answer is served again")
    semantic: SemanticCacheConfig | None = Field(
        default=None,
        description="also serve an answer to a similar question (same department, data class and alias; local embeddings)",
    )


class AliasConfig(_Model):
    name: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$", description="the model name clients send"
    )
    deployments: list[str] = Field(
        min_length=1, description="deployments behind the alias, in fallback order"
    )
    strategy: Literal["fallback", "round_robin", "weighted"] = Field(
        default="fallback",
        description="fallback (in order), round_robin or weighted (by deployment weight); failures always fall through to the others",
    )
    description: str = ""
    budget: Budget | None = Field(default=None, description="USD budget for all use of this alias")
    safe_alias: str | None = Field(
        default=None,
        description="where a request goes when its data class is above every deployment's ceiling here",
    )
    cache: AliasCacheConfig | None = Field(
        default=None,
        description="exact response cache for non-streaming chat (per department and data class); empty: off",
    )


class BreakerConfig(_Model):
    failures: int = Field(
        default=5, ge=1, description="consecutive failures that open a deployment's circuit"
    )
    cooldown_s: float = Field(
        default=30.0, gt=0, description="how long an open circuit skips the deployment before one trial"
    )


class RoutingConfig(_Model):
    max_retries: int = Field(
        default=2,
        ge=0,
        le=10,
        description="extra attempts per deployment on retryable errors (5xx, 429, timeouts, resets)",
    )
    backoff_initial_s: float = Field(
        default=0.1, ge=0, description="first backoff; doubles per retry, with jitter"
    )
    backoff_max_s: float = Field(default=2.0, ge=0, description="longest backoff")
    breaker: BreakerConfig = BreakerConfig()


class DatabaseConfig(_Model):
    url: str = Field(
        default="sqlite:///aerodrome.db",
        description="sqlite:///file.db (relative to the config file) or postgresql://user@host/db",
    )
    auto_migrate: bool | None = Field(
        default=None,
        description="empty: migrate on start with SQLite, never with PostgreSQL (run aerodrome db upgrade)",
    )


class ServerConfig(_Model):
    max_body_bytes: int = Field(default=4 * 1024 * 1024, ge=1024, description="larger request bodies get 413")
    key_cache_ttl_s: float = Field(
        default=2.0,
        ge=0,
        le=5,
        description="how long a key check is cached: a revocation reaches every replica within this time",
    )
    run_flush_interval_s: float = Field(
        default=0.2, gt=0, description="how often run records are written in a batch"
    )
    run_batch_size: int = Field(default=500, ge=1, description="largest batch of run records per write")
    default_key_limits: Limits = Field(default=Limits(), description="RPM / TPM for keys that set none")
    access_log: bool = Field(
        default=False,
        description="log one JSON line per gateway call (run id, request id, principal, alias, status, latency)",
    )


class ReadersConfig(_Model):
    """Who may read a collection: members of these departments ("*": every department) or holders of these roles."""

    departments: list[str] = Field(default=[], description='department ids; "*" means every department')
    roles: list[str] = Field(default=[], description="roles that may read it whatever their department")


class CollectionConfig(_Model):
    """A knowledge collection: sources, data class, readers, chunking, embedding, quality rules."""

    name: str = Field(
        pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$", description="identifier used in use cases and the API"
    )
    description: str = ""
    data_class: DataClass = Field(
        default="internal", description="public < internal < confidential < restricted"
    )
    readers: ReadersConfig = Field(default=ReadersConfig(), description="who may retrieve from it")
    sources: list[dict[str, Any]] = Field(
        default=[], description="connectors, e.g. {kind: folder, path: docs/hr}; see docs/knowledge.md"
    )
    chunking: dict[str, Any] = Field(default={}, description="{max_chars, overlap_chars, min_chars}")
    embedding: str = Field(
        default="local", description="local (built-in all-MiniLM-L6-v2) or an embeddings alias of the catalog"
    )
    quality: dict[str, Any] = Field(
        default={}, description="data-quality rules: thresholds and what to quarantine"
    )


class KnowledgeConfig(_Model):
    index: Literal["sqlite", "postgres"] = Field(default="sqlite", description="index backend")
    index_url: str | None = Field(
        default=None,
        description="sqlite: a file (default: <database>.knowledge.db beside the platform database); postgres: a URL with pgvector",
    )
    embedding_batch: int = Field(default=64, ge=1, le=2048, description="chunks embedded per call")


class GuardrailsConfig(_Model):
    """Platform-wide guardrail settings (docs/guardrails.md)."""

    pii_recognizers: list[CustomRecognizer] = Field(
        default=[],
        description="regex recognizers added to every PII check, e.g. {name: EMPLOYEE_ID, pattern: 'EMP-\\d{6}'}",
    )

    @model_validator(mode="after")
    def _unique_names(self) -> GuardrailsConfig:
        names = [r.name for r in self.pii_recognizers]
        if len(set(names)) != len(names):
            raise ValueError("guardrails.pii_recognizers: a name is defined twice")
        return self


class UseCasesConfig(_Model):
    """Where file-defined use cases live (see docs/usecases.md)."""

    dir: Path | None = Field(
        default=None, description="folder of use-case spec files (*.yaml, *.yml), relative to this file"
    )
    reload_s: float = Field(
        default=5.0,
        ge=0,
        description="seconds between checks of the folder for changed files; 0: only at start",
    )
    max_inputs_bytes: int = Field(
        default=256 * 1024, ge=1024, description="largest total size of one run's inputs"
    )


class EvalsConfig(_Model):
    """Evaluation suites and the model-upgrade gate (see docs/evals.md)."""

    dir: Path | None = Field(
        default=None,
        description="folder of eval suites (<usecase-id>.yaml / .jsonl), relative to this file; "
        "default: the evals folder inside usecases.dir",
    )

    upgrade_tolerance: float = Field(
        default=0.02,
        ge=0,
        le=1,
        description="how much lower a candidate deployment's suite pass rate may be than the current one's "
        "when a production use case's alias is switched",
    )
    judge_model: str | None = Field(
        default=None, description="chat alias of the LLM judge for assertions that name none"
    )
    embedding: str = Field(
        default="local",
        description="embeddings for semantic-similarity assertions: local (all-MiniLM-L6-v2) or an embeddings alias",
    )
    concurrency: int = Field(default=4, ge=1, le=64, description="cases run at once")
    threshold: float = Field(
        default=1.0, ge=0, le=1, description="pass rate a suite needs when it sets no threshold of its own"
    )


class WebhookConfig(_Model):
    """Where alerts go: a URL taking Slack-compatible JSON (Slack, Mattermost, Teams workflows, ...)."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$", description="referred to by rules' webhooks")
    url: str | None = Field(default=None, description="the URL (when it is no secret)")
    url_ref: str | None = Field(
        default=None, description="the URL as a secret reference: env:NAME or file:/path (it holds a token)"
    )
    timeout_s: float = Field(default=5.0, gt=0, le=60, description="one delivery attempt's timeout")

    @model_validator(mode="after")
    def _one_url(self) -> WebhookConfig:
        if (self.url is None) == (self.url_ref is None):
            raise ValueError(f"webhook {self.name}: give exactly one of url or url_ref")
        if self.url is not None and not self.url.startswith(("http://", "https://")):
            raise ValueError(f"webhook {self.name}: url must start with http:// or https://")
        return self


class DeliveryConfig(_Model):
    max_attempts: int = Field(
        default=6, ge=1, le=50, description="attempts before a delivery is marked failed"
    )
    backoff_initial_s: float = Field(default=2.0, gt=0, description="wait before the second attempt")
    backoff_max_s: float = Field(default=300.0, gt=0, description="longest wait between attempts")


class BudgetBurnConfig(_Model):
    """Built-in alerts on every department and key budget."""

    enabled: bool = Field(
        default=True, description="alert on budget burn (departments and keys with a budget)"
    )
    projected_above: float = Field(
        default=1.0, gt=0, description="spend projected to the period's end, as a share of the budget"
    )
    spent_above: float = Field(default=0.9, gt=0, description="spend so far, as a share of the budget")
    min_elapsed: float = Field(
        default=0.1, gt=0, lt=1, description="share of the period that must have passed before projecting"
    )


class AlertsConfig(_Model):
    """Alert rules, their evaluation and delivery (docs/monitoring.md)."""

    webhooks: list[WebhookConfig] = Field(default=[], description="where alert messages are posted")
    rules: list[AlertRule] = Field(
        default=[],
        description="platform-wide rules: checked on every use case (budget metrics: every budget)",
    )
    budget_burn: BudgetBurnConfig = Field(default=BudgetBurnConfig(), description="budget-burn alerts")
    evaluate_every_s: float = Field(
        default=60.0, ge=1, description="seconds between evaluations (each replica)"
    )
    renotify_after_s: float = Field(
        default=4 * 3600.0, ge=0, description="an alert still open is posted again after this long; 0: never"
    )
    delivery: DeliveryConfig = Field(default=DeliveryConfig(), description="retries of webhook deliveries")
    console_url: str | None = Field(default=None, description="base URL linked from alert messages")

    @model_validator(mode="after")
    def _references(self) -> AlertsConfig:
        for what, names in (
            ("alerts.webhooks", [w.name for w in self.webhooks]),
            ("alerts.rules", [r.rule_id for r in self.rules]),
        ):
            if len(set(names)) != len(names):
                raise ValueError(f"{what}: a name is defined twice")
        known = {w.name for w in self.webhooks}
        for rule in self.rules:
            for name in rule.webhooks or []:
                if name not in known:
                    raise ValueError(f"alert rule {rule.rule_id}: unknown webhook {name!r}")
        return self


class MonitoringConfig(_Model):
    """Features of live traffic kept for drift monitoring (docs/monitoring.md)."""

    profile_inputs: bool = Field(
        default=True, description="keep per-hour input and output features of use-case runs"
    )
    embed_inputs: list[ContentLogging] = Field(
        default=["metadata", "full"],
        description="content-logging policies under which input embeddings are summed (off: lengths only)",
    )
    flush_interval_s: float = Field(default=10.0, gt=0, description="how often features are written")
    max_backlog: int = Field(
        default=10_000, ge=100, description="runs waiting for features; past it, inputs are not embedded"
    )


class OIDCConfig(_Model):
    """Single sign-on through the company's OpenID Connect provider (Authlib)."""

    discovery_url: str = Field(
        description="the provider's /.well-known/openid-configuration URL (its issuer plus that path)"
    )
    client_id: str
    client_secret: str | None = Field(
        default=None, description="secret reference: env:NAME or file:/path (never the secret itself)"
    )
    scopes: list[str] = Field(default=["openid", "email", "profile"], description="scopes asked for")
    redirect_url: str | None = Field(
        default=None,
        description="the callback URL registered at the provider; default: this server's "
        "/console/login/sso/callback as the browser reached it",
    )
    label: str = Field(default="Sign in with single sign-on", description="the login button's text")
    groups_claim: str = Field(
        default="groups", description="the ID-token or userinfo claim listing the user's groups or roles"
    )
    department_claim: str | None = Field(
        default=None, description="a claim naming the user's department directly (checked before groups)"
    )
    group_departments: dict[str, str] = Field(
        default={}, description="group → department id; the first group found decides the department"
    )
    group_roles: dict[str, list[str]] = Field(
        default={}, description="group → roles it grants (every matching group adds its roles)"
    )
    default_department: str | None = Field(
        default=None, description="the department of a first-time user no group maps (none: refused)"
    )
    default_roles: list[str] = Field(default=["user"], description="roles every SSO user gets")

    @field_validator("client_secret")
    @classmethod
    def _secret_ref(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("env:", "file:")):
            raise ValueError(
                "client_secret must be a secret reference such as 'env:OIDC_CLIENT_SECRET' or 'file:/run/secrets/oidc'"
            )
        return value

    @field_validator("default_roles")
    @classmethod
    def _known_roles(cls, value: list[str]) -> list[str]:
        unknown = sorted(set(value) - set(ROLES))
        if unknown:
            raise ValueError(f"unknown roles {unknown}; roles are {list(ROLES)}")
        return value


class ConsoleConfig(_Model):
    """The web console at /console: sessions and single sign-on."""

    enabled: bool = Field(default=True, description="serve the web console at /console")
    session_hours: float = Field(
        default=12, gt=0, le=24 * 30, description="a console session lasts this long"
    )
    secure_cookies: bool | None = Field(
        default=None,
        description="mark cookies Secure; default: when the request came over HTTPS (or X-Forwarded-Proto https)",
    )
    oidc: OIDCConfig | None = Field(default=None, description="single sign-on; none: local passwords only")


class PlatformConfig(_Model):
    """The whole platform configuration, as read from ``aerodrome.yaml``."""

    database: DatabaseConfig = DatabaseConfig()
    server: ServerConfig = ServerConfig()
    routing: RoutingConfig = RoutingConfig()
    departments: list[DepartmentConfig] = []
    users: list[UserConfig] = []
    providers: list[ProviderConfig] = []
    deployments: list[DeploymentConfig] = []
    aliases: list[AliasConfig] = []
    knowledge: KnowledgeConfig = KnowledgeConfig()
    collections: list[CollectionConfig] = []
    guardrails: GuardrailsConfig = GuardrailsConfig()
    usecases: UseCasesConfig = UseCasesConfig()
    evals: EvalsConfig = EvalsConfig()
    alerts: AlertsConfig = AlertsConfig()
    monitoring: MonitoringConfig = MonitoringConfig()
    jobs: JobsConfig = JobsConfig()
    retention: RetentionConfig = RetentionConfig()
    telemetry: TelemetryConfig = TelemetryConfig()
    cache: ResponseCacheConfig = Field(
        default=ResponseCacheConfig(), description="the response cache (turned on per alias with cache.ttl_s)"
    )
    redis: RedisConfig | None = Field(
        default=None, description="scaled mode: limits, budgets and key revocations shared through Redis"
    )
    console: ConsoleConfig = ConsoleConfig()
    # Set by load_config: the directory relative paths resolve against.
    base_dir: Path = Field(default=Path("."), exclude=True)

    @model_validator(mode="after")
    def _references(self) -> PlatformConfig:
        _unique("departments", [d.id for d in self.departments])
        _unique("providers", [p.name for p in self.providers])
        _unique("deployments", [d.name for d in self.deployments])
        _unique("aliases", [a.name for a in self.aliases])
        _unique("collections", [c.name for c in self.collections])
        departments = {d.id for d in self.departments}
        for user in self.users:
            if user.department not in departments:
                raise ValueError(f"user {user.email}: unknown department {user.department!r}")
        providers = {p.name for p in self.providers}
        for dep in self.deployments:
            if dep.provider not in providers:
                raise ValueError(f"deployment {dep.name}: unknown provider {dep.provider!r}")
        deployments = {d.name for d in self.deployments}
        for alias in self.aliases:
            if alias.name in deployments:
                raise ValueError(f"alias {alias.name}: a deployment has the same name")
            for name in alias.deployments:
                if name not in deployments:
                    raise ValueError(f"alias {alias.name}: unknown deployment {name!r}")
        alias_names = {a.name for a in self.aliases}
        for alias in self.aliases:
            if alias.safe_alias is not None and (
                alias.safe_alias not in alias_names or alias.safe_alias == alias.name
            ):
                raise ValueError(f"alias {alias.name}: safe_alias {alias.safe_alias!r} is not another alias")
        return self

    def resolved_database_url(self) -> str:
        """SQLite paths in the file are relative to the config file's directory."""
        url = self.database.url
        prefix = "sqlite:///"
        if url.startswith(prefix) and not url.startswith(prefix + "/") and ":memory:" not in url:
            return prefix + str((self.base_dir / url[len(prefix) :]).resolve())
        return url


def _unique(what: str, names: list[str]) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise ValueError(f"{what}: {name!r} is defined twice")
        seen.add(name)


def parse_config(data: dict[str, Any], *, base_dir: Path, source: str = "<config>") -> PlatformConfig:
    try:
        config = PlatformConfig.model_validate(data or {})
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
            lines.append(f"  {loc}: {err['msg']}")
        raise ConfigError(f"{source}: invalid configuration\n" + "\n".join(lines)) from None
    config.base_dir = base_dir
    return config


def load_config(path: Path | str | None) -> PlatformConfig:
    """Read and validate a platform config file; no file means the embedded defaults."""
    if path is None:
        return parse_config({}, base_dir=Path.cwd())
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path} (create one with `aerodrome init`)") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if data is not None and not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping")
    return parse_config(data or {}, base_dir=path.resolve().parent, source=str(path))


YamlPath = tuple[str | int, ...]


def read_yaml(text: str) -> tuple[Any, dict[YamlPath, int]]:
    """Parse YAML and note the line (1-based) of every key and list item by its path.

    Raises ``yaml.YAMLError`` (with its mark) on a syntax error.
    """
    lines: dict[YamlPath, int] = {}

    def walk(node: yaml.Node, path: YamlPath) -> None:
        lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                child = (*path, str(key.value))
                lines[child] = key.start_mark.line + 1
                walk(value, child)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                walk(item, (*path, i))

    root = yaml.compose(text, Loader=yaml.SafeLoader)
    if root is not None:
        walk(root, ())
    return yaml.safe_load(text), lines


def block_start_line(text: str, path: YamlPath) -> int | None:
    """The file line where the first line of a scalar's content sits (a ``|`` block starts below its key)."""
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    node: yaml.Node | None = root
    for part in path:
        if isinstance(node, yaml.MappingNode):
            node = next((v for k, v in node.value if str(k.value) == str(part)), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
        else:
            return None
    if not isinstance(node, yaml.ScalarNode):
        return None
    offset = 1 if node.style in ("|", ">") else 0
    return node.start_mark.line + 1 + offset


def dump_yaml(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
