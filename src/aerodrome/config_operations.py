"""Configuration of the scaled mode's operations: background jobs, retention, traces, Redis, the
response cache (sections of :class:`aerodrome.config.PlatformConfig`)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class JobsConfig(_Model):
    """Background jobs (docs/operations.md, "Background jobs")."""

    run_in_server: bool = Field(
        default=True,
        description="servers run jobs in process (embedded); false when `aerodrome worker` processes run them",
    )
    threads: int = Field(default=1, ge=1, le=32, description="jobs one process runs at a time")
    poll_s: float = Field(default=1.0, gt=0, le=60, description="how often an idle worker looks for work")
    lease_s: float = Field(
        default=60.0,
        ge=5,
        description="a running job's lease, renewed every third of it; a job whose worker died runs again after it",
    )
    max_attempts: int = Field(default=3, ge=1, le=20, description="attempts before a job fails for good")
    backoff_s: float = Field(
        default=10.0, ge=0, description="wait before the second attempt; doubles with each further attempt"
    )
    rollup_interval_s: float = Field(
        default=60.0, ge=0, description="seconds between evidence rollup jobs; 0: never"
    )
    keep_days: int = Field(default=30, ge=1, description="finished jobs are deleted by the purge after this")


class RetentionPolicy(_Model):
    content_days: int | None = Field(
        default=None,
        ge=0,
        description="days run input and output (and review drafts, feedback text) are kept; empty: forever",
    )
    metadata_days: int | None = Field(
        default=None,
        ge=1,
        description="days run records (and daily users, drift profiles, alert deliveries) are kept; empty: forever",
    )


class RetentionConfig(RetentionPolicy):
    """How long run records keep their content and exist at all; audit events are never purged."""

    interval_s: float = Field(default=3600.0, gt=0, description="seconds between purge jobs")
    batch_size: int = Field(
        default=5000, ge=1, le=100_000, description="rows per delete or update (short transactions)"
    )
    departments: dict[str, RetentionPolicy] = Field(
        default={}, description="per department id: the fields set here replace the platform's"
    )

    def policy_for(self, department_id: str | None) -> RetentionPolicy:
        own = self.departments.get(department_id or "")
        if own is None:
            return RetentionPolicy(content_days=self.content_days, metadata_days=self.metadata_days)
        fields = own.model_fields_set
        return RetentionPolicy(
            content_days=own.content_days if "content_days" in fields else self.content_days,
            metadata_days=own.metadata_days if "metadata_days" in fields else self.metadata_days,
        )

    @property
    def enabled(self) -> bool:
        policies = [self, *self.departments.values()]
        return any(p.content_days is not None or p.metadata_days is not None for p in policies)


class TelemetryConfig(_Model):
    """OpenTelemetry traces of gateway calls (install the ``otel`` extra)."""

    otlp_endpoint: str | None = Field(
        default=None,
        description="OTLP/HTTP base URL, e.g. http://collector:4318 (spans go to /v1/traces); empty: no tracing",
    )
    service_name: str = Field(default="aerodrome", description="the service.name resource attribute")
    headers: dict[str, str] = Field(default={}, description="extra headers sent to the collector")


# -- scaled mode: the shared Redis (limits, budgets, key revocations) ------------------------------


class RedisConfig(_Model):
    """The Redis every replica shares in scaled mode (docs/scaling.md); absent: everything in process."""

    url: str = Field(description="redis://host:port/db (rediss:// for TLS), without a password: use password")
    password: str | None = Field(
        default=None, description="secret reference: env:NAME or file:/path (never the secret itself)"
    )
    key_prefix: str = Field(
        default="aerodrome",
        pattern=r"^[A-Za-z0-9_.-]{1,64}$",
        description="every key is {prefix}:...; the braces keep one admission's keys in one cluster slot",
    )
    timeout_s: float = Field(
        default=0.25, gt=0, le=10, description="connect and command timeout; past it Redis counts as down"
    )
    retry_s: float = Field(
        default=1.0,
        gt=0,
        le=60,
        description="after a failure, requests skip Redis (applying the down policy) this long, then try again",
    )
    rate_limits_when_down: Literal["local", "open", "closed"] = Field(
        default="local",
        description="while Redis is down: local (each replica counts alone), open (no rate limit) or closed (503); budgets always refuse (503)",
    )
    reservation_ttl_s: float = Field(
        default=900.0,
        ge=10,
        description="a budget reservation never settled (its replica died, and no survivor released it: a call not journaled) is released after this long",
    )
    heartbeat_ttl_s: float = Field(
        default=15.0,
        ge=1,
        le=300,
        description="a replica renews its heartbeat every third of this; one silent this long (then half as long again) is dead and its calls in flight are recorded as interrupted",
    )
    orphan_sweep_s: float = Field(
        default=5.0,
        gt=0,
        le=300,
        description="how often each replica looks for dead replicas' calls in flight (also once at start)",
    )

    @field_validator("password")
    @classmethod
    def _secret_ref(cls, value: str | None) -> str | None:
        if value is None or value.startswith(("env:", "file:")):
            return value
        raise ValueError("password must be a secret reference such as 'env:REDIS_PASSWORD'")


class ResponseCacheConfig(_Model):
    """Where cached answers live: in process, or in Redis when the redis section is set."""

    max_entries: int = Field(default=10_000, ge=1, description="in-process cache: most entries kept (LRU)")
    max_entry_bytes: int = Field(default=256 * 1024, ge=1024, description="larger answers are not cached")
    semantic_max_per_partition: int = Field(
        default=256,
        ge=1,
        le=10_000,
        description="semantic cache: most questions kept per department, data class, alias and context (oldest dropped)",
    )
