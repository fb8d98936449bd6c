"""The portfolio: proposals from any department, value versus complexity, similar work found by meaning.

A proposal carries its problem, workflow, users, volume and two scores from 1 to 5. Similar
proposals and use cases are found by the cosine of their embeddings (the local MiniLM model
when installed, else a bag-of-words vector), each shown with its score. Accepting a proposal
makes a use case in stage ``idea`` (no spec yet) owned by the proposing department.
"""

from __future__ import annotations

import math
import os
import re
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Engine, select, update

from aerodrome.audit import trail
from aerodrome.errors import Conflict, NotFound
from aerodrome.storage.tables import proposals, usecases
from aerodrome.usecases.spec import ID_PATTERN

Embed = Callable[[Sequence[str]], list[list[float]]]
SIMILAR_MIN = 0.35  # cosine under which work is not shown as similar
SIMILAR_TOP = 5


class ProposalIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str = Field(min_length=1, max_length=200)
    problem: str = Field(min_length=1, max_length=4000, description="the problem, in the business's words")
    workflow: str = Field(default="", max_length=4000, description="the work as done today")
    users: str = Field(default="", max_length=1000, description="who would use it")
    volume_per_day: int | None = Field(default=None, ge=0, description="how often the work happens")
    value: int = Field(ge=1, le=5, description="expected value, 1 (low) to 5 (high)")
    complexity: int = Field(ge=1, le=5, description="expected complexity, 1 (low) to 5 (high)")
    department: str | None = Field(default=None, description="the proposing department; default: yours")


class Accept(BaseModel):
    model_config = ConfigDict(extra="forbid")

    usecase_id: str = Field(pattern=ID_PATTERN, description="the id of the use case it becomes")


class Decline(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=3, max_length=2000)


def quadrant(value: int, complexity: int) -> str:
    """Value versus complexity: quick win, major project, fill-in or reconsider."""
    if value >= 3:
        return "quick_win" if complexity <= 3 else "major_project"
    return "fill_in" if complexity <= 3 else "reconsider"


def text_of(title: str, problem: str, workflow: str = "") -> str:
    return "\n".join(part for part in (title, problem, workflow) if part)


_WORD = re.compile(r"[a-z0-9]{3,}")


def bag_of_words(texts: Sequence[str]) -> list[list[float]]:
    """A vector per text over their shared vocabulary (the fallback without a local model)."""
    counts = [Counter(_WORD.findall(t.lower())) for t in texts]
    vocabulary = sorted(set().union(*counts)) if counts else []
    return [[float(c.get(w, 0)) for w in vocabulary] for c in counts]


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=False))
    na = math.sqrt(sum(x * x for x in a))
    nb = math.sqrt(sum(y * y for y in b))
    return dot / (na * nb) if na and nb else 0.0


def similar(target: str, candidates: list[tuple[str, str, str]], embed: Embed | None) -> list[dict[str, Any]]:
    """Candidates (kind, id, text) most similar to the target text, best first, each with its score."""
    if not candidates:
        return []
    texts = [target] + [c[2] for c in candidates]
    vectors = embed(texts) if embed is not None else bag_of_words(texts)
    scored = [
        (round(cosine(vectors[0], vec), 4), kind, ident)
        for (kind, ident, _), vec in zip(candidates, vectors[1:], strict=True)
    ]
    best = sorted((s for s in scored if s[0] >= SIMILAR_MIN), key=lambda s: -s[0])[:SIMILAR_TOP]
    return [{"kind": kind, "id": ident, "score": score} for score, kind, ident in best]


def _public(row: dict[str, Any]) -> dict[str, Any]:
    out = dict(row)
    out["quadrant"] = quadrant(row["value"], row["complexity"])
    return out


def create(engine: Engine, body: ProposalIn, *, department: str, actor: str) -> dict[str, Any]:
    now = datetime.now(UTC)
    proposal_id = os.urandom(16).hex()
    row: dict[str, Any] = {
        "id": proposal_id,
        "department_id": department,
        "title": body.title,
        "problem": body.problem,
        "workflow": body.workflow,
        "users": body.users,
        "volume_per_day": body.volume_per_day,
        "value": body.value,
        "complexity": body.complexity,
        "status": "open",
        "usecase_id": None,
        "created_by": actor,
        "created_at": now,
        "updated_at": now,
    }
    with engine.begin() as conn:
        conn.execute(proposals.insert().values(**row))
        trail.record(
            conn,
            actor=actor,
            action="proposal.create",
            object_type="proposal",
            object_id=proposal_id,
            details={"title": body.title, "department": department},
        )
    return _public(row)


def get(engine: Engine, proposal_id: str) -> dict[str, Any]:
    with engine.connect() as conn:
        row = conn.execute(select(proposals).where(proposals.c.id == proposal_id)).mappings().first()
    if row is None:
        raise NotFound(f"no proposal {proposal_id!r}", code="proposal_not_found")
    return _public(dict(row))


def list_all(engine: Engine, department: str | None = None) -> list[dict[str, Any]]:
    query = select(proposals).order_by(proposals.c.created_at)
    if department is not None:
        query = query.where(proposals.c.department_id == department)
    with engine.connect() as conn:
        return [_public(dict(r)) for r in conn.execute(query).mappings()]


def matrix(items: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {
        q: [] for q in ("quick_win", "major_project", "fill_in", "reconsider")
    }
    for item in items:
        out[item["quadrant"]].append(
            {k: item[k] for k in ("id", "title", "department_id", "value", "complexity", "status")}
        )
    return out


def accept(engine: Engine, proposal_id: str, usecase_id: str, *, actor: str) -> dict[str, Any]:
    """The proposal becomes a use case in stage idea, owned by the proposing department."""
    now = datetime.now(UTC)
    with engine.begin() as conn:
        row = conn.execute(select(proposals).where(proposals.c.id == proposal_id)).mappings().first()
        if row is None:
            raise NotFound(f"no proposal {proposal_id!r}", code="proposal_not_found")
        if row["status"] != "open":
            raise Conflict(f"the proposal is already {row['status']}", code="proposal_decided")
        if conn.execute(select(usecases.c.id).where(usecases.c.id == usecase_id)).first() is not None:
            raise Conflict(
                f"a use case {usecase_id!r} exists already; choose another id", code="usecase_exists"
            )
        conn.execute(
            usecases.insert().values(
                id=usecase_id,
                origin="proposal",
                source=None,
                current_version=None,
                status="active",
                stage="idea",
                stage_changed_at=now,
                department_id=row["department_id"],
                created_at=now,
                updated_at=now,
                updated_by=actor,
            )
        )
        conn.execute(
            update(proposals)
            .where(proposals.c.id == proposal_id)
            .values(status="accepted", usecase_id=usecase_id, updated_at=now)
        )
        trail.record(
            conn,
            actor=actor,
            action="proposal.accept",
            object_type="proposal",
            object_id=proposal_id,
            details={"usecase_id": usecase_id},
        )
    return {"proposal_id": proposal_id, "usecase_id": usecase_id, "stage": "idea"}


def decline(engine: Engine, proposal_id: str, reason: str, *, actor: str) -> dict[str, Any]:
    with engine.begin() as conn:
        status = conn.execute(select(proposals.c.status).where(proposals.c.id == proposal_id)).scalar()
        if status is None:
            raise NotFound(f"no proposal {proposal_id!r}", code="proposal_not_found")
        if status != "open":
            raise Conflict(f"the proposal is already {status}", code="proposal_decided")
        conn.execute(
            update(proposals)
            .where(proposals.c.id == proposal_id)
            .values(status="declined", updated_at=datetime.now(UTC))
        )
        trail.record(
            conn,
            actor=actor,
            action="proposal.decline",
            object_type="proposal",
            object_id=proposal_id,
            details={"reason": reason},
        )
    return get(engine, proposal_id)
