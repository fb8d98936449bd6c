"""Queries of an index backend: lexical and dense ranking, filters, collection restriction, odd input."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from aerodrome.knowledge.index.base import IndexBackend, InvalidFilter
from tests.knowledge.index.corpus import DIMS, DOCS, MODEL, chunk, load


def test_lexical_ranks_the_matching_chunk_first(backend: IndexBackend) -> None:
    load(backend)
    assert backend.lexical(["kb"], "how long is parental leave?", 3)[0].document_id == "leave.md"
    assert backend.lexical(["kb"], "laptop replacement", 3)[0].document_id == "laptop.md"
    hits = backend.lexical(["kb"], "refunds purchase", 10)
    assert hits[0].document_id == "refund.md"
    assert all(h.lexical_score is not None and h.lexical_score > 0 for h in hits)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert backend.lexical(["kb"], "replacing laptops", 3)[0].document_id == "laptop.md"  # stemming


def test_lexical_folds_diacritics(backend: IndexBackend) -> None:
    load(backend)
    assert backend.lexical(["kb"], "conge", 3)[0].document_id == "conges.md"
    assert backend.lexical(["kb"], "CONGÉ", 3)[0].document_id == "conges.md"


@pytest.mark.parametrize(
    "query",
    [
        '"foo" AND (bar',
        "NEAR(a b",
        "*",
        "-",
        "^laptop",
        'laptop"',
        "title:laptop",
        "a OR",
        "NOT",
        "()",
        "'; DROP TABLE knowledge_chunks; --",
        "ünïcödé ✈️ 日本語",
        "",
        "   ",
        "\x00",
        "laptop & | ! <->",
        "a" * 5000,
        " ".join(f"w{i}" for i in range(500)),
    ],
)
def test_any_query_text_is_safe(backend: IndexBackend, query: str) -> None:
    load(backend)
    hits = backend.lexical(["kb"], query, 5)
    assert isinstance(hits, list)
    if "laptop" in query:
        assert hits[0].document_id == "laptop.md"
    assert backend.count("kb") == len(DOCS)


def test_dense_ranks_by_cosine(backend: IndexBackend) -> None:
    load(backend)
    query = np.array([0.3, 0.9, 0.1, 0.4])
    hits = backend.dense(["kb"], query.tolist(), 10)
    expected = {
        doc: float(np.dot(v, query) / (np.linalg.norm(v) * np.linalg.norm(query)))
        for doc, (_, v, _) in DOCS.items()
    }
    assert [h.document_id for h in hits] == sorted(expected, key=lambda d: -expected[d])
    for hit in hits:
        assert hit.score == pytest.approx(expected[hit.document_id], abs=1e-5)
        assert hit.dense_score == hit.score
    assert len(backend.dense(["kb"], query.tolist(), 2)) == 2
    assert backend.dense(["kb"], [0.0] * DIMS, 5) == []
    sims = backend.similarities(["kb"], [hits[0].chunk_id, hits[-1].chunk_id, "unknown"], query.tolist())
    assert sims == pytest.approx(
        {hits[0].chunk_id: hits[0].score, hits[-1].chunk_id: hits[-1].score}, abs=1e-5
    )


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"document_id": "laptop.md"}, {"laptop.md"}),
        ({"document_id": ["laptop.md", "leave.md"]}, {"laptop.md", "leave.md"}),
        ({"metadata.lang": "fr"}, {"conges.md"}),
        ({"metadata.dept": ["it", "sales"]}, {"laptop.md", "refund.md", "phishing.md"}),
        ({"metadata.dept": "hr", "metadata.year": 2024}, {"leave.md", "conges.md"}),
        ({"metadata.public": False}, {"annual.md"}),
        ({"metadata.year": "2024"}, set()),  # JSON equality: a string is not a number
        ({"metadata.missing": "x"}, set()),
    ],
)
def test_filters(backend: IndexBackend, filters: dict[str, object], expected: set[str]) -> None:
    load(backend)
    dense = backend.dense(["kb"], [1.0, 1.0, 1.0, 1.0], 100, filters)
    assert {h.document_id for h in dense} == expected
    lexical = backend.lexical(["kb"], "the for every of leave laptop refunds email le holiday", 100, filters)
    assert {h.document_id for h in lexical} <= expected
    assert len(backend.dense(["kb"], [1.0, 0.0, 0.0, 0.0], 1, filters)) == min(1, len(expected))


@pytest.mark.parametrize("filters", [{"lang": "en"}, {"metadata.": "x"}, {"metadata.a'b": 1},
                                     {"document_id": 3}, {"metadata.x": None}, {"metadata.x": []}])  # fmt: skip
def test_invalid_filters_raise(backend: IndexBackend, filters: dict[str, object]) -> None:
    load(backend)
    with pytest.raises(InvalidFilter):
        backend.lexical(["kb"], "leave", 5, filters)
    with pytest.raises(InvalidFilter):
        backend.dense(["kb"], [1.0, 0.0, 0.0, 0.0], 5, filters)


def test_only_the_given_collections_are_searched(backend: IndexBackend) -> None:
    load(backend, "a")
    backend.ensure_collection("b", dims=DIMS, embedding_model=MODEL)
    secret = chunk("b", "secret.md", "Parental leave secret salary table", [1.0, 0.1, 0.0, 0.05])
    backend.replace_document("b", "secret.md", [secret])
    assert backend.lexical(["b"], "parental leave secret salary", 1)[0].document_id == "secret.md"
    for k in (1, 100):
        assert all(h.collection == "a" for h in backend.lexical(["a"], "parental leave secret salary", k))
        assert all(h.collection == "a" for h in backend.dense(["a"], [1.0, 0.1, 0.0, 0.05], k))
        filtered = backend.dense(["a"], [1.0, 0.1, 0.0, 0.05], k, {"document_id": "secret.md"})
        assert filtered == []
    assert backend.similarities(["a"], [secret.chunk_id], [1.0, 0.0, 0.0, 0.0]) == {}
    assert backend.lexical([], "parental", 5) == [] and backend.dense([], [1.0, 0, 0, 0], 5) == []
    both = backend.dense(["a", "b"], [1.0, 0.1, 0.0, 0.05], 3)
    assert {h.collection for h in both} == {"a", "b"}
    assert backend.lexical(["a", "b", "unknown"], "secret salary", 1)[0].collection == "b"


def test_concurrent_queries_from_threads(backend: IndexBackend) -> None:
    load(backend)
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(20):
                assert backend.lexical(["kb"], "laptop", 1)[0].document_id == "laptop.md"
                assert backend.dense(["kb"], [0.0, 1.0, 0.0, 0.0], 1)[0].document_id == "laptop.md"
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    backend.replace_document("kb", "extra.md", [chunk("kb", "extra.md", "extra", [0.0, 0.0, 0.0, 1.0])])
    for t in threads:
        t.join()
    assert errors == []
