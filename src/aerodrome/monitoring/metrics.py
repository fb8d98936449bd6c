"""Prometheus metrics, in a registry owned by the app (no global state)."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "aerodrome_requests",
            "Gateway requests by endpoint, alias, department and outcome",
            ["endpoint", "alias", "department", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "aerodrome_request_latency_seconds",
            "Total gateway request latency by endpoint, alias and department",
            ["endpoint", "alias", "department"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.ttft = Histogram(
            "aerodrome_time_to_first_token_seconds",
            "Time to the first streamed chunk",
            ["alias"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.tokens = Counter(
            "aerodrome_tokens",
            "Tokens by alias, department and kind (prompt, completion)",
            ["alias", "department", "kind"],
            registry=r,
        )
        self.cost = Counter("aerodrome_cost_usd", "Cost in USD", ["alias", "department"], registry=r)
        self.errors = Counter(
            "aerodrome_errors",
            "Errors by alias, department and stable error code",
            ["alias", "department", "code"],
            registry=r,
        )
        self.upstream_attempts = Counter(
            "aerodrome_upstream_attempts",
            "Calls to deployments (including retries)",
            ["deployment"],
            registry=r,
        )
        self.run_records_written = Gauge(
            "aerodrome_run_records_written",
            "Run records written by this process",
            registry=r,
        )
        self.alert_messages = Counter(
            "aerodrome_alert_messages",
            "Alert message delivery attempts by outcome (sent, retry, failed) in this process",
            ["outcome"],
            registry=r,
        )
        self.alerts_changed = Counter(
            "aerodrome_alerts", "Alerts opened, resolved, reminded by this process", ["event"], registry=r
        )
        self.runs_interrupted = Counter(
            "aerodrome_runs_interrupted",
            "Calls in flight on a replica that died, recorded by this process as interrupted",
            registry=r,
        )
        self.profiler_backlog = Gauge(
            "aerodrome_profiler_backlog", "Use-case runs waiting for the traffic profiler", registry=r
        )
        self.jobs = Gauge(
            "aerodrome_jobs",
            "Background jobs queued, running and failed (kept jobs.keep_days), by kind; read every few seconds",
            ["kind", "status"],
            registry=r,
        )
        self.oldest_queued_job = Gauge(
            "aerodrome_jobs_oldest_queued_seconds",
            "Age of the oldest job waiting to run (0: none); growing means no worker is taking jobs",
            registry=r,
        )
        self._children: dict[tuple[Any, ...], Any] = {}

    def _child(self, metric: Any, *labels: str) -> Any:
        key = (id(metric), *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def observe_request(
        self,
        *,
        endpoint: str,
        alias: str,
        department: str,
        status: str,
        latency_s: float,
        ttft_s: float | None,
        prompt_tokens: int,
        completion_tokens: int,
        cost: float,
        error_code: str | None,
        attempts: int,
        deployment: str | None,
    ) -> None:
        self._child(self.requests, endpoint, alias, department, status).inc()
        self._child(self.latency, endpoint, alias, department).observe(latency_s)
        if ttft_s is not None:
            self._child(self.ttft, alias).observe(ttft_s)
        if prompt_tokens:
            self._child(self.tokens, alias, department, "prompt").inc(prompt_tokens)
        if completion_tokens:
            self._child(self.tokens, alias, department, "completion").inc(completion_tokens)
        if cost:
            self._child(self.cost, alias, department).inc(cost)
        if error_code:
            self._child(self.errors, alias, department, error_code).inc()
        if deployment and attempts:
            self._child(self.upstream_attempts, deployment).inc(attempts)

    def render(self) -> bytes:
        return generate_latest(self.registry)


def set_job_counts(metrics: Metrics, counts: dict[tuple[str, str], int], oldest_queued_s: float) -> None:
    """Replace the job gauges with a fresh reading (kinds that are gone disappear)."""
    metrics.jobs.clear()
    for (kind, status), n in counts.items():
        metrics.jobs.labels(kind, status).set(n)
    metrics.oldest_queued_job.set(oldest_queued_s)
