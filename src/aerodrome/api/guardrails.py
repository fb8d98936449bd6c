"""``POST /v1/guardrails/check``: run guardrail checks on a text (teams test their own texts)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from aerodrome.api.deps import principal, runtime
from aerodrome.guardrails.service import INPUT_CHECKS
from aerodrome.identity.principal import Principal
from aerodrome.runtime import Runtime

router = APIRouter(tags=["guardrails"])


class CheckRequest(BaseModel):
    text: str = Field(max_length=1_000_000)
    checks: list[str] = Field(
        default=list(INPUT_CHECKS), min_length=1, description="pii, prompt_injection, output"
    )


@router.post("/v1/guardrails/check", summary="Run guardrail checks on a text and return the findings")
async def check(
    body: CheckRequest, p: Principal = Depends(principal), rt: Runtime = Depends(runtime)
) -> dict[str, Any]:
    return await run_in_threadpool(rt.guardrails.check, body.text, body.checks)
