"""OpenTelemetry traces of gateway calls, exported to an OTLP/HTTP endpoint off the hot path.

One CLIENT span per run, made from the finished run record (its start time and latency), with
the GenAI semantic-convention attributes and Aerodrome's own. The request path only queues the
record (a bounded queue: past ``QUEUE_MAX`` waiting spans, new ones are dropped and counted);
a tracer thread builds the spans and a BatchSpanProcessor exports them from its own thread.
Nothing is built when ``telemetry.otlp_endpoint`` is not set. The SDK comes with the ``otel``
extra (``pip install 'aerodrome[otel]'``).
"""

from __future__ import annotations

import logging
import queue
import threading
from typing import Any
from urllib.parse import urlsplit

from aerodrome.config import DeploymentConfig, ProviderConfig, TelemetryConfig
from aerodrome.errors import ConfigError

log = logging.getLogger("aerodrome.tracing")
OPERATION = {"chat": "chat", "usecase": "chat", "embeddings": "embeddings"}
PROVIDER_NAME = {"openai": "openai", "anthropic": "anthropic", "local": "aerodrome.local"}
QUEUE_MAX = 10_000
_STOP = object()


class RunTracer:
    def __init__(self, config: TelemetryConfig) -> None:
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            from opentelemetry.sdk.resources import Resource
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import BatchSpanProcessor
            from opentelemetry.trace import SpanKind, Status, StatusCode
        except ImportError:
            raise ConfigError(
                "telemetry.otlp_endpoint is set but OpenTelemetry is not installed: pip install 'aerodrome[otel]'"
            ) from None
        assert config.otlp_endpoint is not None
        endpoint = config.otlp_endpoint.rstrip("/")
        if not endpoint.endswith("/v1/traces"):
            endpoint += "/v1/traces"
        self._provider = TracerProvider(resource=Resource.create({"service.name": config.service_name}))
        exporter = OTLPSpanExporter(endpoint=endpoint, headers=dict(config.headers) or None)
        self._provider.add_span_processor(
            BatchSpanProcessor(
                exporter, max_queue_size=QUEUE_MAX, max_export_batch_size=1024, schedule_delay_millis=1000
            )
        )
        self._tracer = self._provider.get_tracer("aerodrome")
        self._kind = SpanKind.CLIENT
        self._error = (Status, StatusCode.ERROR)
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=QUEUE_MAX)
        self.dropped = 0
        self._thread = threading.Thread(target=self._loop, name="aerodrome-tracer", daemon=True)
        self._thread.start()

    def record(
        self,
        record: dict[str, Any],
        *,
        requested_model: str | None,
        response_model: str | None,
        deployment: DeploymentConfig | None,
        provider: ProviderConfig | None,
    ) -> None:
        """Queue the span of a finished run (called once per run, after its record is queued)."""
        try:
            self._queue.put_nowait((record, requested_model, response_model, deployment, provider))
        except queue.Full:
            self.dropped += 1

    def _loop(self) -> None:
        while (item := self._queue.get()) is not _STOP:
            try:
                self._span(*item)
            except Exception:  # boundary: one odd record must not stop the tracing of the others
                log.exception("could not build a span", extra={"run_id": item[0].get("id")})

    def _span(
        self,
        record: dict[str, Any],
        requested_model: str | None,
        response_model: str | None,
        deployment: DeploymentConfig | None,
        provider: ProviderConfig | None,
    ) -> None:
        operation = OPERATION.get(record["endpoint"], record["endpoint"])
        attrs: dict[str, Any] = {
            "gen_ai.operation.name": operation,
            "gen_ai.usage.input_tokens": record["prompt_tokens"],
            "gen_ai.usage.output_tokens": record["completion_tokens"],
            "aerodrome.run_id": record["id"],
            "aerodrome.request_id": record["request_id"],
            "aerodrome.status": record["status"],
            "aerodrome.cost_usd": record["cost_usd"],
            "aerodrome.attempts": record["attempts"],
            "aerodrome.principal": record["principal"],
        }
        optional = {
            "gen_ai.request.model": requested_model,
            "gen_ai.response.model": response_model or (deployment.model if deployment else None),
            "aerodrome.department": record["department_id"],
            "aerodrome.use_case": record["use_case_id"],
            "aerodrome.use_case_version": record["spec_version"],
            "aerodrome.alias": record["alias"],
            "aerodrome.deployment": record["deployment"],
            "error.type": record["error_code"],
        }
        attrs.update({k: v for k, v in optional.items() if v is not None})
        if provider is not None:
            name = PROVIDER_NAME.get(provider.kind, provider.kind)
            attrs["gen_ai.provider.name"] = name
            attrs["gen_ai.system"] = name  # the attribute's older name, still read by many backends
            if provider.base_url:
                url = urlsplit(provider.base_url)
                if url.hostname:
                    attrs["server.address"] = url.hostname
                    attrs["server.port"] = url.port or (443 if url.scheme == "https" else 80)
        start_ns = int(record["created_at"].timestamp() * 1e9)
        span = self._tracer.start_span(
            f"{operation} {requested_model or ''}".strip(),
            kind=self._kind,
            start_time=start_ns,
            attributes=attrs,
        )
        if record["error_code"] is not None and record["status"] != "ok":
            status_cls, error = self._error
            span.set_status(status_cls(error, record["error_code"]))
        span.end(end_time=start_ns + int(record["latency_ms"] * 1e6))

    def close(self) -> None:
        """Export what is pending and stop the tracer and exporter threads."""
        self._queue.put(_STOP)
        self._thread.join(timeout=10)
        try:
            self._provider.shutdown()
        except Exception:  # boundary: a collector that is down must not block shutdown
            log.exception("could not flush the last spans")


def make_tracer(config: TelemetryConfig) -> RunTracer | None:
    return RunTracer(config) if config.otlp_endpoint else None
