"""What a run's caller sees of it (``GET /v1/runs/{id}``): its status, and for a held run the
output only once a reviewer released it."""

from __future__ import annotations

from typing import Any

from aerodrome.identity.principal import Principal
from aerodrome.monitoring.run_lookup import FoundRun, RunLookup, check_access, stored_output

RELEASED = ("approved", "edited")


def run_outcome(runs: RunLookup, principal: Principal, run_id: str) -> dict[str, Any]:
    """The run for its caller or a principal whose ``runs.read`` scope covers it; 404 / 403 otherwise."""
    run = runs.find(run_id)
    check_access(principal, run, "runs.read")
    return view(run_id, run)


def view(run_id: str, run: FoundRun) -> dict[str, Any]:
    rec = run.record or {}
    item = run.review
    meta = rec.get("meta") or {}
    usecase_meta = meta.get("usecase") if isinstance(meta, dict) else None
    citations = usecase_meta.get("citations") if isinstance(usecase_meta, dict) else None
    prompt, completion = rec.get("prompt_tokens"), rec.get("completion_tokens")
    out: dict[str, Any] = {
        "id": run_id,
        "object": "run",
        "created_at": rec.get("created_at") or (item["created_at"] if item else None),
        "status": rec.get("status"),
        "use_case_id": run.use_case_id,
        "spec_version": run.spec_version,
        "model": rec.get("alias"),
        "deployment": rec.get("deployment"),
        "latency_ms": rec.get("latency_ms"),
        "cost_usd": rec.get("cost_usd"),
        "tokens": None
        if run.record is None
        else {
            "prompt": prompt or 0,
            "completion": completion or 0,
            "total": (prompt or 0) + (completion or 0),
        },
        "review_status": None,
        "review_id": None,
        "review_note": None,
        "output": stored_output(rec.get("output")),
        "citations": citations,
    }
    if item is not None:
        released = item["status"] in RELEASED
        draft = item["draft"] or {}
        out["review_status"] = item["status"]
        out["review_id"] = item["id"]
        out["review_note"] = item["note"] if item["status"] in ("approved", "edited", "rejected") else None
        out["output"] = item["final"] if released else None
        if item.get("content_purged_at") is not None:  # retention cleared the draft and answer
            out["content_purged_at"] = item["content_purged_at"]
        if released:
            out["citations"] = citations if citations is not None else draft.get("citations")
        else:
            out["citations"] = None  # the draft's sources stay with the draft until it is released
    return out
