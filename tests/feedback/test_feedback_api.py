"""POST /v1/feedback and GET /api/feedback/export on real servers, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import select

from aerodrome.storage.tables import feedback
from tests.gateway.helpers import assert_error
from tests.harness import Gateway
from tests.review.helpers import actor, chat, gw, hold  # noqa: F401


def give(gw: Gateway, key: str, body: dict[str, Any]) -> Any:  # noqa: F811
    with gw.client(key) as c:
        return c.post("/v1/feedback", json=body)


def rows(gw: Gateway) -> list[dict[str, Any]]:  # noqa: F811
    with gw.runtime.engine.connect() as conn:
        return [dict(r) for r in conn.execute(select(feedback).order_by(feedback.c.created_at)).mappings()]


def test_the_caller_rates_flags_and_corrects(gw: Gateway) -> None:  # noqa: F811
    key = gw.make_key("hr", "user", name="carl")
    run_id = chat(gw, key)
    r = give(gw, key, {"run_id": run_id, "rating": "up"})
    assert r.status_code == 201, r.text
    assert r.json()["run_id"] == run_id and len(r.json()["id"]) == 32
    for rating in (1, 4, 5, "down", "3"):
        assert give(gw, key, {"run_id": run_id, "rating": rating}).status_code == 201
    r = give(
        gw,
        key,
        {
            "run_id": run_id,
            "flags": ["wrong", "hallucination", "wrong"],
            "correction": "The policy gives 30 days.",
            "comment": "outdated",
        },
    )
    assert r.status_code == 201, r.text
    stored = rows(gw)
    assert [(f["rating"], f["score"]) for f in stored] == [
        ("up", 1.0),
        ("1", 0.0),
        ("4", 0.75),
        ("5", 1.0),
        ("down", 0.0),
        ("3", 0.5),
        (None, None),
    ]
    last = stored[-1]
    assert last["flags"] == ["wrong", "hallucination"] and last["correction"] == "The policy gives 30 days."
    assert last["author_role"] == "caller" and last["author"] == actor("carl", key)
    assert last["department_id"] == "hr" and last["comment"] == "outdated"


def test_each_bad_field_is_named(gw: Gateway) -> None:  # noqa: F811
    key = gw.make_key("hr", "user", name="carl")
    run_id = chat(gw, key)
    cases: list[tuple[dict[str, Any], str | None, str | None]] = [
        ({"rating": "up"}, "run_id", None),
        ({"run_id": "", "rating": "up"}, "run_id", None),
        ({"run_id": 12, "rating": "up"}, "run_id", None),
        ({"run_id": "x" * 33, "rating": "up"}, "run_id", None),
        ({"run_id": run_id, "rating": "meh"}, "rating", "invalid_value"),
        ({"run_id": run_id, "rating": 0}, "rating", "invalid_value"),
        ({"run_id": run_id, "rating": 6}, "rating", "invalid_value"),
        ({"run_id": run_id, "rating": 3.5}, "rating", "invalid_value"),
        ({"run_id": run_id, "rating": True}, "rating", "invalid_value"),
        ({"run_id": run_id, "flags": "wrong"}, "flags", "invalid_type"),
        ({"run_id": run_id, "flags": ["wrong", "boring"]}, "flags[1]", "invalid_value"),
        ({"run_id": run_id, "flags": [1]}, "flags[0]", "invalid_value"),
        ({"run_id": run_id, "correction": 5}, "correction", "invalid_type"),
        ({"run_id": run_id, "correction": "x" * 20001}, "correction", "invalid_value"),
        ({"run_id": run_id, "comment": ["a"]}, "comment", "invalid_type"),
        ({"run_id": run_id, "comment": "x" * 4001}, "comment", "invalid_value"),
        ({"run_id": run_id, "rating": "up", "stars": 5}, "stars", None),
        ({"run_id": run_id}, None, "empty_feedback"),
        ({"run_id": run_id, "flags": [], "comment": "  "}, None, "empty_feedback"),
    ]
    for body, param, code in cases:
        err = assert_error(give(gw, key, body), 400, code)
        assert err["param"] == param, (body, err)
    with gw.client(key) as c:
        assert_error(
            c.post("/v1/feedback", content=b"not json", headers={"content-type": "application/json"}), 400
        )
    assert rows(gw) == []


def test_who_may_give_feedback(gw: Gateway) -> None:  # noqa: F811
    carl = gw.make_key("hr", "user", name="carl")
    dora = gw.make_key("hr", "user", name="dora")
    hr_reviewer = gw.make_key("hr", "reviewer", name="anna")
    fin_reviewer = gw.make_key("finance", "reviewer", name="fay")
    run_id = chat(gw, carl)
    assert_error(give(gw, carl, {"run_id": "0" * 32, "rating": "up"}), 404, "run_not_found")
    assert_error(give(gw, dora, {"run_id": run_id, "rating": "down"}), 403, "permission_denied")
    assert_error(give(gw, fin_reviewer, {"run_id": run_id, "flags": ["wrong"]}), 403, "permission_denied")
    r = give(gw, hr_reviewer, {"run_id": run_id, "flags": ["off_policy"], "comment": "not our tone"})
    assert r.status_code == 201, r.text
    r = give(gw, gw.admin_key, {"run_id": run_id, "rating": 2})
    assert r.status_code == 201, r.text
    assert [(f["author_role"], f["author"]) for f in rows(gw)] == [
        ("reviewer", actor("anna", hr_reviewer)),
        ("reviewer", "admin@example.com"),  # a key acting for a user: the email
    ]


def export(gw: Gateway, key: str, **params: Any) -> list[dict[str, Any]]:  # noqa: F811
    with gw.client(key) as c:
        r = c.get("/api/feedback/export", params=params)
        assert r.status_code == 200, r.text
        assert r.headers["content-type"].startswith("application/x-ndjson")
        assert r.text == "" or r.text.endswith("\n")
        return [orjson.loads(line) for line in r.text.splitlines()]


def test_export_joins_runs_and_reviews(gw: Gateway) -> None:  # noqa: F811
    carl = gw.make_key("hr", "user", name="carl")
    fin_user = gw.make_key("finance", "user", name="finn")
    anna = gw.make_key("hr", "reviewer", name="anna")
    builder = gw.make_key("hr", "builder", name="bea")
    fin_reviewer = gw.make_key("finance", "reviewer", name="fay")

    plain = chat(gw, carl, "how many days of leave?")
    held = chat(gw, carl, "can I carry leave over?")
    fin_run = chat(gw, fin_user, "what is our travel budget?")
    rid = hold(gw, held, output="Yes, 5 days [1]", usecase_id="hr-policy", spec_version=3)
    with gw.client(anna) as c:
        r = c.post(f"/api/reviews/{rid}/edit", json={"output": "Yes, up to 10 days [1]", "note": "2026 rule"})
        assert r.status_code == 200, r.text
    assert give(gw, carl, {"run_id": plain, "rating": 5, "comment": "spot on"}).status_code == 201
    assert give(gw, carl, {"run_id": held, "rating": "up"}).status_code == 201
    assert (
        give(
            gw, fin_user, {"run_id": fin_run, "flags": ["wrong"], "correction": "It is 2000 EUR"}
        ).status_code
        == 201
    )

    with gw.client(carl) as c:  # users have no feedback.read
        assert_error(c.get("/api/feedback/export"), 403, "permission_denied")

    lines = export(gw, builder)
    assert [(x["run_id"], x["author_role"]) for x in lines] == [
        (held, "reviewer"),  # the reviewer's edit, kept as a correction
        (plain, "caller"),
        (held, "caller"),
    ]
    edit, rated, liked = lines
    assert set(edit) == {
        "feedback_id", "created_at", "run_id", "usecase_id", "spec_version", "department_id", "author",
        "author_role", "rating", "score", "flags", "correction", "comment", "run", "input", "output",
        "review", "preferred_output", "preferred_source",
    }  # fmt: skip
    assert edit["correction"] == "Yes, up to 10 days [1]" and edit["comment"] == "2026 rule"
    assert edit["usecase_id"] == "hr-policy" and edit["spec_version"] == 3
    assert edit["review"]["status"] == "edited" and edit["review"]["decided_by"] == actor("anna", anna)
    assert edit["review"]["draft_output"] == "Yes, 5 days [1]"
    assert edit["review"]["final"] == "Yes, up to 10 days [1]" and edit["review"]["reasons"] == ["always"]
    assert (
        edit["preferred_output"] == "Yes, up to 10 days [1]" and edit["preferred_source"] == "review_edited"
    )
    # hr logs content in full: the stored input and output come along
    assert rated["input"]["messages"] == [{"role": "user", "content": "how many days of leave?"}]
    assert isinstance(rated["output"], str) and rated["output"]
    assert rated["run"]["model"] == "chat-small" and rated["run"]["deployment"] == "mock-a"
    assert rated["score"] == 1.0 and rated["rating"] == "5" and rated["review"] is None
    assert rated["preferred_source"] == "rated_up" and rated["preferred_output"] == rated["output"]
    assert liked["review"]["id"] == rid and liked["preferred_source"] == "review_edited"

    assert [x["run_id"] for x in export(gw, anna, usecase_id="hr-policy")] == [held, held]
    assert export(gw, anna, usecase_id="nothing") == []
    assert export(gw, anna, since="2100-01-01T00:00:00Z") == []
    assert export(gw, anna, until="2000-01-01T00:00:00Z") == []
    assert len(export(gw, anna, since=lines[1]["created_at"])) == 2

    # finance logs no content: its line carries the feedback, not the run's input or output
    (fin,) = export(gw, fin_reviewer)
    assert fin["run_id"] == fin_run and fin["correction"] == "It is 2000 EUR"
    assert fin["input"] is None and fin["output"] is None and fin["run"]["status"] == "ok"
    assert fin["preferred_source"] == "correction"
    assert [x["department_id"] for x in export(gw, gw.admin_key)] == ["hr", "hr", "hr", "finance"]
    assert [x["department_id"] for x in export(gw, gw.admin_key, department="finance")] == ["finance"]
