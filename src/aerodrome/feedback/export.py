"""Feedback as JSON Lines, joined with its run and review: ready for eval sets and fine-tuning.

One line per feedback row, oldest first (the format is documented in docs/review-and-feedback.md)::

    {"feedback_id", "created_at", "run_id", "usecase_id", "spec_version", "department_id",
     "author", "author_role", "rating", "score", "flags", "correction", "comment",
     "run": {"created_at", "status", "model", "deployment", "latency_ms", "cost_usd"} | null,
     "input", "output",
     "review": {"id", "status", "reasons", "decided_by", "decided_at", "note", "draft_output",
                "final"} | null,
     "preferred_output", "preferred_source"}

Run content (``input``, ``output``, the review's ``draft_output`` and ``final``) is included only
for departments whose content logging is ``full``; elsewhere those fields are null. What people
wrote as feedback (correction, comment) is always included.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Engine, and_, or_, select
from sqlalchemy.sql.elements import ColumnElement

from aerodrome.identity.permissions import Scope
from aerodrome.identity.principal import Principal
from aerodrome.monitoring.run_lookup import stored_input, stored_output
from aerodrome.storage.tables import feedback, review_items, run_contents, runs

PAGE = 500


@dataclass(frozen=True, slots=True)
class ExportFilter:
    usecase_id: str | None = None
    department: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def _scope(principal: Principal, scope: Scope) -> list[ColumnElement[bool]]:
    if scope == "all":
        return []
    if scope == "department":
        return [feedback.c.department_id == principal.department_id]
    return [feedback.c.author_key_id == principal.key_id]


_COLUMNS = [
    *feedback.c,
    runs.c.created_at.label("run_created_at"),
    runs.c.status.label("run_status"),
    runs.c.alias.label("run_model"),
    runs.c.deployment.label("run_deployment"),
    runs.c.latency_ms.label("run_latency_ms"),
    runs.c.cost_usd.label("run_cost_usd"),
    runs.c.use_case_id.label("run_use_case_id"),
    runs.c.spec_version.label("run_spec_version"),
    run_contents.c.input.label("run_input"),
    run_contents.c.output.label("run_output"),
    runs.c.id.label("run_found"),
    review_items.c.id.label("review_id"),
    review_items.c.status.label("review_status"),
    review_items.c.reasons.label("review_reasons"),
    review_items.c.decided_by.label("review_decided_by"),
    review_items.c.decided_at.label("review_decided_at"),
    review_items.c.note.label("review_note"),
    review_items.c.draft.label("review_draft"),
    review_items.c.final.label("review_final"),
]


def lines(
    engine: Engine,
    principal: Principal,
    scope: Scope,
    flt: ExportFilter,
    policies: Mapping[str, str],
) -> Iterator[bytes]:
    """Yield one JSON line per feedback row, reading the table a page at a time."""
    conds = _scope(principal, scope)
    if flt.usecase_id:
        conds.append(feedback.c.usecase_id == flt.usecase_id)
    if flt.department:
        conds.append(feedback.c.department_id == flt.department)
    if flt.since:
        conds.append(feedback.c.created_at >= flt.since)
    if flt.until:
        conds.append(feedback.c.created_at < flt.until)
    joined = (
        feedback.outerjoin(runs, runs.c.id == feedback.c.run_id)
        .outerjoin(run_contents, run_contents.c.run_id == feedback.c.run_id)
        .outerjoin(review_items, review_items.c.run_id == feedback.c.run_id)
    )
    after: tuple[datetime, str] | None = None
    while True:
        page_conds = list(conds)
        if after is not None:
            page_conds.append(
                or_(
                    feedback.c.created_at > after[0],
                    and_(feedback.c.created_at == after[0], feedback.c.id > after[1]),
                )
            )
        query = (
            select(*_COLUMNS)
            .select_from(joined)
            .where(*page_conds)
            .order_by(feedback.c.created_at, feedback.c.id)
            .limit(PAGE)
        )
        with engine.connect() as conn:
            rows = [dict(r) for r in conn.execute(query).mappings()]
        for row in rows:
            yield orjson.dumps(line(row, policies)) + b"\n"
        if len(rows) < PAGE:
            return
        after = (rows[-1]["created_at"], rows[-1]["id"])


def line(row: dict[str, Any], policies: Mapping[str, str]) -> dict[str, Any]:
    """One export line from a joined row (see the module docstring)."""
    content = policies.get(row["department_id"] or "", "metadata") == "full"
    draft = row["review_draft"] or {}
    input_ = stored_input(row["run_input"]) if content else None
    output = stored_output(row["run_output"]) if content else None
    if content and row["review_id"] is not None:
        input_ = input_ if input_ is not None else draft.get("inputs")
        output = output if output is not None else draft.get("output")
    review = None
    if row["review_id"] is not None:
        review = {
            "id": row["review_id"],
            "status": row["review_status"],
            "reasons": row["review_reasons"],
            "decided_by": row["review_decided_by"],
            "decided_at": row["review_decided_at"],
            "note": row["review_note"],
            "draft_output": draft.get("output") if content else None,
            "final": row["review_final"] if content else None,
        }
    preferred, source = _preferred(row, review, output)
    return {
        "feedback_id": row["id"],
        "created_at": row["created_at"],
        "run_id": row["run_id"],
        "usecase_id": row["usecase_id"] or row["run_use_case_id"],
        "spec_version": row["spec_version"] if row["spec_version"] is not None else row["run_spec_version"],
        "department_id": row["department_id"],
        "author": row["author"],
        "author_role": row["author_role"],
        "rating": row["rating"],
        "score": row["score"],
        "flags": row["flags"] or [],
        "correction": row["correction"],
        "comment": row["comment"],
        "run": None
        if row["run_found"] is None
        else {
            "created_at": row["run_created_at"],
            "status": row["run_status"],
            "model": row["run_model"],
            "deployment": row["run_deployment"],
            "latency_ms": row["run_latency_ms"],
            "cost_usd": row["run_cost_usd"],
        },
        "input": input_,
        "output": output,
        "review": review,
        "preferred_output": preferred,
        "preferred_source": source,
    }


def _preferred(row: dict[str, Any], review: dict[str, Any] | None, output: Any) -> tuple[Any, str | None]:
    """The best known answer for this run: a correction, a reviewer's release, or a liked output."""
    released = review is not None and review["final"] is not None
    if released and review is not None and review["status"] == "edited":
        return review["final"], "review_edited"
    if row["correction"]:
        return row["correction"], "correction"
    if released and review is not None and review["status"] == "approved":
        return review["final"], "review_approved"
    if row["score"] is not None and row["score"] >= 0.75 and output is not None and not row["flags"]:
        return output, "rated_up"
    return None, None
