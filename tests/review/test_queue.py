"""The review queue's state machine, claims and audit events, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, select

from aerodrome.audit import trail
from aerodrome.errors import BadRequest, Conflict, Forbidden, NotFound
from aerodrome.identity.principal import Principal
from aerodrome.review.queue import CLAIM_TTL_S, Hold, ReviewFilter, ReviewQueue
from aerodrome.storage.tables import audit_events, feedback


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def queue(engine: Engine, clock: Clock) -> ReviewQueue:
    return ReviewQueue(engine, clock=clock)


def reviewer(name: str, dept: str = "hr", role: str = "reviewer") -> Principal:
    return Principal(name=name, department_id=dept, roles=frozenset({role}), key_id=f"k-{name}")


ANNA, BOB, FIN = reviewer("anna@hr"), reviewer("bob@hr"), reviewer("fay@fin", "finance")


def held(
    queue: ReviewQueue, run: str, *, dept: str = "hr", output: Any = "draft text", usecase: str = "uc"
) -> str:
    return queue.hold(
        Hold(
            run_id=run,
            usecase_id=usecase,
            spec_version=2,
            department_id=dept,
            requester="carl@hr",
            key_id="k-carl",
            user_id=None,
            reasons=["flagged:pii", "risk_high"],
            draft={"output": output, "citations": [{"id": 1}], "inputs": {"q": "?"}},
        )
    )


def audit(engine: Engine) -> list[tuple[str, str, str]]:
    with engine.connect() as conn:
        rows = conn.execute(select(audit_events).order_by(audit_events.c.seq)).mappings().all()
    return [(r["actor"], r["action"], r["object_id"]) for r in rows]


def test_hold_then_claim_then_approve(queue: ReviewQueue, engine: Engine, clock: Clock) -> None:
    rid = held(queue, "run1")
    assert len(rid) == 32 and int(rid, 16) >= 0
    item = queue.for_run("run1")
    assert item is not None and item["id"] == rid and item["status"] == "pending"
    assert item["reasons"] == ["flagged:pii", "risk_high"] and item["requester"] == "carl@hr"
    assert queue.for_run("other") is None

    claimed = queue.claim(rid, ANNA, "department")
    assert claimed["status"] == "claimed" and claimed["claimed_by"] == "anna@hr"
    assert claimed["claim_expires_at"] == clock.now + timedelta(seconds=CLAIM_TTL_S)
    # claiming again by the holder is fine (idempotent); by somebody else it is a conflict
    assert queue.claim(rid, ANNA, "department")["claimed_by"] == "anna@hr"
    with pytest.raises(Conflict) as exc:
        queue.claim(rid, BOB, "department")
    assert exc.value.code == "review_claimed" and "anna@hr" in exc.value.message
    with pytest.raises(Conflict) as exc:
        queue.approve(rid, BOB, "department")
    assert exc.value.code == "review_claimed"

    clock.advance(60)
    done = queue.approve(rid, ANNA, "department", note="  looks right ")
    assert done["status"] == "approved" and done["decided_by"] == "anna@hr"
    assert done["final"] == "draft text" and done["note"] == "looks right"
    assert done["decided_at"] == clock.now and done["claim_expires_at"] is None
    for act in (
        lambda: queue.approve(rid, ANNA, "department"),
        lambda: queue.edit(rid, ANNA, "department", output="x"),
        lambda: queue.reject(rid, ANNA, "department", note="no"),
        lambda: queue.claim(rid, BOB, "department"),
    ):
        with pytest.raises(Conflict) as exc:
            act()
        assert exc.value.code == "review_already_decided" and exc.value.status == 409
    assert audit(engine) == [("anna@hr", "review.claim", rid)] * 2 + [("anna@hr", "review.approve", rid)]
    assert trail.verify(engine).ok


def test_decisions_straight_from_pending(queue: ReviewQueue, engine: Engine) -> None:
    a, b, c = (
        held(queue, "r-a"),
        held(queue, "r-b", output={"answer": "x", "sources": [1]}),
        held(queue, "r-c"),
    )
    assert queue.approve(a, BOB, "department")["status"] == "approved"

    with pytest.raises(BadRequest) as bad:
        queue.edit(b, BOB, "department", output="a string for a structured draft")
    assert bad.value.param == "output"
    edited = queue.edit(b, BOB, "department", output={"answer": "y", "sources": [1]}, note="fixed the answer")
    assert edited["status"] == "edited" and edited["final"] == {"answer": "y", "sources": [1]}

    for note in (None, "", "   "):
        with pytest.raises(BadRequest) as bad:
            queue.reject(c, BOB, "department", note=note)
        assert bad.value.param == "note"
    with pytest.raises(BadRequest):
        queue.reject(c, BOB, "department", note="x" * 2001)
    rejected = queue.reject(c, BOB, "department", note="cites the wrong policy")
    assert rejected["status"] == "rejected" and rejected["final"] is None
    assert rejected["note"] == "cites the wrong policy"

    # the edit is kept as a correction by the reviewer
    with engine.connect() as conn:
        rows = conn.execute(select(feedback)).mappings().all()
    assert len(rows) == 1
    row = rows[0]
    assert row["run_id"] == "r-b" and row["author_role"] == "reviewer" and row["author"] == "bob@hr"
    assert row["correction"] == '{"answer":"y","sources":[1]}' and row["comment"] == "fixed the answer"
    assert row["usecase_id"] == "uc" and row["spec_version"] == 2 and row["department_id"] == "hr"
    assert row["rating"] is None and row["flags"] == []
    assert [a for _, a, _ in audit(engine)] == ["review.approve", "review.edit", "review.reject"]
    assert trail.verify(engine).ok


def test_an_expired_claim_can_be_taken_over(queue: ReviewQueue, engine: Engine, clock: Clock) -> None:
    rid = held(queue, "run1")
    queue.claim(rid, ANNA, "department")
    clock.advance(CLAIM_TTL_S - 1)
    with pytest.raises(Conflict):
        queue.claim(rid, BOB, "department")
    assert queue.next(BOB, "department") is None  # a live claim is not offered to others
    clock.advance(2)
    taken = queue.next(BOB, "department")
    assert taken is not None and taken["id"] == rid and taken["claimed_by"] == "bob@hr"
    with pytest.raises(Conflict) as exc:
        queue.approve(rid, ANNA, "department")  # anna's claim is gone
    assert exc.value.code == "review_claimed"
    queue.edit(rid, BOB, "department", output="better")
    with engine.connect() as conn:
        details = (
            conn.execute(
                select(audit_events.c.details)
                .where(audit_events.c.action == "review.claim")
                .order_by(audit_events.c.seq)
            )
            .scalars()
            .all()
        )
    assert details[1]["took_over_from"] == "anna@hr" and "took_over_from" not in details[0]


def test_next_claims_the_oldest_in_scope(queue: ReviewQueue, clock: Clock) -> None:
    first = held(queue, "r1")
    clock.advance(5)
    fin = held(queue, "r2", dept="finance")
    clock.advance(5)
    second = held(queue, "r3", usecase="other")
    clock.advance(5)
    got = queue.next(ANNA, "department")
    assert got is not None and got["id"] == first and got["age_s"] == 15.0
    got = queue.next(BOB, "department", usecase_id="uc")
    assert got is None  # r1 is anna's now; r3 is another use case
    got = queue.next(BOB, "department")
    assert got is not None and got["id"] == second
    assert queue.next(BOB, "department") is None
    got = queue.next(FIN, "department")
    assert got is not None and got["id"] == fin
    admin = Principal(name="root", department_id="platform", roles=frozenset({"platform_admin"}))
    assert queue.next(admin, "all") is None


def test_scope_is_the_items_department(queue: ReviewQueue) -> None:
    rid = held(queue, "run1")
    for act in (
        lambda: queue.get(rid, FIN, "department"),
        lambda: queue.claim(rid, FIN, "department"),
        lambda: queue.approve(rid, FIN, "department"),
        lambda: queue.reject(rid, FIN, "department", note="no"),
    ):
        with pytest.raises(Forbidden):
            act()
    assert queue.list(FIN, "department", ReviewFilter())["data"] == []
    auditor = Principal(name="aud", department_id="platform", roles=frozenset({"auditor"}))
    assert [i["id"] for i in queue.list(auditor, "all", ReviewFilter())["data"]] == [rid]
    with pytest.raises(NotFound) as nf:
        queue.get("0" * 32, ANNA, "department")
    assert nf.value.code == "review_not_found"


def test_list_filters_and_ages(queue: ReviewQueue, clock: Clock) -> None:
    a = held(queue, "r1")
    clock.advance(10)
    b = held(queue, "r2", usecase="other")
    clock.advance(10)
    c = held(queue, "r3")
    queue.approve(c, ANNA, "department")
    clock.advance(10)
    out = queue.list(ANNA, "department", ReviewFilter())
    assert [i["id"] for i in out["data"]] == [a, b] and out["total"] == 2
    assert [i["age_s"] for i in out["data"]] == [30.0, 20.0]
    assert out["oldest_pending_age_s"] == 30.0
    assert [
        i["id"] for i in queue.list(ANNA, "department", ReviewFilter(statuses=("approved",)))["data"]
    ] == [c]
    assert [i["id"] for i in queue.list(ANNA, "department", ReviewFilter(usecase_id="other"))["data"]] == [b]
    queue.approve(a, ANNA, "department")
    queue.reject(b, ANNA, "department", note="no")
    out = queue.list(ANNA, "department", ReviewFilter())
    assert out["data"] == [] and out["oldest_pending_age_s"] is None


def test_holding_a_run_twice_is_a_conflict(queue: ReviewQueue) -> None:
    held(queue, "run1")
    with pytest.raises(Conflict) as exc:
        held(queue, "run1")
    assert exc.value.code == "review_exists"
    with pytest.raises(ValueError):
        queue.hold(Hold("run2", None, None, "hr", "carl", None, None, ["always"], draft={"citations": []}))


def test_racing_reviewers_one_claim_wins(queue: ReviewQueue, engine: Engine) -> None:
    rid = held(queue, "run1")
    people = [reviewer(f"r{i}@hr") for i in range(6)]
    wins: list[str] = []
    conflicts: list[str] = []
    barrier = threading.Barrier(len(people))

    def go(p: Principal) -> None:
        barrier.wait()
        try:
            queue.claim(rid, p, "department")
            wins.append(p.name)
        except Conflict as exc:
            conflicts.append(exc.code)

    threads = [threading.Thread(target=go, args=(p,)) for p in people]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(wins) == 1 and len(conflicts) == len(people) - 1, (wins, conflicts)
    assert set(conflicts) <= {"review_claimed", "review_changed"}
    item = queue.for_run("run1")
    assert item is not None and item["claimed_by"] == wins[0]
    assert [a for _, a, _ in audit(engine)] == ["review.claim"]
    assert trail.verify(engine).ok
