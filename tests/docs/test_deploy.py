"""The deployment examples in deploy/ use commands, options, variables and config the code has."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from aerodrome.cli import app
from aerodrome.config import parse_config
from aerodrome.settings import Settings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def _compose() -> dict[str, Any]:
    return dict(yaml.safe_load((DEPLOY / "docker-compose.yml").read_text(encoding="utf-8")))


def _kubernetes() -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((DEPLOY / "kubernetes.yaml").read_text(encoding="utf-8")) if d]


def _k8s_containers() -> list[dict[str, Any]]:
    out = []
    for doc in _kubernetes():
        spec = doc.get("spec", {}).get("template", {}).get("spec", {})
        out += spec.get("containers", [])
    return out


def _commands() -> list[list[str]]:
    compose = [
        s["command"]
        for s in _compose()["services"].values()
        if "command" in s and s.get("image") == "aerodrome:latest"  # not the database's or Redis's
    ]
    return compose + [c["command"] for c in _k8s_containers()]


def test_every_example_runs_a_real_command_with_real_options() -> None:
    commands = _commands()
    assert {tuple(c[:3]) for c in commands} >= {("aerodrome", "db", "upgrade")}
    assert {c[1] for c in commands} == {"db", "serve", "worker"}
    runner = CliRunner()
    for command in commands:
        assert command[0] == "aerodrome"
        result = runner.invoke(app, [*command[1:], "--help"])
        assert result.exit_code == 0, (command, result.output)
        for option in (a for a in command if a.startswith("--")):
            assert option in result.output, (command, option)


def _env_names() -> set[str]:
    names = set(_compose()["x-aerodrome"]["environment"])
    for c in _k8s_containers():
        names |= {e["name"] for e in c.get("env", [])}
    for doc in _kubernetes():
        if doc["kind"] == "Secret":
            names |= set(doc["stringData"])
    return names


def test_every_aerodrome_variable_is_a_setting() -> None:
    fields = {f"AERODROME_{name.upper()}" for name in Settings.model_fields}
    used = {n for n in _env_names() if n.startswith("AERODROME_")}
    assert used and used <= fields, used - fields


@pytest.mark.parametrize("source", ["compose", "kubernetes"])
def test_the_example_config_is_valid_and_scaled(source: str) -> None:
    if source == "compose":
        data = yaml.safe_load((DEPLOY / "aerodrome.yaml").read_text(encoding="utf-8"))
    else:
        cm = next(d for d in _kubernetes() if d["kind"] == "ConfigMap")
        data = yaml.safe_load(cm["data"]["aerodrome.yaml"])
    cfg = parse_config(data, base_dir=DEPLOY)
    assert cfg.jobs.run_in_server is False and cfg.database.auto_migrate is False
    assert cfg.retention.enabled and cfg.knowledge.index == "postgres"
    assert cfg.redis is not None and cfg.redis.url.startswith("redis://")  # limits shared by replicas
    referenced = {p.api_key.removeprefix("env:") for p in cfg.providers if p.api_key}
    assert referenced <= _env_names()


def test_load_balancers_probe_readiness_and_liveness() -> None:
    server = next(c for c in _k8s_containers() if c["name"] == "server")
    assert server["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert server["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert "/readyz" in str(_compose()["services"]["server"]["healthcheck"]["test"])
    for name in ("server", "worker"):  # they start once the schema is current and Redis answers
        assert set(_compose()["services"][name]["depends_on"]) == {"migrate", "redis"}
