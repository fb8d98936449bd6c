"""The review API and GET /v1/runs/{id} on real servers, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

from aerodrome.audit import trail
from aerodrome.identity.permissions import Scope
from aerodrome.identity.principal import Principal
from tests.gateway.helpers import assert_error
from tests.harness import Gateway
from tests.review.helpers import actor, chat, gw, hold  # noqa: F401

DRAFT = "Draft: 25 days of leave [1]"


def outcome(gw: Gateway, key: str, run_id: str) -> dict[str, Any]:  # noqa: F811
    with gw.client(key) as c:
        r = c.get(f"/v1/runs/{run_id}")
        assert r.status_code == 200, r.text
        return dict(r.json())


def test_held_run_approved_after_a_claim(gw: Gateway) -> None:  # noqa: F811
    caller = gw.make_key("hr", "user", name="carl")
    anna = gw.make_key("hr", "reviewer", name="anna")
    bob = gw.make_key("hr", "reviewer", name="bob")
    run_id = chat(gw, caller)
    rid = hold(gw, run_id, reasons=["flagged:pii", "risk_high"])

    seen = outcome(gw, caller, run_id)
    assert seen["review_status"] == "pending" and seen["review_id"] == rid
    assert seen["output"] is None and seen["citations"] is None  # nothing is released while pending
    assert seen["status"] == "ok" and seen["model"] == "chat-small" and seen["deployment"] == "mock-a"
    assert seen["tokens"]["total"] == seen["tokens"]["prompt"] + seen["tokens"]["completion"] > 0
    assert seen["use_case_id"] == "hr-policy" and seen["spec_version"] == 3

    with gw.client(anna) as c:
        listed = c.get("/api/reviews").json()
        assert [i["id"] for i in listed["data"]] == [rid]
        item = listed["data"][0]
        assert item["status"] == "pending" and item["reasons"] == ["flagged:pii", "risk_high"]
        assert item["draft"]["output"] == DRAFT and item["age_s"] >= 0
        assert listed["oldest_pending_age_s"] >= item["age_s"] - 0.01
        claimed = c.post("/api/reviews/next").json()["item"]
        assert claimed["id"] == rid and claimed["status"] == "claimed"
        assert claimed["claimed_by"] == actor("anna", anna)
        assert c.post("/api/reviews/next").json() == {"item": None}
    with gw.client(bob) as c:
        assert_error(c.post(f"/api/reviews/{rid}/claim"), 409, "review_claimed")
        assert_error(c.post(f"/api/reviews/{rid}/approve"), 409, "review_claimed")
    with gw.client(anna) as c:
        r = c.post(f"/api/reviews/{rid}/approve", json={"note": "checked against the policy"})
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "approved" and r.json()["decided_by"] == actor("anna", anna)
        assert_error(c.post(f"/api/reviews/{rid}/approve"), 409, "review_already_decided")
        assert_error(
            c.post(f"/api/reviews/{rid}/reject", json={"note": "late"}), 409, "review_already_decided"
        )
        assert c.get("/api/reviews").json()["data"] == []
        done = c.get("/api/reviews", params={"status": "approved"}).json()["data"]
        assert [i["id"] for i in done] == [rid]
        assert c.get(f"/api/reviews/{rid}").json()["final"] == DRAFT

    seen = outcome(gw, caller, run_id)
    assert seen["review_status"] == "approved" and seen["output"] == DRAFT
    assert seen["citations"] == [{"id": 1, "document_id": "hr/leave.md"}]
    assert seen["review_note"] == "checked against the policy"

    with gw.client(gw.admin_key) as c:
        events = c.get("/api/audit", params={"object_id": rid}).json()["data"]
        assert [(e["action"], e["actor"]) for e in reversed(events)] == [
            ("review.claim", actor("anna", anna)),
            ("review.approve", actor("anna", anna)),
        ]
        assert events[0]["details"]["run_id"] == run_id
        assert events[0]["details"]["note"] == "checked against the policy"
        assert c.get("/api/audit/verify").json()["ok"] is True
    assert trail.verify(gw.runtime.engine).ok


def test_edit_and_reject_release_or_withhold(gw: Gateway) -> None:  # noqa: F811
    caller = gw.make_key("hr", "user", name="carl")
    anna = gw.make_key("hr", "reviewer", name="anna")
    edited_run, rejected_run = chat(gw, caller), chat(gw, caller, "second question")
    edit_id, reject_id = hold(gw, edited_run), hold(gw, rejected_run)
    with gw.client(anna) as c:
        assert_error(c.post(f"/api/reviews/{edit_id}/edit", json={"note": "x"}), 400, param="output")
        assert_error(c.post(f"/api/reviews/{edit_id}/edit", json={"output": "  "}), 400, param="output")
        assert_error(c.post(f"/api/reviews/{edit_id}/edit", json={"output": {"a": 1}}), 400, param="output")
        assert_error(c.post(f"/api/reviews/{edit_id}/edit", json={"output": "ok", "x": 1}), 400, param="x")
        r = c.post(
            f"/api/reviews/{edit_id}/edit", json={"output": "You get 30 days [1]", "note": "updated in 2026"}
        )
        assert r.status_code == 200 and r.json()["status"] == "edited", r.text
        assert r.json()["final"] == "You get 30 days [1]"

        assert_error(c.post(f"/api/reviews/{reject_id}/reject"), 400)
        assert_error(c.post(f"/api/reviews/{reject_id}/reject", json={}), 400, param="note")
        assert_error(c.post(f"/api/reviews/{reject_id}/reject", json={"note": " "}), 400, param="note")
        r = c.post(f"/api/reviews/{reject_id}/reject", json={"note": "quotes a withdrawn policy"})
        assert r.status_code == 200 and r.json()["status"] == "rejected", r.text

    seen = outcome(gw, caller, edited_run)
    assert seen["review_status"] == "edited" and seen["output"] == "You get 30 days [1]"
    seen = outcome(gw, caller, rejected_run)
    assert seen["review_status"] == "rejected" and seen["output"] is None and seen["citations"] is None
    assert seen["review_note"] == "quotes a withdrawn policy"
    with gw.client(gw.admin_key) as c:
        actions = [e["action"] for e in c.get("/api/audit", params={"action": "review."}).json()["data"]]
        assert sorted(actions) == ["review.edit", "review.reject"]
        assert c.get("/api/audit/verify").json()["ok"] is True


def test_who_may_review(gw: Gateway) -> None:  # noqa: F811
    caller = gw.make_key("hr", "user", name="carl")
    rid = hold(gw, chat(gw, caller))
    fin_reviewer = gw.make_key("finance", "reviewer", name="fay")
    builder = gw.make_key("hr", "builder", name="bea")
    auditor = gw.make_key("platform", "auditor", name="aud")
    with gw.client(caller) as c:  # the user role: no review actions at all
        assert_error(c.get("/api/reviews"), 403, "permission_denied")
        assert_error(c.get(f"/api/reviews/{rid}"), 403, "permission_denied")
        assert_error(c.post(f"/api/reviews/{rid}/approve"), 403, "permission_denied")
        assert_error(c.post(f"/api/reviews/{rid}/edit", json={"output": "mine"}), 403, "permission_denied")
        assert_error(c.post("/api/reviews/next"), 403, "permission_denied")
    with gw.client(fin_reviewer) as c:  # another department's reviewer
        assert c.get("/api/reviews").json()["data"] == []
        assert c.get("/api/reviews", params={"department": "hr"}).json()["data"] == []
        assert c.post("/api/reviews/next").json() == {"item": None}
        assert_error(c.get(f"/api/reviews/{rid}"), 403, "permission_denied")
        assert_error(c.post(f"/api/reviews/{rid}/claim"), 403, "permission_denied")
        assert_error(c.post(f"/api/reviews/{rid}/approve"), 403, "permission_denied")
        assert_error(c.post(f"/api/reviews/{rid}/reject", json={"note": "no"}), 403, "permission_denied")
    with gw.client(builder) as c:  # reads its department's queue, decides nothing
        assert [i["id"] for i in c.get("/api/reviews").json()["data"]] == [rid]
        assert_error(c.post(f"/api/reviews/{rid}/approve"), 403, "permission_denied")
    with gw.client(auditor) as c:
        assert [i["id"] for i in c.get("/api/reviews").json()["data"]] == [rid]
        assert_error(c.post(f"/api/reviews/{rid}/claim"), 403, "permission_denied")
    with gw.client(gw.admin_key) as c:
        assert_error(c.get("/api/reviews/" + "0" * 32), 404, "review_not_found")
        assert_error(c.get("/api/reviews", params={"status": "pending,nope"}), 400, param="status")
        assert (
            c.get("/api/audit", params={"action": "review."}).json()["data"] == []
        )  # refusals change nothing
    still = gw.runtime.reviews.for_run(gw.runtime.reviews.get(rid, *_admin(gw))["run_id"])
    assert still is not None and still["status"] == "pending" and still["decided_by"] is None


def _admin(gw: Gateway) -> tuple[Principal, Scope]:  # noqa: F811
    return Principal(name="root", department_id="platform", roles=frozenset({"platform_admin"})), "all"


def test_run_outcome_for_callers_and_scopes(gw: Gateway) -> None:  # noqa: F811
    carl = gw.make_key("hr", "user", name="carl")
    dora = gw.make_key("hr", "user", name="dora")
    hr_admin = gw.make_key("hr", "department_admin", name="hra")
    fin_reviewer = gw.make_key("finance", "reviewer", name="fay")
    run_id = chat(gw, carl, "tell me about leave")
    seen = outcome(gw, carl, run_id)
    assert seen["review_status"] is None and seen["review_id"] is None
    assert seen["output"] is not None and isinstance(seen["output"], str)  # hr logs content in full
    assert seen["citations"] is None and seen["use_case_id"] is None
    assert set(seen) >= {
        "id",
        "created_at",
        "status",
        "latency_ms",
        "cost_usd",
        "tokens",
        "model",
        "deployment",
    }
    assert outcome(gw, hr_admin, run_id)["id"] == run_id  # runs.read, department scope
    assert outcome(gw, gw.admin_key, run_id)["id"] == run_id
    with gw.client(dora) as c:
        assert_error(c.get(f"/v1/runs/{run_id}"), 403, "permission_denied")
        assert_error(c.get("/v1/runs/" + "f" * 32), 404, "run_not_found")
    with gw.client(fin_reviewer) as c:
        assert_error(c.get(f"/v1/runs/{run_id}"), 403, "permission_denied")
    with gw.client() as c:
        assert c.get(f"/v1/runs/{run_id}").status_code == 401


def test_nobody_reviews_the_output_of_their_own_call(gw: Gateway) -> None:  # noqa: F811
    """Four eyes: a reviewer's own held output goes to another reviewer."""
    rita = gw.make_key("hr", "reviewer", name="rita")
    sam = gw.make_key("hr", "reviewer", name="sam")
    run_id = chat(gw, rita)
    rid = hold(gw, run_id)
    with gw.client(rita) as c:
        for path, body in (("claim", None), ("approve", {}), ("reject", {"note": "not good"})):
            r = c.post(f"/api/reviews/{rid}/{path}", json=body)
            assert_error(r, 403, "review_own_output")
        assert c.post("/api/reviews/next").json()["item"] is None  # her own item is never handed to her
    with gw.client(sam) as c:
        assert c.post("/api/reviews/next").json()["item"]["id"] == rid
        assert c.post(f"/api/reviews/{rid}/approve", json={}).json()["status"] == "approved"
