"""A use case's answer streamed as the model writes it (``usecase:<id>``, ``stream: true``) on a real
server, and the runs that must not stream (output checks, review, JSON) keeping their whole answer."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.harness import Gateway, run_gateway
from tests.upstream.fixtures import UpstreamServer
from tests.usecases.test_usecase_runs import CLAUSE_SCHEMA, HR_DOCS, _config, _post_spec, _write

URL = "/v1/chat/completions"
QUESTION = "How many weeks of parental leave do birth parents get?"


@pytest.fixture
def sgw(upstream: UpstreamServer, tmp_path: Path) -> Iterator[Gateway]:
    _write(tmp_path / "hr", HR_DOCS)
    _write(tmp_path / "usecases", {})
    with run_gateway(_config(upstream, tmp_path, f"sqlite:///{tmp_path}/stream.db"), tmp_path) as gw:
        gw.runtime.knowledge.sync("hr-policies")
        yield gw


def _spec(usecase_id: str, **extra: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "id": usecase_id,
        "title": f"Use case {usecase_id}",
        "departments": ["hr"],
        "risk_tier": "low",
        "inputs": {"question": {"type": "string", "required": True, "max_length": 2000}},
        "prompt": "{{ question }}",
        "model": "chat-small",
    }
    spec.update(extra)
    return spec


def _body(usecase_id: str, question: str = QUESTION, **kw: Any) -> dict[str, Any]:
    return {
        "model": f"usecase:{usecase_id}",
        "messages": [{"role": "user", "content": question}],
        "stream": True,
        **kw,
    }


class Received:
    """What a streaming client got: the SSE payloads, and the upstream's counters when the first
    piece of text arrived."""

    def __init__(self) -> None:
        self.events: list[Any] = []
        self.upstream_at_first_text: dict[str, int] | None = None
        self.response: httpx.Response | None = None

    @property
    def chunks(self) -> list[dict[str, Any]]:
        return [e for e in self.events if isinstance(e, dict) and "choices" in e]

    @property
    def pieces(self) -> list[str]:
        return [
            c["choices"][0]["delta"]["content"]
            for c in self.chunks
            if c["choices"] and c["choices"][0]["delta"].get("content")
        ]

    @property
    def text(self) -> str:
        return "".join(self.pieces)

    @property
    def errors(self) -> list[dict[str, Any]]:
        return [e["error"] for e in self.events if isinstance(e, dict) and "error" in e]

    @property
    def extension(self) -> dict[str, Any]:
        found = [c["aerodrome"] for c in self.chunks if "aerodrome" in c]
        assert len(found) == 1, self.events
        return dict(found[0])


def _stream(gw: Gateway, upstream: UpstreamServer, body: dict[str, Any]) -> Received:
    got = Received()
    with gw.client(gw.make_key("hr", "user"), timeout=20) as c, c.stream("POST", URL, json=body) as r:
        got.response = r
        if r.status_code != 200:
            r.read()
            return got
        for line in r.iter_lines():
            if not line.startswith("data:"):
                continue
            payload = line[5:].strip()
            event = payload if payload == "[DONE]" else orjson.loads(payload)
            got.events.append(event)
            if got.upstream_at_first_text is None and got.pieces:
                got.upstream_at_first_text = upstream.stats()
    return got


def _run_record(gw: Gateway, run_id: str) -> dict[str, Any]:
    found = [r for r in gw.runs() if r["id"] == run_id]
    assert len(found) == 1, found
    return found[0]


def test_a_streamable_use_case_sends_text_before_the_upstream_has_finished(
    sgw: Gateway, upstream: UpstreamServer
) -> None:
    _post_spec(
        sgw,
        _spec(
            "streamer",
            prompt="{{ context }}\nQuestion: {{ question }}",
            retrieval={"collections": ["hr-policies"], "top_k": 1, "mode": "lexical"},
        ),
    )
    upstream.fault(slow_stream_s=0.05)
    got = _stream(sgw, upstream, _body("streamer", stream_options={"include_usage": True}))
    assert got.response is not None and got.response.status_code == 200
    # the first piece of text reached the client while the upstream was still writing the answer
    assert got.upstream_at_first_text is not None
    assert got.upstream_at_first_text["streams_started"] == 1
    assert got.upstream_at_first_text["streams_completed"] == 0
    assert len(got.pieces) > 10  # token by token, not one finished block
    assert got.text.startswith("Echo: [1]") and "16 weeks" in got.text and got.text.endswith(QUESTION)
    ext = got.extension  # citations, computed from the whole text, with the last chunk
    assert ext["status"] == "ok" and ext["review_status"] is None
    assert [c["marker"] for c in ext["citations"]] == ["[1]"]
    assert ext["citations"][0]["document_id"].endswith("leave.md")
    assert got.chunks[-1]["choices"] == [] and got.chunks[-1]["usage"]["completion_tokens"] > 10
    assert got.events[-1] == "[DONE]"
    sent = upstream.requests(URL)[-1]["body"]
    assert sent["stream"] is True and sent["stream_options"]["include_usage"] is True
    run = _run_record(sgw, ext["run_id"])
    assert run["status"] == "ok" and run["stream"] is True and run["use_case_id"] == "streamer"
    assert run["tokens_estimated"] is False
    assert run["completion_tokens"] == got.chunks[-1]["usage"]["completion_tokens"]
    assert run["output"] == {"text": got.text}  # hr keeps content (full)
    assert run["meta"]["usecase"]["stream"] == {"streamed": True, "why_not": None}
    assert run["meta"]["usecase"]["citations"][0]["marker"] == "[1]"


def test_pseudonyms_split_over_chunks_are_restored_in_the_stream(
    sgw: Gateway, upstream: UpstreamServer
) -> None:
    _post_spec(sgw, _spec("private", guardrails={"pii": {"action": "pseudonymise"}}))
    upstream.fault(piece_chars=3)  # "<EMAIL_ADDRESS_1>" comes back in six pieces
    question = "Write to jane.doe@example.com and to bob@example.org about the renewal."
    got = _stream(sgw, upstream, _body("private", question))
    sent = upstream.requests(URL)[-1]["body"]["messages"][-1]["content"]
    assert "<EMAIL_ADDRESS_1>" in sent and "<EMAIL_ADDRESS_2>" in sent and "jane.doe" not in sent
    assert got.text == "Echo: " + question
    assert not any("EMAIL" in p or "<" in p for p in got.pieces)
    assert len(got.pieces) > 5
    run = _run_record(sgw, got.extension["run_id"])
    assert run["output"] == {"text": "Echo: " + question}
    assert run["meta"]["usecase"]["stream"]["streamed"] is True


def test_an_upstream_failure_mid_stream_keeps_the_text_and_records_one_error_run(
    sgw: Gateway, upstream: UpstreamServer
) -> None:
    # a fallback answer is only for failures before any text was shown
    _post_spec(sgw, _spec("fragile", fallback={"on_upstream_error": "The assistant is unavailable."}))
    upstream.fault(reset_after=4)  # the role chunk, three words, then the connection drops
    got = _stream(sgw, upstream, _body("fragile", "one two three four five six seven"))
    assert got.response is not None and got.response.status_code == 200
    assert got.text == "Echo: one two"
    assert len(got.errors) == 1 and got.errors[0]["code"] in ("truncated_stream", "upstream_connection")
    assert got.events[-1] == "[DONE]" and isinstance(got.events[-2], dict) and "error" in got.events[-2]
    assert len(upstream.requests(URL)) == 1  # never retried once text was shown
    run = _run_record(sgw, got.response.headers["x-aerodrome-run-id"])
    assert run["status"] == "error" and run["error_code"] == got.errors[0]["code"]
    assert run["output"] == {"text": "Echo: one two"}
    assert run["prompt_tokens"] > 0 and run["completion_tokens"] > 0
    assert run["tokens_estimated"] is True  # the usage chunk never came
    assert len([r for r in sgw.runs() if r["use_case_id"] == "fragile"]) == 1


def test_an_upstream_failure_before_any_text_answers_with_the_fallback_or_the_error(
    sgw: Gateway, upstream: UpstreamServer
) -> None:
    _post_spec(sgw, _spec("resilient", fallback={"on_upstream_error": "The assistant is unavailable."}))
    _post_spec(sgw, _spec("plain"))
    upstream.fault(reset_after=1)  # the role chunk only: no text yet
    got = _stream(sgw, upstream, _body("resilient"))
    assert got.text == "The assistant is unavailable." and got.errors == []
    assert got.extension["status"] == "fallback" and got.extension["fallback_reason"] == "upstream_error"
    upstream.fault(status=500, times=4)
    failed = _stream(sgw, upstream, _body("plain"))
    assert failed.response is not None and failed.response.status_code == 502
    assert failed.response.json()["error"]["code"].startswith("upstream")
    run = _run_record(sgw, failed.response.headers["x-aerodrome-run-id"])
    assert run["status"] == "error" and run["use_case_id"] == "plain"
    fallback_run = _run_record(sgw, got.extension["run_id"])
    assert fallback_run["status"] == "fallback"


def test_a_client_that_leaves_mid_stream_closes_the_upstream_and_is_recorded_once(
    sgw: Gateway, upstream: UpstreamServer
) -> None:
    _post_spec(sgw, _spec("slow"))
    upstream.fault(slow_stream_s=0.3)
    body = _body("slow", "one two three four five six seven eight nine ten")
    with sgw.client(sgw.make_key("hr", "user")) as c, c.stream("POST", URL, json=body) as r:
        assert r.status_code == 200
        run_id = r.headers["x-aerodrome-run-id"]
        for line in r.iter_lines():
            if '"content":"Echo:"' in line:
                break
    assert upstream.wait_for(lambda s: s["streams_cancelled"] >= 1, timeout=5), upstream.stats()
    assert upstream.stats()["streams_completed"] == 0
    deadline = time.monotonic() + 5
    runs: list[dict[str, Any]] = []
    while time.monotonic() < deadline and not runs:
        runs = [r for r in sgw.runs() if r["id"] == run_id]
        time.sleep(0.05)
    assert len(runs) == 1 and runs[0]["status"] == "client_disconnected", runs
    assert runs[0]["http_status"] == 499 and runs[0]["stream"] is True
    time.sleep(0.3)
    assert len([r for r in sgw.runs() if r["id"] == run_id]) == 1


@pytest.mark.parametrize(
    ("spec", "why_not"),
    [
        (_spec("held", review={"when": ["always"]}), "review:always"),
        (_spec("sampled", review={"sample_rate": 1.0}), "review:sample"),
        (_spec("checked", guardrails={"output": {"banned_terms": ["guarantee"]}}), "output_checks"),
        (
            _spec(
                "extractor",
                prompt="Extract as JSON.\n{{ question }}",
                output={"format": "json", "schema": CLAUSE_SCHEMA},
            ),
            "json_output",
        ),
    ],
    ids=["review-always", "review-sample", "output-guardrail", "json"],
)
def test_use_cases_that_need_the_whole_answer_keep_todays_answer(
    sgw: Gateway, upstream: UpstreamServer, spec: dict[str, Any], why_not: str
) -> None:
    _post_spec(sgw, spec)
    if why_not == "json_output":
        upstream.fault(reply='{"party": "Acme", "notice_days": 30}')
    got = _stream(sgw, upstream, _body(spec["id"], "Acme ends this with 30 days notice."))
    sent = upstream.requests(URL)[-1]["body"]
    assert "stream" not in sent  # the whole answer was asked for, and checked, before anything was sent
    ext = got.extension
    run = _run_record(sgw, ext["run_id"])
    assert run["meta"]["usecase"]["stream"] == {"streamed": False, "why_not": why_not}
    assert run["stream"] is False and run["status"] == "ok"
    if why_not.startswith("review:"):
        assert ext["review_status"] == "pending" and "being reviewed" in got.text
        assert "Echo" not in got.text
    elif why_not == "json_output":
        assert orjson.loads(got.text) == {"party": "Acme", "notice_days": 30}
    else:
        assert got.text == "Echo: Acme ends this with 30 days notice." and ext["review_status"] is None
    assert got.events[-1] == "[DONE]"


def test_the_local_engine_streams_a_knowledge_answer_through_the_same_path(
    sgw: Gateway, upstream: UpstreamServer
) -> None:
    _post_spec(
        sgw,
        _spec(
            "local-kb",
            model="chat-local",
            prompt="Answer from the excerpts.\n{{ context }}\nQuestion: {{ question }}",
            retrieval={"collections": ["hr-policies"], "top_k": 3, "mode": "lexical"},
        ),
    )
    got = _stream(sgw, upstream, _body("local-kb", stream_options={"include_usage": True}))
    assert "16 weeks" in got.text and len(got.pieces) > 1
    ext = got.extension
    assert any(c["document_id"].endswith("leave.md") for c in ext["citations"])
    run = _run_record(sgw, ext["run_id"])
    assert run["deployment"] == "local-extractive" and run["stream"] is True
    assert run["meta"]["usecase"]["stream"]["streamed"] is True
    assert run["completion_tokens"] > 0 and run["output"] == {"text": got.text}


def test_a_client_that_leaves_before_any_text_is_recorded_once(
    sgw: Gateway, upstream: UpstreamServer
) -> None:
    _post_spec(sgw, _spec("waiting"))
    upstream.fault(delay_s=1.5)  # the upstream takes its time before the first byte
    with sgw.client(sgw.make_key("hr", "user"), timeout=0.4) as c, pytest.raises(httpx.ReadTimeout):
        c.post(URL, json=_body("waiting"))
    deadline = time.monotonic() + 5
    runs: list[dict[str, Any]] = []
    while time.monotonic() < deadline and not runs:
        runs = [r for r in sgw.runs() if r["use_case_id"] == "waiting"]
        time.sleep(0.05)
    assert len(runs) == 1 and runs[0]["status"] == "client_disconnected", runs
    assert runs[0]["http_status"] == 499
    time.sleep(1.5)  # the upstream would have answered by now: still one record
    assert len([r for r in sgw.runs() if r["use_case_id"] == "waiting"]) == 1


def test_output_checks_flag_a_streamed_answer_once_it_is_complete(
    sgw: Gateway, upstream: UpstreamServer
) -> None:
    """``output.stream`` opts a use case with output checks into streaming: the answer shows as it
    is written; the checks read the whole answer at the end and flag it (never hold or replace it)."""
    _post_spec(
        sgw,
        _spec(
            "checked-stream",
            guardrails={"output": {"banned_terms": ["guarantee"], "on_violation": "flag"}},
            output={"stream": True},
            review={"when": ["flagged"]},  # output flags come after the answer was shown: no hold
        ),
    )
    upstream.fault(slow_stream_s=0.02)
    got = _stream(sgw, upstream, _body("checked-stream", "We guarantee delivery on Monday."))
    assert got.upstream_at_first_text is not None
    assert got.upstream_at_first_text["streams_completed"] == 0, "text came before the upstream finished"
    assert got.text == "Echo: We guarantee delivery on Monday."
    ext = got.extension
    assert ext["review_status"] is None and "flagged:output" in ext["flags"]
    run = _run_record(sgw, ext["run_id"])
    assert run["meta"]["usecase"]["stream"] == {"streamed": True, "why_not": None}
    output_checks = [g for g in run["meta"]["usecase"]["guardrails"] if g.get("stage") == "output"]
    assert output_checks and output_checks[0]["findings"][0]["type"] == "banned_term"
    clean = _stream(sgw, upstream, _body("checked-stream", "Delivery is on Monday."))
    assert "flagged:output" not in clean.extension["flags"]


def test_a_streamed_use_case_cannot_block_or_replace_what_it_showed(sgw: Gateway) -> None:
    with sgw.client(sgw.admin_key) as c:
        r = c.post(
            "/api/usecases",
            json={
                "spec": _spec(
                    "bad-stream",
                    guardrails={"output": {"banned_terms": ["x"], "on_violation": "fallback"}},
                    output={"stream": True},
                )
            },
        )
        assert r.status_code == 422 and "on_violation: flag" in r.text, r.text
        r = c.post(
            "/api/usecases",
            json={
                "spec": _spec(
                    "json-stream", output={"format": "json", "schema": CLAUSE_SCHEMA, "stream": True}
                )
            },
        )
        assert r.status_code == 422 and "output.stream needs format: text" in r.text, r.text
        r = c.post(  # redacting or blocking needs the whole answer before anything is shown
            "/api/usecases",
            json={
                "spec": _spec(
                    "redacting-stream",
                    guardrails={"output": {"pii": {"action": "redact"}}},
                    output={"stream": True},
                )
            },
        )
        assert r.status_code == 422 and "guardrails.output.pii.action: flag" in r.text, r.text
