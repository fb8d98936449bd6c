"""Small helpers shared by the gateway, routing, limits and monitoring tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import orjson

from tests.harness import Gateway, base_config, run_gateway

HELLO = [{"role": "user", "content": "hello there"}]


def chat_body(model: str = "chat-small", content: str = "hello there", **kw: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": content}], **kw}


def assert_error(
    resp: httpx.Response, status: int, code: str | None = None, param: str | None = None
) -> dict[str, Any]:
    """The answer is an error in OpenAI's shape with this status (and code / param); returns the error."""
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"error"}, body
    err = body["error"]
    assert set(err) == {"message", "type", "param", "code"}, err
    assert isinstance(err["message"], str) and err["message"]
    assert isinstance(err["type"], str) and err["type"]
    if code is not None:
        assert err["code"] == code, err
    if param is not None:
        assert err["param"] == param, err
    return dict(err)


def sse_events(resp: httpx.Response) -> list[Any]:
    """The data payloads of an SSE answer (JSON decoded; ``[DONE]`` kept as the string)."""
    out: list[Any] = []
    for line in resp.iter_lines():
        if not line.startswith("data:"):
            continue
        payload = line[5:].strip()
        out.append(payload if payload == "[DONE]" else orjson.loads(payload))
    return out


def runs_by_id(gw: Gateway, run_id: str) -> list[dict[str, Any]]:
    return [r for r in gw.runs() if r["id"] == run_id]


def one_run(gw: Gateway, resp: httpx.Response) -> dict[str, Any]:
    """The single run record of a response (by its x-aerodrome-run-id header)."""
    run_id = resp.headers["x-aerodrome-run-id"]
    found = runs_by_id(gw, run_id)
    assert len(found) == 1, found
    return found[0]


def config(upstream_url: str | None, tmp_path: Path, **overrides: Any) -> dict[str, Any]:
    return base_config(upstream_url, db_url=f"sqlite:///{tmp_path}/gw.db", **overrides)


@contextmanager
def gateway_with(upstream_url: str | None, tmp_path: Path, **overrides: Any) -> Iterator[Gateway]:
    """A gateway on base_config with top-level keys replaced (``routing``, ``server``, ...)."""
    with run_gateway(config(upstream_url, tmp_path, **overrides), tmp_path) as gw:
        yield gw


def deployments(upstream_url: str, **changes: dict[str, Any]) -> list[dict[str, Any]]:
    """base_config's deployments, with per-deployment field changes: ``mock_a={"timeout_s": 0.5}``."""
    deps = base_config(upstream_url, db_url="sqlite://")["deployments"]
    for dep in deps:
        dep.update(changes.get(dep["name"].replace("-", "_"), {}))
    return list(deps)


def aliases(upstream_url: str, *extra: dict[str, Any]) -> list[dict[str, Any]]:
    return list(base_config(upstream_url, db_url="sqlite://")["aliases"]) + list(extra)


def routing(**kw: Any) -> dict[str, Any]:
    cfg = dict(base_config(None, db_url="sqlite://")["routing"])
    breaker = dict(cfg["breaker"])
    breaker.update(kw.pop("breaker", {}))
    cfg.update(kw)
    cfg["breaker"] = breaker
    return cfg


def server(**kw: Any) -> dict[str, Any]:
    cfg = dict(base_config(None, db_url="sqlite://")["server"])
    cfg.update(kw)
    return cfg
