"""The review queue: outputs held by a review policy, waiting for a reviewer's decision.

States::

    pending ──claim──▶ claimed ──approve | edit | reject──▶ approved | edited | rejected
       └───────────────────────approve | edit | reject───────▲

A reviewer may decide straight from ``pending``. A claim lasts :data:`CLAIM_TTL_S` (30 minutes);
until then only its holder may decide the item (409 ``review_claimed`` for anyone else), after it
any reviewer may take the item over. Deciding an item already decided is 409
``review_already_decided``. Every claim and decision appends an audit event in the same
transaction as the change; an edit also keeps the edited output as a correction (a ``feedback``
row written by the reviewer), so corrections feed evaluations and fine-tuning like any other.

Transitions are conditional updates (``WHERE status ... AND claim ...``): two reviewers racing
for one item cannot both win, on SQLite or PostgreSQL.
"""

from __future__ import annotations

import builtins
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, and_, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql.elements import ColumnElement

from aerodrome.audit import trail
from aerodrome.errors import Conflict, Forbidden, NotFound
from aerodrome.feedback import store as feedback_store
from aerodrome.identity.permissions import Scope
from aerodrome.identity.principal import Principal
from aerodrome.review.decisions import (
    DECIDED,
    OPEN,
    checked_note,
    correction_text,
    edited_output,
)
from aerodrome.storage.tables import review_items

CLAIM_TTL_S = 30 * 60
_ACTIONS = {"approved": "review.approve", "edited": "review.edit", "rejected": "review.reject"}


@dataclass(frozen=True, slots=True)
class Hold:
    """One output held for review, as the use-case runner hands it over."""

    run_id: str
    usecase_id: str | None
    spec_version: int | None
    department_id: str
    requester: str  # principal name of the caller
    key_id: str | None
    user_id: str | None
    reasons: list[str]  # e.g. ["always"], ["flagged:pii", "risk_high"], ["sample"]
    draft: dict[str, Any]  # {"output": str | dict, "citations": [...], "inputs": {...}} as held


@dataclass(frozen=True, slots=True)
class ReviewFilter:
    statuses: tuple[str, ...] = OPEN
    usecase_id: str | None = None
    department: str | None = None
    limit: int = 100
    offset: int = 0


class ReviewQueue:
    def __init__(
        self,
        engine: Engine,
        *,
        claim_ttl_s: float = CLAIM_TTL_S,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.engine = engine
        self.claim_ttl = timedelta(seconds=claim_ttl_s)
        self._clock = clock or (lambda: datetime.now(UTC))

    # ------------------------------------------------------------- the runner's side

    def hold(self, hold: Hold) -> str:
        """Store a held output (synchronously) and return its review id (32 hex characters)."""
        if not hold.department_id:
            raise ValueError("a held output needs the caller's department")
        if not isinstance(hold.draft, dict) or not isinstance(hold.draft.get("output"), str | dict):
            raise ValueError('draft must be a dict with "output" (a string or a dict)')
        if not all(isinstance(r, str) and r for r in hold.reasons):
            raise ValueError("reasons must be non-empty strings")
        review_id = uuid.uuid4().hex
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    review_items.insert().values(
                        id=review_id,
                        run_id=hold.run_id,
                        usecase_id=hold.usecase_id,
                        spec_version=hold.spec_version,
                        department_id=hold.department_id,
                        requester=hold.requester,
                        key_id=hold.key_id,
                        user_id=hold.user_id,
                        reasons=list(hold.reasons),
                        status="pending",
                        draft=hold.draft,
                        created_at=self._clock(),
                    )
                )
        except IntegrityError:
            raise Conflict(f"run {hold.run_id!r} is already held for review", code="review_exists") from None
        return review_id

    def for_run(self, run_id: str) -> dict[str, Any] | None:
        """The review item of a run (status, final, decided_by, note, ...), or None if never held."""
        with self.engine.connect() as conn:
            row = conn.execute(select(review_items).where(review_items.c.run_id == run_id)).mappings().first()
        return self._public(dict(row)) if row else None

    # ------------------------------------------------------------- reading

    def get(self, review_id: str, principal: Principal, scope: Scope) -> dict[str, Any]:
        with self.engine.connect() as conn:
            item = self._load(conn, review_id)
        self._check_scope(principal, scope, item)
        return self._public(item)

    def list(self, principal: Principal, scope: Scope, flt: ReviewFilter) -> dict[str, Any]:
        """Items in the caller's scope, oldest first, with the age of the oldest undecided one."""
        conds = self._scope_conds(principal, scope)
        if flt.usecase_id:
            conds.append(review_items.c.usecase_id == flt.usecase_id)
        if flt.department:
            conds.append(review_items.c.department_id == flt.department)
        now = self._clock()
        with self.engine.connect() as conn:
            oldest = conn.execute(
                select(func.min(review_items.c.created_at)).where(*conds, review_items.c.status.in_(OPEN))
            ).scalar()
            conds.append(review_items.c.status.in_(flt.statuses))
            total = conn.execute(select(func.count()).select_from(review_items).where(*conds)).scalar_one()
            rows = conn.execute(
                select(review_items)
                .where(*conds)
                .order_by(review_items.c.created_at, review_items.c.id)
                .limit(flt.limit)
                .offset(flt.offset)
            ).mappings()
            data = [self._public(dict(r), now) for r in rows]
        if oldest is not None and oldest.tzinfo is None:  # min() skips the column type on some dialects
            oldest = oldest.replace(tzinfo=UTC)
        return {
            "object": "list",
            "total": total,
            "oldest_pending_age_s": round((now - oldest).total_seconds(), 3) if oldest is not None else None,
            "data": data,
        }

    # ------------------------------------------------------------- claiming

    def claim(self, review_id: str, principal: Principal, scope: Scope) -> dict[str, Any]:
        now = self._clock()
        with self.engine.begin() as conn:
            item = self._load(conn, review_id)
            self._check_scope(principal, scope, item, deciding=True)
            self._check_not_own(item, principal)
            self._check_actable(item, principal, now)
            changed = conn.execute(
                update(review_items)
                .where(review_items.c.id == review_id, self._actable(principal, now))
                .values(status="claimed", claimed_by=principal.name, claimed_at=now)
            ).rowcount
            if changed != 1:
                self._raise_changed(conn, review_id, principal, now)
            trail.record(
                conn,
                actor=principal.name,
                action="review.claim",
                object_type="review_item",
                object_id=review_id,
                details=self._audit_details(item, principal, took_over_from=item["claimed_by"]),
            )
            return self._public(self._load(conn, review_id), now)

    def next(
        self,
        principal: Principal,
        scope: Scope,
        *,
        usecase_id: str | None = None,
        department: str | None = None,
    ) -> dict[str, Any] | None:
        """Claim the oldest pending item (or one whose claim expired) in the caller's scope."""
        for _ in range(5):  # another reviewer may take the candidate first: try the next one
            now = self._clock()
            conds = self._scope_conds(principal, scope)
            conds.append(review_items.c.requester != principal.name)  # never one's own output
            if usecase_id:
                conds.append(review_items.c.usecase_id == usecase_id)
            if department:
                conds.append(review_items.c.department_id == department)
            with self.engine.connect() as conn:
                candidate = conn.execute(
                    select(review_items.c.id)
                    .where(
                        *conds,
                        or_(
                            review_items.c.status == "pending",
                            and_(
                                review_items.c.status == "claimed",
                                review_items.c.claimed_at < now - self.claim_ttl,
                            ),
                        ),
                    )
                    .order_by(review_items.c.created_at, review_items.c.id)
                    .limit(1)
                ).scalar()
            if candidate is None:
                return None
            try:
                return self.claim(candidate, principal, scope)
            except Conflict:
                continue
        return None

    # ------------------------------------------------------------- decisions

    def approve(
        self, review_id: str, principal: Principal, scope: Scope, *, note: str | None = None
    ) -> dict[str, Any]:
        return self._decide(review_id, principal, scope, "approved", note=checked_note(note, required=False))

    def edit(
        self, review_id: str, principal: Principal, scope: Scope, *, output: Any, note: str | None = None
    ) -> dict[str, Any]:
        return self._decide(
            review_id, principal, scope, "edited", note=checked_note(note, required=False), output=output
        )

    def reject(
        self, review_id: str, principal: Principal, scope: Scope, *, note: str | None
    ) -> dict[str, Any]:
        return self._decide(review_id, principal, scope, "rejected", note=checked_note(note, required=True))

    def _decide(
        self,
        review_id: str,
        principal: Principal,
        scope: Scope,
        status: str,
        *,
        note: str | None,
        output: Any = None,
    ) -> dict[str, Any]:
        now = self._clock()
        with self.engine.begin() as conn:
            item = self._load(conn, review_id)
            self._check_scope(principal, scope, item, deciding=True)
            self._check_not_own(item, principal)
            self._check_actable(item, principal, now)
            draft_output = (item["draft"] or {}).get("output")
            final: Any = None
            if status == "approved":
                final = draft_output
            elif status == "edited":
                final = edited_output(draft_output, output)
            changed = conn.execute(
                update(review_items)
                .where(review_items.c.id == review_id, self._actable(principal, now))
                .values(status=status, final=final, decided_by=principal.name, decided_at=now, note=note)
            ).rowcount
            if changed != 1:
                self._raise_changed(conn, review_id, principal, now)
            details = self._audit_details(item, principal, note=note)
            if status == "edited":
                details["feedback_id"] = feedback_store.insert(
                    conn,
                    run_id=item["run_id"],
                    usecase_id=item["usecase_id"],
                    spec_version=item["spec_version"],
                    department_id=item["department_id"],
                    author=principal,
                    author_role="reviewer",
                    correction=correction_text(final),
                    comment=note,
                )
            trail.record(
                conn,
                actor=principal.name,
                action=_ACTIONS[status],
                object_type="review_item",
                object_id=review_id,
                details=details,
            )
            return self._public(self._load(conn, review_id), now)

    # ------------------------------------------------------------- rules

    def _actable(self, principal: Principal, now: datetime) -> ColumnElement[bool]:
        """SQL: the item is undecided and free for this reviewer (unclaimed, theirs, or claim expired)."""
        return and_(
            review_items.c.status.in_(OPEN),
            or_(
                review_items.c.status == "pending",
                review_items.c.claimed_by == principal.name,
                review_items.c.claimed_at < now - self.claim_ttl,
            ),
        )

    @staticmethod
    def _check_not_own(item: dict[str, Any], principal: Principal) -> None:
        """Four eyes: nobody reviews an output of their own call."""
        same_user = item["user_id"] is not None and item["user_id"] == principal.user_id
        same_key = item["key_id"] is not None and item["key_id"] == principal.key_id
        if item["requester"] == principal.name or same_user or same_key:
            raise Forbidden(
                "you made the call that produced this output; another reviewer must decide it",
                code="review_own_output",
            )

    def _check_actable(self, item: dict[str, Any], principal: Principal, now: datetime) -> None:
        if item["status"] in DECIDED:
            raise Conflict(
                f"review {item['id']} was already decided ({item['status']} by {item['decided_by']})",
                code="review_already_decided",
            )
        if (
            item["status"] == "claimed"
            and item["claimed_by"] != principal.name
            and item["claimed_at"] is not None
            and item["claimed_at"] >= now - self.claim_ttl
        ):
            expires = item["claimed_at"] + self.claim_ttl
            raise Conflict(
                f"review {item['id']} is claimed by {item['claimed_by']} until {expires.isoformat()}",
                code="review_claimed",
            )

    def _raise_changed(self, conn: Connection, review_id: str, principal: Principal, now: datetime) -> None:
        """The conditional update matched nothing: someone acted first. Say what happened."""
        self._check_actable(self._load(conn, review_id), principal, now)
        raise Conflict(f"review {review_id} changed while you acted on it; try again", code="review_changed")

    @staticmethod
    def _check_scope(
        principal: Principal, scope: Scope, item: dict[str, Any], *, deciding: bool = False
    ) -> None:
        if scope == "all":
            return
        if scope == "department":
            if item["department_id"] != principal.department_id:
                raise Forbidden("this review item belongs to another department")
            return
        # "own": the caller's held runs, to read; nobody decides on their own output with it
        mine = item["key_id"] == principal.key_id or (
            principal.user_id and item["user_id"] == principal.user_id
        )
        if deciding or not mine:
            raise Forbidden("you may not review this item")

    @staticmethod
    def _scope_conds(principal: Principal, scope: Scope) -> builtins.list[ColumnElement[bool]]:
        if scope == "all":
            return []
        if scope == "department":
            return [review_items.c.department_id == principal.department_id]
        if principal.user_id:
            return [
                or_(review_items.c.key_id == principal.key_id, review_items.c.user_id == principal.user_id)
            ]
        return [review_items.c.key_id == principal.key_id]

    # ------------------------------------------------------------- rows

    @staticmethod
    def _load(conn: Connection, review_id: str) -> dict[str, Any]:
        row = conn.execute(select(review_items).where(review_items.c.id == review_id)).mappings().first()
        if row is None:
            raise NotFound(f"no review item {review_id!r}", code="review_not_found")
        return dict(row)

    def _public(self, item: dict[str, Any], now: datetime | None = None) -> dict[str, Any]:
        now = now or self._clock()
        item["age_s"] = round((now - item["created_at"]).total_seconds(), 3)
        claimed_at = item.get("claimed_at")
        item["claim_expires_at"] = (
            claimed_at + self.claim_ttl if item["status"] == "claimed" and claimed_at is not None else None
        )
        return item

    @staticmethod
    def _audit_details(item: dict[str, Any], principal: Principal, **extra: Any) -> dict[str, Any]:
        details: dict[str, Any] = {
            "run_id": item["run_id"],
            "usecase_id": item["usecase_id"],
            "spec_version": item["spec_version"],
            "department_id": item["department_id"],
            "reviewer_key_id": principal.key_id,
            "reviewer_user_id": principal.user_id,
        }
        details.update({k: v for k, v in extra.items() if v is not None})
        return details
