"""The exact response cache: off by default, on per alias, never across departments or data classes.

In process (one gateway) and on Redis (two gateways sharing it: an answer cached by one replica
is served by the other).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.gateway.helpers import chat_body, gateway_with
from tests.harness import Gateway, base_config, postgres_available, postgres_database, run_gateway
from tests.integration.services import SHARED_REDIS, delete_prefix, shared_redis_available, unique_prefix
from tests.upstream.fixtures import UpstreamServer

URL = "/v1/chat/completions"
BODY = chat_body(model="chat-cached", content="what is the leave policy", temperature=0)


def _aliases(upstream: UpstreamServer) -> list[dict[str, Any]]:
    aliases = base_config(upstream.url, db_url="sqlite://")["aliases"]
    return [*aliases, {"name": "chat-cached", "deployments": ["mock-a"], "cache": {"ttl_s": 60}}]


@pytest.fixture
def cached_gateway(upstream: UpstreamServer, tmp_path: Path) -> Iterator[Gateway]:
    with gateway_with(upstream.url, tmp_path, aliases=_aliases(upstream)) as gw:
        yield gw


def _post(gw: Gateway, key: str, body: dict[str, Any], **headers: str) -> Any:
    with gw.client(key) as c:
        r = c.post(URL, json=body, headers=headers)
    assert r.status_code == 200, r.text
    return r


def test_a_repeated_request_is_answered_from_the_cache(
    cached_gateway: Gateway, upstream: UpstreamServer
) -> None:
    key = cached_gateway.make_key("hr")
    first = _post(cached_gateway, key, BODY)
    again = _post(cached_gateway, key, {**BODY, "user": "someone-else"})  # `user` is not part of the key
    assert first.headers["x-aerodrome-cache"] == "miss" and again.headers["x-aerodrome-cache"] == "hit"
    assert again.json()["choices"] == first.json()["choices"]
    assert len(upstream.requests("/v1/chat/completions")) == 1
    runs = {r["id"]: r for r in cached_gateway.runs()}
    hit = runs[again.headers["x-aerodrome-run-id"]]
    assert hit["cache_hit"] is True and hit["cost_usd"] == 0 and hit["attempts"] == 0
    assert runs[first.headers["x-aerodrome-run-id"]]["cache_hit"] is False
    _post(cached_gateway, key, {**BODY, "temperature": 0.7})  # another request: asked upstream
    assert len(upstream.requests("/v1/chat/completions")) == 2


def test_never_across_departments_or_data_classes(cached_gateway: Gateway, upstream: UpstreamServer) -> None:
    hr, finance = cached_gateway.make_key("hr"), cached_gateway.make_key("finance")
    _post(cached_gateway, hr, BODY)
    assert _post(cached_gateway, finance, BODY).headers["x-aerodrome-cache"] == "miss"
    assert (
        _post(cached_gateway, hr, BODY, **{"x-aerodrome-data-class": "public"}).headers["x-aerodrome-cache"]
        == "miss"
    )
    assert _post(cached_gateway, hr, BODY).headers["x-aerodrome-cache"] == "hit"
    assert len(upstream.requests("/v1/chat/completions")) == 3


def test_off_unless_the_alias_turns_it_on_and_never_for_streams(
    cached_gateway: Gateway, upstream: UpstreamServer
) -> None:
    key = cached_gateway.make_key("hr")
    plain = chat_body(content="same question")
    for _ in range(2):
        assert "x-aerodrome-cache" not in _post(cached_gateway, key, plain).headers
    for _ in range(2):
        with cached_gateway.client(key) as c:
            r = c.post(URL, json={**BODY, "stream": True})
        assert r.status_code == 200 and "x-aerodrome-cache" not in r.headers
    assert len(upstream.requests("/v1/chat/completions")) == 4


@pytest.mark.skipif(not shared_redis_available(), reason="Redis is not running at 127.0.0.1:6379")
@pytest.mark.skipif(not postgres_available(), reason="PostgreSQL is not running at 127.0.0.1:5432")
def test_on_redis_an_answer_cached_by_one_replica_is_served_by_the_other(
    upstream: UpstreamServer, tmp_path: Path
) -> None:
    prefix = unique_prefix()
    try:
        with postgres_database() as db:
            cfg = base_config(upstream.url, db_url=db, aliases=_aliases(upstream))
            cfg["redis"] = {"url": SHARED_REDIS, "key_prefix": prefix}
            with run_gateway(cfg, tmp_path) as one, run_gateway(cfg, tmp_path) as two:
                key = one.make_key("hr")
                assert _post(one, key, BODY).headers["x-aerodrome-cache"] == "miss"
                assert _post(two, key, BODY).headers["x-aerodrome-cache"] == "hit"
                other = one.make_key("finance")
                assert _post(two, other, BODY).headers["x-aerodrome-cache"] == "miss"
                assert len(upstream.requests("/v1/chat/completions")) == 2
    finally:
        delete_prefix(SHARED_REDIS, prefix)


def test_evaluations_reach_the_model_not_the_cache(upstream: UpstreamServer, tmp_path: Path) -> None:
    """A use case on a cached alias is served from the cache; its eval suite never is."""
    from tests.evals.test_eval_runs import QUESTIONS, SPEC, SUITE, eval_config, run_eval

    (tmp_path / "usecases" / "evals").mkdir(parents=True)
    (tmp_path / "usecases" / "evals" / "faq-bot.yaml").write_text(SUITE, encoding="utf-8")
    with run_gateway(eval_config(upstream, tmp_path, f"sqlite:///{tmp_path}/ev.db"), tmp_path) as gw:
        with gw.client(gw.admin_key, timeout=60) as c:
            alias = {"deployments": ["mock-a"], "cache": {"ttl_s": 600}}
            assert c.put("/api/catalog/aliases/chat-prod", json=alias).status_code == 200
            assert c.post("/api/usecases", json={"spec": SPEC}).status_code == 201
        ask = {"inputs": {"question": QUESTIONS["leave"]}}
        with gw.client(gw.make_key("hr"), timeout=60) as hr:  # the department the suite runs in
            first = hr.post("/v1/usecases/faq-bot/run", json=ask)
            again = hr.post("/v1/usecases/faq-bot/run", json=ask)
            assert first.status_code == again.status_code == 200, again.text
            assert (first.headers["x-aerodrome-cache"], again.headers["x-aerodrome-cache"]) == ("miss", "hit")
        calls = len(upstream.requests("/v1/chat/completions"))
        with gw.client(gw.admin_key, timeout=60) as c:
            run_eval(c)
        assert len(upstream.requests("/v1/chat/completions")) == calls + len(QUESTIONS)
        evals = [r for r in gw.runs() if r["endpoint"] == "eval"]
        assert len(evals) == len(QUESTIONS) and not any(r["cache_hit"] for r in evals)
