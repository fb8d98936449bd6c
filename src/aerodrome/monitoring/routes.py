"""/metrics, /healthz and /readyz."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import text

from aerodrome.runtime import Runtime

router = APIRouter(tags=["operations"])


@router.get("/metrics", summary="Prometheus metrics")
async def metrics(request: Request) -> Response:
    rt: Runtime = request.app.state.runtime
    return Response(rt.metrics.render(), media_type=CONTENT_TYPE_LATEST)


@router.get("/healthz", summary="Liveness: the process answers")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


def _db_ok(rt: Runtime) -> bool:
    with rt.engine.connect() as conn:
        conn.execute(text("SELECT 1"))
    return True


@router.get("/readyz", summary="Readiness: database reachable, runtime started")
async def readyz(request: Request) -> Response:
    from fastapi.concurrency import run_in_threadpool

    rt: Runtime | None = getattr(request.app.state, "runtime", None)
    problems = []
    if rt is None or not rt.ready:
        problems.append("runtime not started")
    else:
        try:
            await run_in_threadpool(_db_ok, rt)
        except Exception as exc:  # boundary: report, don't raise
            problems.append(f"database: {type(exc).__name__}")
    body: dict[str, object] = {"status": "ok" if not problems else "unavailable", "problems": problems}
    if rt is not None and rt.redis is not None:
        # Informative only: replicas keep serving by the Redis-down policy (docs/scaling.md), so a
        # Redis outage must not take every replica out of the load balancer at once.
        body["redis"] = "ok" if await rt.redis.ping() else "unreachable"
    import orjson

    return Response(
        orjson.dumps(body), status_code=200 if not problems else 503, media_type="application/json"
    )
