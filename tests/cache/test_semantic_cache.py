"""The semantic response cache: a paraphrase is served the cached answer; another question, another
department or another data class is not; the bypass header skips it. In process and on Redis.

Uses the local all-MiniLM-L6-v2 model (the ``local`` extra); skipped without it.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from aerodrome.cache.semantic import LocalSemanticStore, Probe
from aerodrome.providers.local_embeddings import is_available
from tests.gateway.helpers import chat_body, gateway_with, one_run
from tests.harness import Gateway, base_config, postgres_available, postgres_database, run_gateway
from tests.integration.services import SHARED_REDIS, delete_prefix, shared_redis_available, unique_prefix
from tests.upstream.fixtures import UpstreamServer

pytestmark = pytest.mark.skipif(not is_available(), reason="needs the local embeddings extra")

URL = "/v1/chat/completions"
ALIAS = "chat-similar"
QUESTION = "How many weeks of parental leave do I get?"
PARAPHRASE = "how many weeks of parental leave am I entitled to?"  # cosine 0.95 with QUESTION
OTHER = "How many weeks of sick leave do I get?"  # 0.68: another question
NEAR_MISS = "How many weeks of parental leave do fathers get?"  # 0.87: close wording, other question


def _aliases(upstream: UpstreamServer) -> list[dict[str, Any]]:
    aliases = base_config(upstream.url, db_url="sqlite://")["aliases"]
    cache = {"ttl_s": 60, "semantic": {"threshold": 0.92}}
    return [*aliases, {"name": ALIAS, "deployments": ["mock-a"], "cache": cache}]


def _ask(gw: Gateway, key: str, question: str, **headers: str) -> Any:
    with gw.client(key, timeout=60) as c:  # the first question loads the embedding model
        r = c.post(URL, json=chat_body(model=ALIAS, content=question, temperature=0), headers=headers)
    assert r.status_code == 200, r.text
    return r


def _upstream_calls(upstream: UpstreamServer) -> int:
    return len(upstream.requests("/v1/chat/completions"))


@pytest.fixture
def similar_gateway(upstream: UpstreamServer, tmp_path: Path) -> Iterator[Gateway]:
    with gateway_with(upstream.url, tmp_path, aliases=_aliases(upstream)) as gw:
        yield gw


def test_a_paraphrase_is_answered_from_the_cache_and_recorded(
    similar_gateway: Gateway, upstream: UpstreamServer
) -> None:
    key = similar_gateway.make_key("hr")
    first = _ask(similar_gateway, key, QUESTION)
    assert first.headers["x-aerodrome-cache"] == "miss"
    again = _ask(similar_gateway, key, PARAPHRASE)
    assert again.headers["x-aerodrome-cache"] == "hit"
    assert again.headers["x-aerodrome-cache-match"] == "semantic"
    assert again.json()["choices"] == first.json()["choices"]
    assert _upstream_calls(upstream) == 1
    run = one_run(similar_gateway, again)
    assert run["cache_hit"] is True and run["cost_usd"] == 0 and run["attempts"] == 0
    assert run["meta"]["cache"]["match"] == "semantic"
    assert 0.92 <= run["meta"]["cache"]["similarity"] < 1.0
    exact = _ask(similar_gateway, key, QUESTION)  # the same words: the exact cache answers first
    assert exact.headers["x-aerodrome-cache-match"] == "exact"
    assert _upstream_calls(upstream) == 1


def test_another_question_misses_even_in_similar_words(
    similar_gateway: Gateway, upstream: UpstreamServer
) -> None:
    key = similar_gateway.make_key("hr")
    _ask(similar_gateway, key, QUESTION)
    for question in (OTHER, NEAR_MISS):
        assert _ask(similar_gateway, key, question).headers["x-aerodrome-cache"] == "miss"
    assert _upstream_calls(upstream) == 3


def test_never_across_departments_data_classes_or_system_prompts(
    similar_gateway: Gateway, upstream: UpstreamServer
) -> None:
    hr, finance = similar_gateway.make_key("hr"), similar_gateway.make_key("finance")
    _ask(similar_gateway, hr, QUESTION)
    assert _ask(similar_gateway, finance, PARAPHRASE).headers["x-aerodrome-cache"] == "miss"
    public = _ask(similar_gateway, hr, PARAPHRASE, **{"x-aerodrome-data-class": "public"})
    assert public.headers["x-aerodrome-cache"] == "miss"
    body = chat_body(model=ALIAS, content=PARAPHRASE, temperature=0)
    body["messages"].insert(0, {"role": "system", "content": "Answer in French."})
    with similar_gateway.client(hr) as c:
        assert c.post(URL, json=body).headers["x-aerodrome-cache"] == "miss"
    assert _upstream_calls(upstream) == 4
    assert _ask(similar_gateway, hr, PARAPHRASE).headers["x-aerodrome-cache"] == "hit"


def test_the_bypass_header_reaches_the_model_and_stores_nothing(
    similar_gateway: Gateway, upstream: UpstreamServer
) -> None:
    key = similar_gateway.make_key("hr")
    _ask(similar_gateway, key, QUESTION)
    bypassed = _ask(similar_gateway, key, QUESTION, **{"x-aerodrome-cache": "bypass"})
    assert bypassed.headers["x-aerodrome-cache"] == "bypass"
    assert one_run(similar_gateway, bypassed)["cache_hit"] is False
    new = _ask(similar_gateway, key, OTHER, **{"x-aerodrome-cache": "bypass"})
    assert new.headers["x-aerodrome-cache"] == "bypass"
    assert _ask(similar_gateway, key, OTHER).headers["x-aerodrome-cache"] == "miss"  # nothing was stored
    assert _upstream_calls(upstream) == 4


@pytest.mark.skipif(not shared_redis_available(), reason="Redis is not running at 127.0.0.1:6379")
@pytest.mark.skipif(not postgres_available(), reason="PostgreSQL is not running at 127.0.0.1:5432")
def test_on_redis_a_paraphrase_is_served_by_the_other_replica(
    upstream: UpstreamServer, tmp_path: Path
) -> None:
    prefix = unique_prefix()
    try:
        with postgres_database() as db:
            cfg = base_config(upstream.url, db_url=db, aliases=_aliases(upstream))
            cfg["redis"] = {"url": SHARED_REDIS, "key_prefix": prefix}
            with run_gateway(cfg, tmp_path) as one, run_gateway(cfg, tmp_path) as two:
                hr, finance = one.make_key("hr"), one.make_key("finance")
                assert _ask(one, hr, QUESTION).headers["x-aerodrome-cache"] == "miss"
                hit = _ask(two, hr, PARAPHRASE)
                assert hit.headers["x-aerodrome-cache-match"] == "semantic"
                assert _ask(two, finance, PARAPHRASE).headers["x-aerodrome-cache"] == "miss"
                assert _ask(one, hr, OTHER).headers["x-aerodrome-cache"] == "miss"
                assert _upstream_calls(upstream) == 3
    finally:
        delete_prefix(SHARED_REDIS, prefix)


# -- the in-process store alone (no model: hand-made unit vectors) ---------------------------------


def _probe(partition: str, entry: str, angle: float) -> Probe:
    vec = np.zeros(384, dtype=np.float32)
    vec[0], vec[1] = math.cos(angle), math.sin(angle)
    return Probe(partition, entry, vec)


def test_the_local_store_keeps_partitions_apart_expires_and_drops_the_oldest() -> None:
    async def scenario() -> None:
        store = LocalSemanticStore(max_partitions=10, max_per_partition=2, max_entry_bytes=4096)
        await store.add(_probe("hr:-:a:x", "q1", 0.0), {"answer": 1}, ttl_s=60)
        near, far = _probe("hr:-:a:x", "q", 0.3), _probe("hr:-:a:x", "q", 0.5)  # cos 0.955, 0.878
        found = await store.search(near, 0.92)
        assert found is not None and found.response == {"answer": 1} and 0.95 < found.similarity < 0.96
        assert await store.search(far, 0.92) is None
        assert await store.search(_probe("finance:-:a:x", "q", 0.0), 0.92) is None
        await store.add(_probe("hr:-:a:x", "q2", 1.0), {"answer": 2}, ttl_s=60)
        await store.add(_probe("hr:-:a:x", "q3", 2.0), {"answer": 3}, ttl_s=60)  # q1 dropped (2 kept)
        assert await store.search(_probe("hr:-:a:x", "q", 0.0), 0.92) is None
        await store.add(_probe("hr:-:a:y", "q1", 0.0), {"answer": 4}, ttl_s=0.01)
        await asyncio.sleep(0.05)
        assert await store.search(_probe("hr:-:a:y", "q", 0.0), 0.92) is None  # expired

    asyncio.run(scenario())
