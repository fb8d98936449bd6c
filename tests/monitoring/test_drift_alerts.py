"""Drift monitoring and alerts on a real server: a generated drift reaches a local webhook receiver.

The baseline is traffic recorded a day ago (run records through the run writer, features through
the runtime's profiler, as the gateway would have produced them); the shifted traffic goes through
the real gateway; the evaluator runs; the runtime's delivery loop posts to the receiver.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from aerodrome.monitoring.profiler import Observation
from tests.harness import Gateway, base_config, run_gateway
from tests.monitoring.traffic import questions, run_record
from tests.monitoring.webhook_receiver import WebhookReceiver
from tests.upstream.fixtures import UpstreamServer

SPEC: dict[str, Any] = {
    "id": "helpdesk",
    "title": "Helpdesk questions",
    "departments": ["hr"],
    "inputs": {"question": {"type": "string", "required": True, "max_length": 2000}},
    "prompt": "Answer the question: {{ question }}",
    "model": "chat-small",
    "monitoring": {"drift": {"window": "1h", "min_runs": 30}},
}


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    hook = WebhookReceiver()
    yield hook
    hook.close()


def _config(upstream: UpstreamServer, db_url: str, hook_url: str, **alerts: Any) -> dict[str, Any]:
    cfg = base_config(upstream.url, db_url=db_url)
    cfg["alerts"] = {
        "webhooks": [{"name": "oncall", "url": hook_url}],
        "evaluate_every_s": 3600,  # the test runs the evaluator itself
        "delivery": {"max_attempts": 3, "backoff_initial_s": 0.2, "backoff_max_s": 0.4},
        **alerts,
    }
    cfg["monitoring"] = {"flush_interval_s": 0.2}
    return cfg


def _seed(gw: Gateway, texts: list[str], start: datetime, span: timedelta, *, status: str = "ok") -> None:
    """Runs of the helpdesk use case in the past, as the gateway records them."""
    rt = gw.runtime
    assert rt.profiler is not None
    step = span / len(texts)
    for i, text in enumerate(texts):
        at = start + step * i
        rt.writer.submit(run_record("helpdesk", at, status=status))
        rt.profiler.observe(
            Observation(
                "helpdesk", "hr", at, text, f"Answer the question: {text}", status == "ok", embed=True
            )
        )
    gw.flush()
    assert rt.profiler.wait_idle(120)


def _live(gw: Gateway, key: str, texts: list[str]) -> None:
    with gw.client(key, timeout=30) as c:
        for text in texts:
            r = c.post("/v1/usecases/helpdesk/run", json={"inputs": {"question": text}})
            assert r.status_code == 200, r.text
    gw.flush()
    assert gw.runtime.profiler is not None and gw.runtime.profiler.wait_idle(120)


def _alerts(gw: Gateway, **params: Any) -> list[dict[str, Any]]:
    with gw.client(gw.admin_key) as c:
        r = c.get("/api/alerts", params=params)
        assert r.status_code == 200, r.text
        return list(r.json()["data"])


def _alert(gw: Gateway, alert_id: str) -> dict[str, Any]:
    with gw.client(gw.admin_key) as c:
        r = c.get(f"/api/alerts/{alert_id}")
        assert r.status_code == 200, r.text
        return dict(r.json())


def test_generated_drift_raises_an_alert_the_webhook_receives(
    upstream: UpstreamServer, receiver: WebhookReceiver, db_url: str, tmp_path: Path
) -> None:
    with run_gateway(_config(upstream, db_url, receiver.url), tmp_path) as gw:
        with gw.client(gw.admin_key) as c:
            assert c.post("/api/usecases", json={"spec": SPEC}).status_code == 201
        now = datetime.now(UTC)
        # baseline: 96 HR questions spread over 12 hours, a day ago
        _seed(gw, questions("hr", 96, seed=1), now - timedelta(hours=30), timedelta(hours=12))
        with gw.client(gw.admin_key) as c:
            r = c.put(
                "/api/usecases/helpdesk/drift/baseline",
                json={
                    "start": (now - timedelta(hours=31)).isoformat(),
                    "end": (now - timedelta(hours=17)).isoformat(),
                },
            )
            assert r.status_code == 200, r.text
        user = gw.make_key("hr", "user", name="employee")
        # live traffic on the same topic: no drift
        _live(gw, user, questions("hr", 40, seed=2))
        with gw.client(gw.admin_key) as c:
            report = c.get("/api/usecases/helpdesk/drift").json()
        assert report["status"] == "stable", [
            (f["feature"], f["status"], f["baseline"], f["window"], f["note"]) for f in report["features"]
        ]
        assert report["baseline"]["source"] == "recorded" and report["baseline"]["runs"] == 96
        assert gw.runtime.evaluate_alerts().fired == []
        # the inputs shift to IT questions: drift
        _live(gw, user, questions("it", 40, seed=3))
        changes = gw.runtime.evaluate_alerts()
        assert len(changes.fired) == 1
        [alert] = _alerts(gw, status="open")
        assert alert["rule"] == "drift" and alert["metric"] == "drifted_features"
        assert alert["usecase_id"] == "helpdesk" and alert["departments"] == ["hr"]
        drifted = alert["details"]["drift"]["drifted"]
        assert "input_centroid" in drifted, alert["details"]
        [message] = receiver.wait_for(1)
        assert "helpdesk" in message["text"] and "input_centroid" in message["text"]
        assert "FIRING" in message["text"] and message["blocks"][0]["type"] == "section"

        # deduplicated: evaluating again while it is open sends nothing more
        assert gw.runtime.evaluate_alerts().fired == []
        assert len(_alerts(gw)) == 1
        assert [d["event"] for d in _alert(gw, alert["id"])["deliveries"]] == ["fired"]

        # an hour later the traffic is back to HR questions: the alert resolves, the receiver hears it
        later = now + timedelta(hours=2)
        _seed(gw, questions("hr", 60, seed=4), later - timedelta(minutes=40), timedelta(minutes=30))
        changes = gw.runtime.evaluate_alerts(now=later)
        assert changes.resolved == [alert["id"]]
        messages = receiver.wait_for(2)
        assert len(messages) == 2 and "RESOLVED" in messages[1]["text"]
        shown = _alert(gw, alert["id"])
        assert shown["status"] == "resolved" and shown["resolved_at"] is not None
        assert sorted(d["status"] for d in shown["deliveries"]) == ["sent", "sent"]

        with gw.client(gw.admin_key) as c:
            events = c.get("/api/audit", params={"object_type": "alert"}).json()["data"]
        assert {e["action"] for e in events} == {"alert.fired", "alert.resolved"}


def _error_rule_spec() -> dict[str, Any]:
    return {
        **SPEC,
        "alerts": [
            {"metric": "error_rate", "above": 0.2, "window": "1h", "min_samples": 10, "severity": "critical"}
        ],
        "monitoring": {"drift": {"enabled": False}},
    }


def _fire_error_alert(gw: Gateway) -> dict[str, Any]:
    with gw.client(gw.admin_key) as c:
        assert c.post("/api/usecases", json={"spec": _error_rule_spec()}).status_code == 201
    now = datetime.now(UTC)
    _seed(gw, ["q"] * 10, now - timedelta(minutes=20), timedelta(minutes=10), status="error")
    assert len(gw.runtime.evaluate_alerts().fired) == 1
    [alert] = _alerts(gw, status="open")
    assert alert["metric"] == "error_rate" and alert["value"] == 1.0 and alert["severity"] == "critical"
    return alert


def _wait_delivery(gw: Gateway, alert_id: str, status: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        [delivery] = _alert(gw, alert_id)["deliveries"]
        if delivery["status"] == status:
            return dict(delivery)
        time.sleep(0.1)
    raise AssertionError(f"the delivery did not become {status}: {delivery}")


def test_a_busy_receiver_gets_the_message_after_retries(
    upstream: UpstreamServer, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    receiver.fail_next = 2
    cfg = _config(upstream, f"sqlite:///{tmp_path}/a.db", receiver.url)
    cfg["monitoring"]["embed_inputs"] = []
    with run_gateway(cfg, tmp_path) as gw:
        alert = _fire_error_alert(gw)
        delivery = _wait_delivery(gw, alert["id"], "sent")
        assert delivery["attempts"] == 3
        assert len(receiver.wait_for(1)) == 1 and receiver.requests == 3
        assert "error_rate of use case helpdesk is 100.0% (above 20.0%)" in receiver.messages[0]["text"]
        with gw.client() as c:
            metrics = c.get("/metrics").text
        assert 'aerodrome_alert_messages_total{outcome="retry"} 2.0' in metrics
        assert 'aerodrome_alert_messages_total{outcome="sent"} 1.0' in metrics
        assert [x for x in metrics.splitlines() if "alerts_total{" in x] == [
            'aerodrome_alerts_total{event="fired"} 1.0'
        ]


def test_a_receiver_that_is_down_leaves_a_recorded_failure(
    upstream: UpstreamServer, db_url: str, tmp_path: Path
) -> None:
    down = WebhookReceiver()
    url = down.url
    down.close()  # nothing listens there any more
    cfg = _config(upstream, db_url, url)
    cfg["monitoring"]["embed_inputs"] = []
    with run_gateway(cfg, tmp_path) as gw:
        alert = _fire_error_alert(gw)
        delivery = _wait_delivery(gw, alert["id"], "failed")
        assert delivery["attempts"] == 3 and delivery["delivered_at"] is None
        assert "ClientConnectorError" in delivery["last_error"]
        # the alert itself is kept, open, and can be acknowledged
        with gw.client(gw.admin_key) as c:
            r = c.post(f"/api/alerts/{alert['id']}/acknowledge")
            assert r.status_code == 200, r.text
            assert r.json()["acknowledged_by"] == "admin@example.com"
            events = c.get("/api/audit", params={"object_type": "alert"}).json()["data"]
        assert {e["action"] for e in events} == {"alert.fired", "alert.acknowledged"}
        assert _alerts(gw, status="open")[0]["acknowledged_at"] is not None


def test_reminders_while_open_and_none_once_acknowledged(
    upstream: UpstreamServer, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    cfg = _config(upstream, f"sqlite:///{tmp_path}/r.db", receiver.url, renotify_after_s=600)
    cfg["monitoring"]["embed_inputs"] = []
    with run_gateway(cfg, tmp_path) as gw:
        alert = _fire_error_alert(gw)
        now = datetime.now(UTC)
        assert gw.runtime.evaluate_alerts(now=now + timedelta(minutes=5)).reminded == []
        assert gw.runtime.evaluate_alerts(now=now + timedelta(minutes=11)).reminded == [alert["id"]]
        messages = receiver.wait_for(2)
        assert "STILL FIRING" in messages[1]["text"]
        with gw.client(gw.admin_key) as c:
            assert c.post("/api/alerts/acknowledge", json={"ids": [alert["id"]]}).status_code == 200
        assert gw.runtime.evaluate_alerts(now=now + timedelta(minutes=30)).reminded == []


def test_department_scoping_of_alerts(
    upstream: UpstreamServer, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    cfg = _config(upstream, f"sqlite:///{tmp_path}/s.db", receiver.url)
    cfg["monitoring"]["embed_inputs"] = []
    with run_gateway(cfg, tmp_path) as gw:
        alert = _fire_error_alert(gw)
        hr_builder = gw.make_key("hr", "builder", name="hr-builder")
        fin_builder = gw.make_key("finance", "builder", name="fin-builder")
        employee = gw.make_key("hr", "user", name="employee")
        with gw.client(hr_builder) as c:
            assert [a["id"] for a in c.get("/api/alerts").json()["data"]] == [alert["id"]]
        with gw.client(fin_builder) as c:
            assert c.get("/api/alerts").json()["data"] == []
            r = c.post(f"/api/alerts/{alert['id']}/acknowledge")
            assert r.status_code == 403 and r.json()["error"]["code"] == "permission_denied"
        with gw.client(employee) as c:
            assert c.get("/api/alerts").status_code == 403
        with gw.client(gw.admin_key) as c:
            r = c.get("/api/alerts", params={"status": "firing"})
            assert r.status_code == 400 and "status must be one of" in r.json()["error"]["message"]
            assert c.post("/api/alerts/nope/acknowledge").status_code == 404


def test_budget_burn_alerts(
    upstream: UpstreamServer, receiver: WebhookReceiver, db_url: str, tmp_path: Path
) -> None:
    cfg = _config(upstream, db_url, receiver.url)
    cfg["monitoring"]["embed_inputs"] = []
    cfg["departments"][2]["budget"] = {"usd": 1.0, "period": "day"}  # finance
    with run_gateway(cfg, tmp_path) as gw:
        midnight = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        at_six_pm = midnight + timedelta(hours=18)  # three quarters of the day gone
        rt = gw.runtime
        for _ in range(4):  # $0.60 by 6 am: 60% spent, on course for 80%: nothing
            rt.writer.submit(
                run_record("helpdesk", midnight + timedelta(hours=6), department="finance", cost=0.15)
            )
        gw.flush()
        assert rt.evaluate_alerts(now=at_six_pm).fired == []
        rt.writer.submit(
            run_record("helpdesk", midnight + timedelta(hours=7), department="finance", cost=0.2)
        )
        gw.flush()  # $0.80: projected to $1.07 by midnight
        assert len(rt.evaluate_alerts(now=at_six_pm).fired) == 1
        [projected] = _alerts(gw, status="open")
        assert projected["rule"] == "budget-projected" and projected["scope_id"] == "finance"
        assert projected["departments"] == ["finance"] and projected["value"] == pytest.approx(0.8 / 0.75)
        rt.writer.submit(
            run_record("helpdesk", midnight + timedelta(hours=8), department="finance", cost=0.15)
        )
        gw.flush()  # $0.95: past 90% of the budget
        assert len(rt.evaluate_alerts(now=at_six_pm).fired) == 1
        assert {a["rule"] for a in _alerts(gw, status="open")} == {"budget-projected", "budget-spent"}
        texts = [m["text"] for m in receiver.wait_for(2)]
        assert any("budget_spent_pct of department finance is 95.0% (above 90.0%)" in t for t in texts), texts
        # the next day starts from zero: both resolve
        assert len(rt.evaluate_alerts(now=at_six_pm + timedelta(days=1)).resolved) == 2


def test_bad_platform_rules_stop_the_config_with_a_clear_error(tmp_path: Path) -> None:
    from aerodrome.config import parse_config
    from aerodrome.errors import ConfigError

    hooks = [{"name": "oncall", "url": "http://127.0.0.1:9/x"}]
    for alerts, message in [
        (
            {"rules": [{"metric": "error_rate", "above": 0.1, "webhooks": ["pager"]}]},
            "unknown webhook 'pager'",
        ),
        ({"rules": [{"metric": "p99", "above": 1}]}, "unknown alert metric 'p99'"),
        ({"webhooks": [{"name": "x"}]}, "give exactly one of url or url_ref"),
        ({"webhooks": [{"name": "x", "url": "slack.example.com/hook"}]}, "must start with http"),
        ({"rules": [{"metric": "runs", "below": 1}, {"metric": "runs", "below": 1}]}, "defined twice"),
    ]:
        with pytest.raises(ConfigError) as exc:
            parse_config({"alerts": {"webhooks": hooks, **alerts}}, base_dir=tmp_path)
        assert message in exc.value.message, exc.value.message


def test_bad_alert_rules_get_clear_errors(gateway: Gateway) -> None:
    bad = [
        ({"metric": "latency", "above": 1}, "unknown alert metric 'latency'"),
        ({"metric": "error_rate"}, "give exactly one of above or below"),
        ({"metric": "error_rate", "above": 0.1, "below": 0.01}, "give exactly one of above or below"),
        ({"metric": "error_rate", "above": 0.1, "window": "an hour"}, "is not a duration"),
        ({"metric": "budget_spent_pct", "above": 0.9}, "budget alerts are platform rules"),
        ({"metric": "error_rate", "above": 0.1, "webhooks": ["pager"]}, "unknown webhook 'pager'"),
    ]
    with gateway.client(gateway.admin_key) as c:
        for rule, message in bad:
            r = c.post("/api/usecases", json={"spec": {**SPEC, "alerts": [rule]}})
            assert r.status_code in (400, 422), r.text
            assert message in r.text, (rule, r.text)
            r = c.post("/api/usecases/validate", json={"spec": {**SPEC, "alerts": [rule]}})
            assert r.json()["valid"] is False and message in r.json()["problems"][0]["message"]


def test_replicas_evaluating_at_once_open_one_alert(
    upstream: UpstreamServer, receiver: WebhookReceiver, db_url: str, tmp_path: Path
) -> None:
    """Several evaluators on one database (as several replicas would be): one alert, one message."""
    from concurrent.futures import ThreadPoolExecutor

    cfg = _config(upstream, db_url, receiver.url)
    cfg["monitoring"]["embed_inputs"] = []
    with run_gateway(cfg, tmp_path) as gw:
        with gw.client(gw.admin_key) as c:
            assert c.post("/api/usecases", json={"spec": _error_rule_spec()}).status_code == 201
        now = datetime.now(UTC)
        _seed(gw, ["q"] * 10, now - timedelta(minutes=20), timedelta(minutes=10), status="error")
        with ThreadPoolExecutor(4) as pool:
            results = list(pool.map(lambda _: gw.runtime.evaluate_alerts(now=now), range(4)))
        assert sum(len(r.fired) for r in results) == 1
        [alert] = _alerts(gw)
        assert len(_alert(gw, alert["id"])["deliveries"]) == 1
        assert len(receiver.wait_for(1)) == 1


def test_a_model_that_starts_refusing_is_drift(
    upstream: UpstreamServer, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """Output-side drift through the real gateway: the model starts refusing; no embeddings needed."""
    cfg = _config(upstream, f"sqlite:///{tmp_path}/f.db", receiver.url)
    cfg["monitoring"]["embed_inputs"] = []
    spec = {
        **SPEC,
        "monitoring": {
            "drift": {
                "window": "1h",
                "min_runs": 30,
                "features": ["refusal_rate", "output_length", "error_rate"],
            }
        },
    }
    with run_gateway(cfg, tmp_path) as gw:
        with gw.client(gw.admin_key) as c:
            assert c.post("/api/usecases", json={"spec": spec}).status_code == 201
        now = datetime.now(UTC)
        _seed(gw, questions("hr", 96, seed=1), now - timedelta(hours=30), timedelta(hours=12))
        with gw.client(gw.admin_key) as c:
            r = c.put(
                "/api/usecases/helpdesk/drift/baseline",
                json={
                    "start": (now - timedelta(hours=31)).isoformat(),
                    "end": (now - timedelta(hours=17)).isoformat(),
                },
            )
            assert r.status_code == 200, r.text
        upstream.fault(reply="I'm sorry, but I can't help with that.", times=40)
        _live(gw, gw.make_key("hr", "user", name="employee"), questions("hr", 40, seed=2))
        assert len(gw.runtime.evaluate_alerts().fired) == 1
        [alert] = _alerts(gw, status="open")
        features = {f["feature"]: f for f in alert["details"]["drift"]["features"]}
        assert features["refusal_rate"]["status"] == "drifted" and features["refusal_rate"]["window"] == 1.0
        assert features["error_rate"]["status"] == "stable"
        assert features["output_length"]["status"] == "drifted"  # refusals are shorter than answers
        [message] = receiver.wait_for(1)
        assert "refusal_rate" in message["text"]
