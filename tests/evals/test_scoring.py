"""Each built-in assertion on the outputs it judges, and the paired comparison's interval."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from aerodrome.evals.comparison import compare, paired_difference
from aerodrome.evals.scoring import Observation, Score, assertion_registry

PASSAGES = [
    {"text": "Birth parents receive 16 weeks of parental leave at full pay."},
    {"text": "Employees receive 10 days of paid sick leave per year."},
]


class FakeTools:
    """Embeddings by word counts; the judge answers what the test scripted."""

    def __init__(self, reply: str = "") -> None:
        self.reply = reply
        self.asked: list[list[dict[str, Any]]] = []

    async def embed(self, texts: list[str]) -> list[list[float]]:
        vocab = sorted({w for t in texts for w in t.lower().split()})
        return [[float(t.lower().split().count(w)) for w in vocab] for t in texts]

    async def complete(self, alias: str | None, messages: list[dict[str, Any]]) -> str:
        self.asked.append(messages)
        return self.reply


def score(kind: str, params: dict[str, Any], obs: Observation, tools: Any = None) -> Score:
    assertion = assertion_registry().get(kind)(params)
    return asyncio.run(assertion.score(obs, tools or FakeTools()))


def obs(output: Any, **kw: Any) -> Observation:
    return Observation(case_id="c", inputs={"question": "q"}, reference=kw.pop("reference", None),
                       status=kw.pop("status", "ok"), output=output, **kw)  # fmt: skip


def test_text_assertions() -> None:
    answer = obs("Birth parents receive 16 weeks [1].")
    assert score("contains", {"value": "16 WEEKS"}, answer).passed
    assert not score("contains", {"value": ["16 weeks", "half pay"]}, answer).passed
    assert score("contains", {"value": ["16 weeks", "half pay"]}, answer).detail == "missing ['half pay']"
    assert not score("contains", {"value": "16 WEEKS", "case_sensitive": True}, answer).passed
    assert score("not_contains", {"value": "guarantee"}, answer).passed
    assert score("not_contains", {"value": ["weeks"]}, answer).detail == "found ['weeks']"
    assert score("regex", {"pattern": r"\b16 weeks\b"}, answer).passed
    assert not score("regex", {"pattern": r"^16"}, answer).passed
    assert score(
        "exact", {"value": " birth parents receive 16 weeks [1]. ", "case_sensitive": False}, answer
    ).passed
    assert not score("exact", {"value": "16 weeks"}, answer).passed
    assert score("numeric", {"value": 16}, answer).passed
    assert score("numeric", {"value": 15, "tolerance": 1}, answer).passed
    failed = score("numeric", {"value": 20, "relative": 0.1}, answer)
    assert not failed.passed and failed.detail == "16 is not within 2 of 20" and failed.score == 16.0
    assert score("numeric", {"value": 1}, obs("none at all")).detail == "no number in the output"
    errored = obs(None, status="error", error_code="upstream_error")
    assert score("contains", {"value": "x"}, errored).detail == "no output (upstream_error)"


def test_json_assertions_with_paths() -> None:
    out = obs({"parties": ["Acme Corp", "Globex Ltd"], "notice_days": 30, "law": "England"})
    assert score("exact", {"path": "parties", "value": ["Acme Corp", "Globex Ltd"]}, out).passed
    assert score("exact", {"path": "parties.1", "value": "Globex Ltd"}, out).passed
    assert score("numeric", {"path": "notice_days", "value": 30}, out).passed
    assert score("contains", {"path": "law", "value": "england"}, out).passed
    assert score("exact", {"path": "term", "value": 1}, out).detail == "the output has no 'term'"
    schema = {
        "type": "object",
        "required": ["parties", "term"],
        "properties": {"notice_days": {"type": "string"}},
    }
    failed = score("json_schema", {"schema": schema}, out)
    assert not failed.passed and failed.detail == "(root): 'term' is a required property"
    with pytest.raises(ValueError, match="schema"):
        assertion_registry().get("json_schema")({"schema": {"type": "nonsense"}})


def test_status_citations_and_refusals() -> None:
    cited = obs("x [1]", citations=[{"document_id": "leave.md"}, {"document_id": "sick.md"}])
    assert (
        score("cites", {}, cited).passed and score("cites", {"min": 2, "document": "sick.md"}, cited).passed
    )
    assert (
        score("cites", {"document": "pay.md"}, cited).detail
        == "does not cite 'pay.md' (cites ['leave.md', 'sick.md'])"
    )
    assert score("cites", {}, obs("x")).detail == "0 citation(s), need 1"
    fallback = obs("I can't find this.", status="fallback", fallback_reason="low_retrieval")
    assert (
        score("refuses", {}, fallback).passed
        and score("refuses", {"reason": "low_retrieval"}, fallback).passed
    )
    assert not score("refuses", {"reason": "schema"}, fallback).passed
    assert score("refuses", {}, obs(None, status="error", error_code="guardrail_blocked")).passed
    assert score("refuses", {}, obs("I could not find this in the provided context.")).passed
    assert (
        score("refuses", {}, obs("Parental leave is 16 weeks.")).detail
        == "answered instead of refusing (status ok)"
    )
    assert score("status", {"value": ["ok", "fallback"]}, fallback).passed
    assert score("status", {"value": "ok"}, fallback).detail == "status fallback, expected ok"


def test_semantic_similarity_and_groundedness() -> None:
    tools = FakeTools()
    answer = obs("parental leave is 16 weeks [1]", reference="parental leave is 16 weeks at full pay")
    close = score("similar", {"min": 0.7}, answer, tools)
    assert close.passed and close.score is not None and 0.7 < close.score < 1
    assert not score("similar", {"value": "sick days per year", "min": 0.5}, answer, tools).passed
    assert score("similar", {}, obs("x")).detail.startswith("no reference")
    grounded = obs(
        "Birth parents get 16 weeks of parental leave [1]. Sick leave is 10 days a year [2].",
        passages=PASSAGES,
    )
    assert score("grounded", {}, grounded) == Score(True, "2 of 2 sentences supported", 1.0)
    made_up = obs(
        "Birth parents get 16 weeks of parental leave [1]. Pets may come to the office on Fridays.",
        passages=PASSAGES,
    )
    result = score("grounded", {}, made_up)
    assert not result.passed and result.score == 0.5
    assert (
        result.detail == "1 of 2 sentences supported; unsupported: 'Pets may come to the office on Fridays.'"
    )
    assert (
        score("grounded", {}, obs("Leave is 16 weeks.")).detail
        == "nothing was retrieved to ground the answer in"
    )
    assert score("grounded", {}, obs("Ask HR.", status="fallback")).passed


def test_llm_judge_parses_its_verdict() -> None:
    tools = FakeTools('Here you go: {"score": 0.8, "reason": "cites the policy"}')
    answer = obs("16 weeks [1]", reference="16 weeks")
    verdict = score("judge", {"rubric": "Cites the policy.", "min": 0.75}, answer, tools)
    assert verdict == Score(True, "judge 0.80 ≥ 0.75: cites the policy", 0.8)
    user = tools.asked[0][1]["content"]
    assert user.startswith("RUBRIC:\nCites the policy.") and "REFERENCE ANSWER:\n16 weeks" in user
    for reply in ("no idea", '{"score": 7}', '{"score": "high"}', '{"verdict": true}'):
        assert not score("judge", {"rubric": "r"}, answer, FakeTools(reply)).passed


def _run(run_id: str, passed: dict[str, bool]) -> dict[str, Any]:
    return {
        "id": run_id,
        "suite_hash": "h",
        "spec_version": 1,
        "results": [
            {
                "case_id": c,
                "passed": ok,
                "source": "curated",
                "assertions": [{"type": "contains", "passed": ok}],
            }
            for c, ok in passed.items()
        ],
    }


def test_paired_difference_interval() -> None:
    same = paired_difference(20, 0, 0, 0)
    assert same.estimate == 0 and same.low < 0 < same.high
    worse = paired_difference(10, 10, 0, 0)
    assert worse.estimate == -0.5 and -1 <= worse.low < -0.5 < worse.high < 0
    # discordant pairs in both directions make a wider interval than one-sided ones of the same net change
    mixed = paired_difference(5, 8, 3, 4)
    assert mixed.estimate == pytest.approx(-0.25) and mixed.low < -0.25 < mixed.high
    assert paired_difference(0, 0, 0, 0).estimate is None


def test_compare_lists_regressed_fixed_and_unpaired_cases() -> None:
    base = _run("A", {"a": True, "b": True, "c": False, "d": True})
    cand = _run("B", {"a": True, "b": False, "c": True, "e": True})
    comp = compare(base, cand)
    assert [r["case_id"] for r in comp["regressed"]] == ["b"] and comp["fixed"] == ["c"]
    assert comp["only_in_base"] == ["d"] and comp["only_in_candidate"] == ["e"]
    assert comp["paired_cases"] == 3 and comp["difference"]["estimate"] == 0
    assert comp["table"] == {"both": 1, "base_only": 1, "candidate_only": 1, "neither": 0}
