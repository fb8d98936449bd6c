"""Traffic profiles and drift statistics: what is kept per policy, and the tests' behaviour."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sqlalchemy import select

from aerodrome.monitoring import drift
from aerodrome.monitoring.profiles import Profile
from aerodrome.monitoring.refusals import is_refusal
from aerodrome.storage.tables import drift_profiles
from tests.harness import base_config, run_gateway
from tests.upstream.fixtures import UpstreamServer

SPEC = {
    "id": "ask",
    "title": "Ask",
    "departments": ["hr", "finance"],
    "inputs": {"question": {"type": "string", "required": True}},
    "prompt": "Answer: {{ question }}",
    "model": "chat-small",
}
SECRET = "Quarterly bonus of Jane Roe is 12345 EUR"


def test_profiles_keep_aggregates_only_and_no_embeddings_where_logging_is_off(
    upstream: UpstreamServer, tmp_path: Path
) -> None:
    cfg = base_config(upstream.url, db_url=f"sqlite:///{tmp_path}/p.db")
    cfg["monitoring"] = {"flush_interval_s": 0.1}
    with run_gateway(cfg, tmp_path) as gw:
        with gw.client(gw.admin_key) as c:
            assert c.post("/api/usecases", json={"spec": SPEC}).status_code == 201
        upstream.fault(reply="I'm sorry, but I can't help with that.", times=1)
        for dept in ("hr", "finance"):  # hr logs full content, finance none
            with gw.client(gw.make_key(dept, "user", name=f"u-{dept}"), timeout=60) as c:
                for _ in range(3):
                    r = c.post("/v1/usecases/ask/run", json={"inputs": {"question": SECRET}})
                    assert r.status_code == 200, r.text
        gw.flush()
        assert gw.runtime.profiler is not None and gw.runtime.profiler.wait_idle(120)
        with gw.runtime.engine.connect() as conn:
            rows = {r.department_id: r for r in conn.execute(select(drift_profiles))}
    assert set(rows) == {"hr", "finance"}
    hr, fin = rows["hr"], rows["finance"]
    assert hr.runs == fin.runs == 3 and hr.input_n == fin.input_n == 3
    assert hr.refusals == 1 and fin.refusals == 0  # the first answer was a refusal
    assert (
        hr.embedded == 3 and len(hr.embedding_sum) == 384 and hr.embedding_model == "local:all-MiniLM-L6-v2"
    )
    assert fin.embedded == 0 and fin.embedding_sum is None  # content logging off: lengths only
    for row in rows.values():
        assert "Jane" not in repr(tuple(row))


def _profile(vectors: np.ndarray, lengths: list[int]) -> Profile:
    p = Profile()
    for v, n in zip(vectors, lengths, strict=True):
        p.observe(
            input_text="x" * n, output_text="y" * n, answered=True, refused=False, embedding=v, model="m"
        )
    return p


def _unit(rng: np.random.Generator, centre: np.ndarray, n: int, spread: float = 1.0) -> np.ndarray:
    x = centre + spread * rng.normal(size=(n, centre.size))
    return np.asarray(x / np.linalg.norm(x, axis=1, keepdims=True))


def test_centroid_test_is_calibrated_and_detects_a_shift() -> None:
    rng = np.random.default_rng(0)
    a, b = np.zeros(32), np.zeros(32)
    a[0], b[1] = 3.0, 3.0
    hours = [_profile(_unit(rng, a, 20), [50] * 20) for _ in range(24)]
    false_alarms = 0
    for _ in range(200):
        same = _profile(_unit(rng, a, 50), [50] * 50)
        false_alarms += drift.centroid_test(hours, same, 0.01, 30).status == "drifted"
    assert false_alarms <= 8  # 1% expected: 2 of 200; 8 would be far off
    shifted = _profile(np.vstack([_unit(rng, a, 35), _unit(rng, b, 15)]), [50] * 50)
    result = drift.centroid_test(hours, shifted, 0.01, 30)
    assert result.status == "drifted" and result.p_value is not None and result.p_value < 0.01


def test_length_and_rate_tests() -> None:
    rng = np.random.default_rng(1)
    hours = [_profile(np.zeros((20, 4)), list(rng.integers(40, 60, 20))) for _ in range(12)]
    longer = _profile(np.zeros((50, 4)), list(rng.integers(80, 120, 50)))
    same = _profile(np.zeros((50, 4)), list(rng.integers(40, 60, 50)))
    assert drift.length_test("input_length", hours, longer, 0.01, 30, 0.2).status == "drifted"
    assert drift.length_test("input_length", hours, same, 0.01, 30, 0.2).status == "stable"
    assert drift.length_test("input_length", hours, same, 0.01, 100, 0.2).status == "insufficient"
    up = drift.rate_test("error_rate", 10, 1000, 30, 200, worse="up", alpha=0.01, min_n=100, min_change=0.02)
    assert up.status == "drifted" and up.window == 0.15
    down = drift.rate_test(
        "error_rate", 100, 1000, 5, 200, worse="up", alpha=0.01, min_n=100, min_change=0.02
    )
    assert down.status == "stable"  # fewer errors is no drift to alert on
    tiny = drift.rate_test(
        "error_rate", 1000, 100000, 1110, 100000, worse="up", alpha=0.01, min_n=100, min_change=0.02
    )
    assert (
        tiny.p_value is not None and tiny.p_value < 0.01 and tiny.status == "stable"
    )  # significant, too small


def test_refusals() -> None:
    assert is_refusal("I'm sorry, but I can't help with that.")
    assert is_refusal("I cannot provide legal advice.")
    assert is_refusal("Unfortunately, I am unable to answer that.")
    assert not is_refusal("Sick leave is 10 days; I can't see more in the policy.")
    assert not is_refusal("I can help: parental leave is 16 weeks.")
    assert not is_refusal(None)
