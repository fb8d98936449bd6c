"""The schema, as SQLAlchemy Core tables. Changed only together with a migration."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    TypeDecorator,
)
from sqlalchemy import DateTime as _DateTime


class DateTime(TypeDecorator[datetime]):
    """Timestamps stored in UTC and always read back timezone-aware (SQLite keeps none)."""

    impl = _DateTime(timezone=True)
    cache_ok = True

    def __init__(self, timezone: bool = True) -> None:
        super().__init__()

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

departments = Table(
    "departments",
    metadata,
    Column("id", String(63), primary_key=True),
    Column("name", String(200), nullable=False, default=""),
    Column("eligible_users", Integer, nullable=False, default=0),
    Column("content_logging", String(16), nullable=False, default="metadata"),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("limits", JSON, nullable=True),  # {rpm, tpm}
    Column("budget", JSON, nullable=True),  # {usd, period, soft_pct}
)

users = Table(
    "users",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("email", String(320), nullable=False, unique=True),
    Column("name", String(200), nullable=False, default=""),
    Column("department_id", String(63), ForeignKey("departments.id"), nullable=False),
    Column("roles", JSON, nullable=False),
    Column("attributes", JSON, nullable=False),
    Column("disabled", Boolean, nullable=False, default=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("prefix", String(16), nullable=False, unique=True),
    Column("hash", String(64), nullable=False),
    Column("name", String(200), nullable=False, default=""),
    Column("department_id", String(63), ForeignKey("departments.id"), nullable=False),
    Column("user_id", String(36), ForeignKey("users.id"), nullable=True),
    Column("role", String(32), nullable=False),
    Column("aliases", JSON, nullable=True),  # None: every alias the department may use
    Column("rpm", Integer, nullable=True),
    Column("tpm", Integer, nullable=True),
    Column("budget_usd", Float, nullable=True),
    Column("budget_period", String(8), nullable=True),
    Column("budget_soft_pct", Float, nullable=True),
    Column("data_class", String(16), nullable=True),  # declared class of everything sent with the key
    Column("expires_at", DateTime(timezone=True), nullable=True),
    Column("revoked_at", DateTime(timezone=True), nullable=True),
    Column("created_by", String(200), nullable=False, default=""),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

# Catalog entries added through the API (the config file's entries are not stored).
catalog_entries = Table(
    "catalog_entries",
    metadata,
    Column("kind", String(16), primary_key=True),  # provider | deployment | alias
    Column("name", String(128), primary_key=True),
    Column("spec", JSON, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("updated_by", String(200), nullable=False, default=""),
)

runs = Table(
    "runs",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("request_id", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("endpoint", String(32), nullable=False),
    Column("key_id", String(36), nullable=True),
    Column("user_id", String(36), nullable=True),
    Column("principal", String(320), nullable=False),
    Column("department_id", String(63), nullable=True),
    Column("alias", String(128), nullable=True),
    Column("deployment", String(128), nullable=True),
    Column("provider", String(64), nullable=True),
    Column("upstream_model", String(200), nullable=True),
    Column("use_case_id", String(128), nullable=True),
    Column("spec_version", Integer, nullable=True),
    Column("stream", Boolean, nullable=False, default=False),
    Column("status", String(24), nullable=False),
    Column("error_code", String(64), nullable=True),
    Column("http_status", Integer, nullable=False),
    Column("prompt_tokens", Integer, nullable=False, default=0),
    Column("completion_tokens", Integer, nullable=False, default=0),
    Column("tokens_estimated", Boolean, nullable=False, default=False),
    Column("cost_usd", Float, nullable=False, default=0.0),
    Column("latency_ms", Float, nullable=False),
    Column("ttft_ms", Float, nullable=True),
    Column("attempts", Integer, nullable=False, default=1),
    Column("cache_hit", Boolean, nullable=False, default=False),
    Column("meta", JSON, nullable=True),
)
Index("ix_runs_created_at", runs.c.created_at)
Index("ix_runs_department_created", runs.c.department_id, runs.c.created_at)
Index("ix_runs_key_created", runs.c.key_id, runs.c.created_at)
Index("ix_runs_alias_created", runs.c.alias, runs.c.created_at)
Index("ix_runs_user_created", runs.c.user_id, runs.c.created_at)  # GET /api/runs for a user's own runs
Index("ix_runs_usecase_created", runs.c.use_case_id, runs.c.created_at)  # evidence: raw tail per use case

# What a run said and answered (as the department's content logging kept it), apart from its
# metadata: the scans behind reports, dashboards, budgets and evidence read narrow ``runs`` rows,
# and only the run's page, the feedback export and the retention purge read this table. A run
# without content (logging "off") has no row here.
run_contents = Table(
    "run_contents",
    metadata,
    Column("run_id", String(32), ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
    Column("input", JSON, nullable=True),
    Column("output", JSON, nullable=True),
)

audit_events = Table(
    "audit_events",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("actor", String(320), nullable=False),
    Column("action", String(64), nullable=False),
    Column("object_type", String(64), nullable=False),
    Column("object_id", String(200), nullable=False),
    Column("details", JSON, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
)

# ------------------------------------------------------------------ knowledge

collections = Table(
    "collections",
    metadata,
    Column("name", String(128), primary_key=True),
    Column("spec", JSON, nullable=False),  # the CollectionConfig as given (config file or API)
    Column("origin", String(16), nullable=False),  # config | api
    Column("embedding_model", String(200), nullable=True),  # what the index was built with
    Column("sync_status", String(16), nullable=False, default="never"),  # never | running | ok | failed
    Column("last_sync_at", DateTime(timezone=True), nullable=True),
    Column("last_sync", JSON, nullable=True),  # counts of the last sync
    Column("quality", JSON, nullable=True),  # the last data-quality report
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

documents = Table(
    "documents",
    metadata,
    Column("collection", String(128), ForeignKey("collections.name", ondelete="CASCADE"), primary_key=True),
    Column("document_id", String(1024), primary_key=True),  # the source's own id
    Column("uri", String(2048), nullable=False),
    Column("title", String(1024), nullable=True),
    Column("content_hash", String(64), nullable=False),
    Column("status", String(16), nullable=False),  # ok | error | quarantined
    Column("error", String(1000), nullable=True),
    Column("warnings", JSON, nullable=True),
    Column("problems", JSON, nullable=True),  # quality problems found for this document
    Column("modified_at", DateTime(timezone=True), nullable=True),
    Column("chunks", Integer, nullable=False, default=0),
    Column("chars", Integer, nullable=False, default=0),
    Column("synced_at", DateTime(timezone=True), nullable=False),
)

jobs = Table(
    "jobs",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("kind", String(32), nullable=False),  # ingest | ...
    Column("target", String(200), nullable=False),
    Column("status", String(16), nullable=False),  # queued | running | succeeded | failed
    Column("done", Integer, nullable=False, default=0),
    Column("total", Integer, nullable=True),
    Column("message", String(1000), nullable=False, default=""),
    Column("result", JSON, nullable=True),
    Column("created_by", String(320), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=True),
    Column("finished_at", DateTime(timezone=True), nullable=True),
    # the queue (jobs/queue.py, migration 0013): what to run, attempts, when, and who holds it
    Column("payload", JSON, nullable=True),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("max_attempts", Integer, nullable=False, server_default="1"),
    Column("available_at", DateTime(timezone=True), nullable=True),  # not before (retry backoff)
    Column("worker", String(200), nullable=True),  # the worker holding it while running
    Column("lease_expires_at", DateTime(timezone=True), nullable=True),  # renewed by heartbeats
    Column("error", String(4000), nullable=True),  # the last attempt's error
)
Index("ix_jobs_kind_target", jobs.c.kind, jobs.c.target)
Index("ix_jobs_status_available", jobs.c.status, jobs.c.available_at)

# ------------------------------------------------------------------ use cases, review, feedback

usecases = Table(
    "usecases",
    metadata,
    Column("id", String(128), primary_key=True),
    Column("origin", String(16), nullable=False),  # file | api
    Column("source", String(1024), nullable=True),  # the spec file, for file-defined use cases
    Column("current_version", Integer, nullable=True),  # the version being served; none for an idea
    Column("stage", String(16), nullable=False, server_default="idea"),  # see evidence/stages.py
    Column("stage_changed_at", DateTime(timezone=True), nullable=True),
    Column("department_id", String(63), nullable=True),  # the proposing department (portfolio)
    Column("status", String(16), nullable=False, default="active"),  # active | removed
    Column("load_error", JSON, nullable=True),  # the newest file's errors while the last valid version serves
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("updated_by", String(320), nullable=False, default=""),
)

# Immutable: a change makes a new version; runs record the version they used.
usecase_versions = Table(
    "usecase_versions",
    metadata,
    Column("usecase_id", String(128), ForeignKey("usecases.id", ondelete="CASCADE"), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("spec", JSON, nullable=False),  # the validated spec, normalised
    Column("spec_hash", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("created_by", String(320), nullable=False),
)

review_items = Table(
    "review_items",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("run_id", String(32), nullable=False, unique=True),
    Column("usecase_id", String(128), nullable=True),
    Column("spec_version", Integer, nullable=True),
    Column("department_id", String(63), nullable=False),
    Column("requester", String(320), nullable=False),  # the caller's principal name
    Column("key_id", String(36), nullable=True),
    Column("user_id", String(36), nullable=True),
    # why it was held: always, flagged:<guardrail>, risk_high, sample
    Column("reasons", JSON, nullable=False),
    Column("status", String(16), nullable=False),  # pending | claimed | approved | edited | rejected
    Column("draft", JSON, nullable=False),  # {output, citations, inputs?} as held
    Column("final", JSON, nullable=True),  # the output released (approved or edited)
    Column("claimed_by", String(320), nullable=True),
    Column("claimed_at", DateTime(timezone=True), nullable=True),
    Column("decided_by", String(320), nullable=True),
    Column("decided_at", DateTime(timezone=True), nullable=True),
    Column("note", String(2000), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    # when retention cleared draft, final and note (content_days of the department); None: kept
    Column("content_purged_at", DateTime(timezone=True), nullable=True),
)
Index("ix_review_items_status_created", review_items.c.status, review_items.c.created_at)
Index("ix_review_items_department_status", review_items.c.department_id, review_items.c.status)

feedback = Table(
    "feedback",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("run_id", String(32), nullable=False),
    Column("usecase_id", String(128), nullable=True),
    Column("spec_version", Integer, nullable=True),
    Column("department_id", String(63), nullable=True),
    Column("author", String(320), nullable=False),
    Column("author_key_id", String(36), nullable=True),
    Column("author_user_id", String(36), nullable=True),
    Column("author_role", String(16), nullable=False),  # caller | reviewer
    Column("rating", String(8), nullable=True),  # up | down | 1..5, as given
    Column("score", Float, nullable=True),  # the rating on 0..1 (up 1, down 0, 1..5 → 0..1)
    Column("flags", JSON, nullable=False),
    Column("correction", String(20000), nullable=True),
    Column("comment", String(4000), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
)
Index("ix_feedback_run", feedback.c.run_id)
Index("ix_feedback_usecase_created", feedback.c.usecase_id, feedback.c.created_at)

# ------------------------------------------------------------------ evidence

# Every stage change of a use case, with the gate's checks as they stood (append-only).
usecase_transitions = Table(
    "usecase_transitions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("usecase_id", String(128), nullable=False),
    Column("from_stage", String(16), nullable=False),
    Column("to_stage", String(16), nullable=False),
    Column("decision", String(16), nullable=True),  # go | redesign | stop
    Column("rationale", String(4000), nullable=False, default=""),
    Column("checks", JSON, nullable=False),  # [{requirement, ok, detail}]
    Column("spec_version", Integer, nullable=True),
    Column("actor", String(320), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
)
Index("ix_usecase_transitions_usecase", usecase_transitions.c.usecase_id, usecase_transitions.c.id)

# Success criteria locked when the pilot starts; later changes are kept as amendments.
criteria_locks = Table(
    "criteria_locks",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("usecase_id", String(128), nullable=False),
    Column("kind", String(16), nullable=False),  # lock | amendment
    Column("criteria", JSON, nullable=False),
    Column("criteria_hash", String(64), nullable=False),
    Column("spec_version", Integer, nullable=True),
    Column("reason", String(2000), nullable=False, default=""),
    Column("actor", String(320), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
)
Index("ix_criteria_locks_usecase", criteria_locks.c.usecase_id, criteria_locks.c.id)

# One unit of business work, timed, in a group: baseline, control or treatment.
tasks = Table(
    "tasks",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("usecase_id", String(128), nullable=False),
    Column("department_id", String(63), nullable=True),
    Column("user_ref", String(320), nullable=False),  # the worker: user email or principal name
    Column("group", String(16), nullable=False),  # baseline | control | treatment
    Column("started_at", DateTime(timezone=True), nullable=True),
    Column("finished_at", DateTime(timezone=True), nullable=False),
    Column("duration_s", Float, nullable=False),
    Column("outcome", String(64), nullable=True),
    Column("run_ids", JSON, nullable=False),
    Column("source", String(16), nullable=False),  # api | csv | simulation
    Column("created_by", String(320), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)
Index("ix_tasks_usecase_group_finished", tasks.c.usecase_id, tasks.c.group, tasks.c.finished_at)

# Portfolio: a department's proposed use case, before it becomes one.
proposals = Table(
    "proposals",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("department_id", String(63), nullable=False),
    Column("title", String(200), nullable=False),
    Column("problem", String(4000), nullable=False),
    Column("workflow", String(4000), nullable=False, default=""),
    Column("users", String(1000), nullable=False, default=""),
    Column("volume_per_day", Integer, nullable=True),
    Column("value", Integer, nullable=False),  # 1..5
    Column("complexity", Integer, nullable=False),  # 1..5
    Column("status", String(16), nullable=False),  # open | accepted | declined
    Column("usecase_id", String(128), nullable=True),
    Column("created_by", String(320), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

# Incremental rollups of use-case runs (evidence/rollups.py): one row per use case, department,
# user and UTC day, holding counts, sums and a log-scale latency histogram of the runs created
# before the watermark. Metrics read these rows plus the raw runs after the watermark.
run_rollups = Table(
    "run_rollups",
    metadata,
    Column("usecase_id", String(128), primary_key=True),
    Column("department_id", String(63), primary_key=True),  # "" when the run had none
    Column("user_key", String(320), primary_key=True),  # runs.user_id, else the principal name
    Column("day", Date, primary_key=True),  # UTC day of runs.created_at
    Column("runs", Integer, nullable=False),
    Column("ok", Integer, nullable=False),  # status ok
    Column("errors", Integer, nullable=False),  # status error
    Column("fallbacks", Integer, nullable=False),  # status fallback or output_invalid
    Column("flagged", Integer, nullable=False),  # a guardrail flagged the run (meta.usecase.flags)
    Column("cache_hits", Integer, nullable=False),
    Column("cost_sum", Float, nullable=False),  # USD
    Column("cost_sq_sum", Float, nullable=False),  # USD², for the variance of the cost per run
    Column("latency_sum", Float, nullable=False),  # ms, answered runs (the histogram's runs)
    Column(
        "latency_hist", JSON, nullable=False
    ),  # {"bucket": count}, latency_histogram.N_BUCKETS log-scale buckets
)
Index("ix_run_rollups_day", run_rollups.c.day)
# Every column the evidence window sums or groups by (not the histogram): its totals and weekly
# activity read this index alone, not the table's rows with their histograms (SQLite: about half
# the time; migration 0014).
Index(
    "ix_run_rollups_sums",
    *(
        run_rollups.c[name]
        for name in (
            "usecase_id",
            "department_id",
            "user_key",
            "day",
            "runs",
            "ok",
            "errors",
            "fallbacks",
            "flagged",
            "cache_hits",
            "cost_sum",
            "cost_sq_sum",
            "latency_sum",
        )
    ),
)

# The same runs' latency histograms without the user: what a metric without a cohort sums in SQL.
run_latency_rollups = Table(
    "run_latency_rollups",
    metadata,
    Column("usecase_id", String(128), primary_key=True),
    Column("department_id", String(63), primary_key=True),
    Column("day", Date, primary_key=True),
    Column("bucket", Integer, primary_key=True),  # latency_histogram.bucket_of(latency_ms)
    Column("runs", Integer, nullable=False),  # answered runs in the bucket
)
Index("ix_run_latency_rollups_day", run_latency_rollups.c.day)

# The rollups' progress: every run created before ``watermark`` is in run_rollups.
run_rollup_state = Table(
    "run_rollup_state",
    metadata,
    Column("name", String(32), primary_key=True),  # "runs"
    Column("watermark", DateTime(timezone=True), nullable=True),  # None: nothing rolled up yet
    Column("updated_at", DateTime(timezone=True), nullable=True),
)

# ------------------------------------------------------------------ evaluations (issue 6)

# One run of a use case's eval suite: a spec version on one deployment, with its totals.
eval_runs = Table(
    "eval_runs",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("usecase_id", String(128), nullable=False),
    Column("spec_version", Integer, nullable=False),
    Column("suite_hash", String(64), nullable=False),  # the suite's content (cases and settings)
    Column("alias", String(128), nullable=False),
    Column("deployment", String(128), nullable=False),  # the alias was pinned to it for the run
    Column("upstream_model", String(200), nullable=False, default=""),
    Column("status", String(16), nullable=False),  # running | passed | failed | error
    Column("threshold", Float, nullable=False),
    Column("cases", Integer, nullable=False, default=0),
    Column("passed", Integer, nullable=False, default=0),
    Column("errored", Integer, nullable=False, default=0),  # cases whose run raised an error
    Column("curated_cases", Integer, nullable=False, default=0),
    Column("curated_passed", Integer, nullable=False, default=0),
    Column("live_cases", Integer, nullable=False, default=0),
    Column("live_passed", Integer, nullable=False, default=0),
    Column("cost_usd", Float, nullable=False, default=0.0),
    Column("latency_ms_p50", Float, nullable=True),
    Column("latency_ms_p95", Float, nullable=True),
    Column("duration_s", Float, nullable=True),
    Column("message", String(2000), nullable=False, default=""),
    Column("job_id", String(32), nullable=True),  # the background job of an API-started run
    Column("created_by", String(320), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True), nullable=True),
)
Index("ix_eval_runs_usecase_created", eval_runs.c.usecase_id, eval_runs.c.created_at)

# Per-case results of an eval run (with the gateway run each case made).
eval_results = Table(
    "eval_results",
    metadata,
    Column("eval_run_id", String(32), ForeignKey("eval_runs.id", ondelete="CASCADE"), primary_key=True),
    Column("case_id", String(200), primary_key=True),
    Column("seq", Integer, nullable=False),  # the case's position in the suite
    Column("source", String(16), nullable=False),  # curated | live
    Column("passed", Boolean, nullable=False),
    Column("run_id", String(32), nullable=True),  # the run record of the case's use-case call
    Column("status", String(24), nullable=True),  # the use-case run's status, or "error"
    Column("error", String(2000), nullable=True),
    Column("output", JSON, nullable=True),
    Column("assertions", JSON, nullable=False),  # [{type, passed, score, detail}]
    Column("cost_usd", Float, nullable=False, default=0.0),
    Column("latency_ms", Float, nullable=False, default=0.0),
)
# ---------------------------------------------------------------- monitoring: drift and alerts
# Features of use-case runs for drift monitoring (monitoring/profiler.py): one row per use case,
# department, UTC hour and writer (one per process, so replicas never update the same row). Only
# aggregates: counts, sums of log lengths, and the sum of the inputs' embeddings (never the text).
drift_profiles = Table(
    "drift_profiles",
    metadata,
    Column("usecase_id", String(128), primary_key=True),
    Column("department_id", String(63), primary_key=True),  # "" when the run had none
    Column("hour", DateTime(timezone=True), primary_key=True),  # start of the UTC hour of created_at
    Column("writer", String(32), primary_key=True),
    Column("runs", Integer, nullable=False),
    Column("answered", Integer, nullable=False),  # runs with an answer (refusals are counted among them)
    Column("refusals", Integer, nullable=False),
    Column("input_n", Integer, nullable=False),
    Column("input_len_sum", Float, nullable=False),  # sum of ln(1 + characters)
    Column("input_len_sq", Float, nullable=False),
    Column("output_n", Integer, nullable=False),
    Column("output_len_sum", Float, nullable=False),
    Column("output_len_sq", Float, nullable=False),
    Column("embedded", Integer, nullable=False),  # inputs whose embedding is in embedding_sum
    Column("embedding_model", String(128), nullable=True),
    Column("embedding_sum", JSON, nullable=True),  # list of floats
    Column("embedding_sq", Float, nullable=False),  # sum of squared norms
    Column("projected_outer", JSON, nullable=True),  # 16 x 16 sum of outer products of projected inputs
    Column("updated_at", DateTime(timezone=True), nullable=False),
)
Index("ix_drift_profiles_hour", drift_profiles.c.hour)

# A baseline recorded explicitly for a use case (else its pilot window is the baseline).
drift_baselines = Table(
    "drift_baselines",
    metadata,
    Column("usecase_id", String(128), primary_key=True),
    Column("start", DateTime(timezone=True), nullable=False),
    Column("end", DateTime(timezone=True), nullable=False),
    Column("recorded_by", String(320), nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
)

# Alerts: one row per firing; ``open_key`` (rule and scope) is set while open and unique, so at most
# one alert per rule and scope is open whatever the number of replicas evaluating.
alerts = Table(
    "alerts",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("open_key", String(400), nullable=True, unique=True),
    Column("rule", String(128), nullable=False),
    Column("origin", String(16), nullable=False),  # usecase | platform | drift | budget
    Column("metric", String(64), nullable=False),
    Column("scope_kind", String(16), nullable=False),  # usecase | department | key
    Column("scope_id", String(128), nullable=False),
    Column("usecase_id", String(128), nullable=True),
    Column("departments", String(1000), nullable=False),  # ",hr,finance,": who may see it (LIKE '%,hr,%')
    Column("severity", String(16), nullable=False),
    Column("status", String(16), nullable=False),  # open | resolved
    Column("value", Float, nullable=True),
    Column("threshold", Float, nullable=False),
    Column("side", String(8), nullable=False),  # above | below
    Column("window_s", Integer, nullable=False),
    Column("samples", Integer, nullable=False),
    Column("summary", String(1000), nullable=False),
    Column("details", JSON, nullable=True),
    Column("opened_at", DateTime(timezone=True), nullable=False),
    Column("resolved_at", DateTime(timezone=True), nullable=True),
    Column("acknowledged_at", DateTime(timezone=True), nullable=True),
    Column("acknowledged_by", String(320), nullable=True),
    Column("last_notified_at", DateTime(timezone=True), nullable=True),
)
Index("ix_alerts_opened_at", alerts.c.opened_at)

# One message of an alert (fired, reminder, resolved) to one webhook, with its delivery state.
alert_deliveries = Table(
    "alert_deliveries",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("alert_id", String(32), ForeignKey("alerts.id"), nullable=False, index=True),
    Column("event", String(16), nullable=False),  # fired | reminder | resolved
    Column("webhook", String(63), nullable=False),
    Column("payload", JSON, nullable=False),
    Column("status", String(16), nullable=False),  # pending | sent | failed
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", DateTime(timezone=True), nullable=False),
    Column("claimed_until", DateTime(timezone=True), nullable=True),
    Column("last_error", String(500), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("delivered_at", DateTime(timezone=True), nullable=True),
)
Index("ix_alert_deliveries_status", alert_deliveries.c.status, alert_deliveries.c.next_attempt_at)
# ------------------------------------------------------------------ jobs (issue 8)

# Periodic jobs (rollups, retention purge): whoever moves next_run_at forward enqueues the run,
# so among many workers exactly one does.
job_schedules = Table(
    "job_schedules",
    metadata,
    Column("name", String(64), primary_key=True),  # the job kind
    Column("next_run_at", DateTime(timezone=True), nullable=False),
    Column("last_job_id", String(32), nullable=True),
)

# ---------------------------------------------------------------- console (issue 7)

# A user's local password (argon2 hash); users who sign in through OIDC have none.
user_credentials = Table(
    "user_credentials",
    metadata,
    Column("user_id", String(36), ForeignKey("users.id"), primary_key=True),
    Column("password_hash", String(255), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

# Console sessions: the cookie carries the token, the table its SHA-256 (never the token itself).
console_sessions = Table(
    "console_sessions",
    metadata,
    Column("id", String(64), primary_key=True),  # sha256 hex of the session token
    Column("user_id", String(36), ForeignKey("users.id"), nullable=False),
    Column("csrf", String(64), nullable=False),  # the CSRF token of this session's forms
    Column("method", String(16), nullable=False),  # password | oidc
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
)
Index("ix_console_sessions_user_id", console_sessions.c.user_id)

# The dashboards' figures of a time window read this index alone (no visit to the wide run rows).
RUN_FIGURE_COLUMNS = (
    runs.c.created_at,
    runs.c.department_id,
    runs.c.use_case_id,
    runs.c.alias,
    runs.c.deployment,
    runs.c.principal,
    runs.c.status,
    runs.c.cost_usd,
    runs.c.latency_ms,
    runs.c.prompt_tokens,
    runs.c.completion_tokens,
)
"""What a run contributes to the dashboards (aerodrome.monitoring.daily_rollups.RAW_COLUMNS)."""
# usage only: evaluation and red-team runs are left out by endpoint (migration 0017)
Index("ix_runs_console_figures", *RUN_FIGURE_COLUMNS, runs.c.endpoint)

# ------------------------------------------------------- dashboards' daily rollups (issue 7)

# Every run of real use (not evaluation or red-team runs) of one UTC day by department, use case, alias and deployment ("" for
# none): the dashboards read whole days from here and only the partial days from the runs.
run_daily_figures = Table(
    "run_daily_figures",
    metadata,
    Column("day", Date, primary_key=True),
    Column("department_id", String(63), primary_key=True),
    Column("use_case_id", String(128), primary_key=True),
    Column("alias", String(128), primary_key=True),
    Column("deployment", String(128), primary_key=True),
    Column("runs", Integer, nullable=False),
    Column("errors", Integer, nullable=False),  # status error or rejected: no answer
    Column("cost_sum", Float, nullable=False),
    Column("latency_sum", Float, nullable=False),  # of every run, errors included
    Column("tokens", Integer, nullable=False),
    Column("latency_hist", JSON, nullable=False),  # answered runs per latency bucket
)

# Who ran something on a day, in which department and use case: active and distinct users.
run_daily_users = Table(
    "run_daily_users",
    metadata,
    Column("day", Date, primary_key=True),
    Column("department_id", String(63), primary_key=True),
    Column("use_case_id", String(128), primary_key=True),
    Column("principal", String(320), primary_key=True),
    Column("runs", Integer, nullable=False),
)
