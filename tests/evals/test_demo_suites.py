"""The demo's three use cases pass their eval suites on the built-in local engine (runs in CI)."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from aerodrome.cli import app
from aerodrome.cli.demo import prepare
from aerodrome.cli.knowledge import ingest_all
from aerodrome.evals import store
from aerodrome.storage.engine import make_engine

DEMO_USECASES = ("hr-policy-assistant", "support-reply-drafter", "contract-clause-extractor")


def test_demo_suites_pass_on_the_local_engine(tmp_path: Path) -> None:
    config, _ = prepare(tmp_path / "demo")
    ingest_all(config)
    assert sorted(p.name for p in (tmp_path / "demo" / "usecases" / "evals").iterdir()) == sorted(
        f"{u}.yaml" for u in DEMO_USECASES
    )
    runner = CliRunner()
    for usecase in DEMO_USECASES:
        result = runner.invoke(app, ["eval", usecase, "--config", str(config)])
        assert result.exit_code == 0, result.output
        assert f"PASSED {usecase} v1 on local-extractive" in " ".join(result.output.split())
    engine = make_engine(f"sqlite:///{tmp_path / 'demo' / 'aerodrome.db'}")
    try:
        runs = store.list_runs(engine)
        assert sorted(r["usecase_id"] for r in runs) == sorted(DEMO_USECASES)
        assert all(r["status"] == "passed" and r["pass_rate"] == 1.0 for r in runs)
        hr = store.get(engine, next(r["id"] for r in runs if r["usecase_id"] == "hr-policy-assistant"))
        kinds = {a["type"] for r in hr["results"] for a in r["assertions"]}
        assert {"grounded", "similar", "cites", "refuses"} <= kinds  # the local embeddings are exercised too
    finally:
        engine.dispose()
