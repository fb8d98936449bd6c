"""Alerts and drift through the API: list, show, acknowledge; a use case's drift report and baseline."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends, Query
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from aerodrome.api.deps import principal, runtime
from aerodrome.errors import BadRequest, Forbidden
from aerodrome.identity import permissions as perm
from aerodrome.identity.principal import Principal
from aerodrome.monitoring import alert_store, drift_baseline, drift_report
from aerodrome.runtime import Runtime
from aerodrome.usecases.spec import UseCaseSpec

router = APIRouter(tags=["alerts"])
STATUSES = ("open", "resolved")


class AcknowledgeBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ids: list[str] = Field(max_length=500, description="alert ids to acknowledge")


class BaselineBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    start: datetime = Field(description="start of the baseline window (with a time zone)")
    end: datetime = Field(description="end of the baseline window (not in the future)")


@router.get(
    "/api/alerts", summary="Alerts you may see, newest first (filters: status, use case, department, ...)"
)
async def list_alerts(
    status: str | None = None,
    usecase_id: str | None = None,
    department: str | None = None,
    metric: str | None = None,
    severity: str | None = None,
    since: datetime | None = None,
    limit: int = Query(default=100, ge=1, le=1000),
    offset: int = Query(default=0, ge=0),
    p: Principal = Depends(principal),
    rt: Runtime = Depends(runtime),
) -> dict[str, Any]:
    scope = perm.require(p, "alerts.read")
    if status is not None and status not in STATUSES:
        raise BadRequest(f"status must be one of {list(STATUSES)}", param="status")
    flt = alert_store.AlertFilter(status, usecase_id, department, metric, severity, since, limit, offset)
    return await run_in_threadpool(alert_store.list_alerts, rt.engine, p, scope, flt)


@router.get("/api/alerts/{alert_id}", summary="One alert with its messages' delivery status")
async def get_alert(
    alert_id: str, p: Principal = Depends(principal), rt: Runtime = Depends(runtime)
) -> dict[str, Any]:
    scope = perm.require(p, "alerts.read")
    return await run_in_threadpool(alert_store.get_alert, rt.engine, p, scope, alert_id)


@router.post("/api/alerts/acknowledge", summary="Acknowledge alerts (no more reminders)")
async def acknowledge_many(
    body: AcknowledgeBody, p: Principal = Depends(principal), rt: Runtime = Depends(runtime)
) -> dict[str, Any]:
    scope = perm.require(p, "alerts.acknowledge")
    data = await run_in_threadpool(alert_store.acknowledge, rt.engine, p, scope, body.ids, datetime.now(UTC))
    return {"object": "list", "data": data}


@router.post("/api/alerts/{alert_id}/acknowledge", summary="Acknowledge one alert (no more reminders)")
async def acknowledge_one(
    alert_id: str, p: Principal = Depends(principal), rt: Runtime = Depends(runtime)
) -> dict[str, Any]:
    scope = perm.require(p, "alerts.acknowledge")
    data = await run_in_threadpool(
        alert_store.acknowledge, rt.engine, p, scope, [alert_id], datetime.now(UTC)
    )
    return data[0]


def _spec(rt: Runtime, p: Principal, usecase_id: str, action: str) -> UseCaseSpec:
    scope = perm.require(p, action)
    spec = rt.usecases.get(usecase_id).spec
    if scope != "all" and p.department_id not in spec.departments:
        raise Forbidden(
            f"the use case {usecase_id!r} is not live in your department", code="usecase_not_live"
        )
    return spec


@router.get(
    "/api/usecases/{usecase_id}/drift", summary="The use case's live traffic tested against its baseline"
)
async def drift(
    usecase_id: str, p: Principal = Depends(principal), rt: Runtime = Depends(runtime)
) -> dict[str, Any]:
    spec = _spec(rt, p, usecase_id, "alerts.read")
    report = await run_in_threadpool(drift_report.assess, rt.engine, usecase_id, spec.monitoring.drift)
    return report.as_dict()


@router.put(
    "/api/usecases/{usecase_id}/drift/baseline", summary="Record the window live traffic is compared with"
)
async def record_baseline(
    usecase_id: str, body: BaselineBody, p: Principal = Depends(principal), rt: Runtime = Depends(runtime)
) -> dict[str, Any]:
    spec = _spec(rt, p, usecase_id, "usecases.write")
    if perm.scope_for(p, "usecases.write") != "all" and set(spec.departments) - {p.department_id}:
        raise Forbidden("you may manage only use cases live in your own department alone")
    base = await run_in_threadpool(
        drift_baseline.record_baseline, rt.engine, usecase_id, body.start, body.end, actor=p.name
    )
    return {"usecase_id": usecase_id, **base.as_dict()}
