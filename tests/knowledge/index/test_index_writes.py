"""Writes of an index backend: replace, delete, drop, counts, embedding model and dims changes."""

from __future__ import annotations

from typing import Any

import pytest

from aerodrome.knowledge.index.base import CollectionNotFound, DimensionMismatch, IndexBackend
from tests.knowledge.index.corpus import DIMS, DOCS, MODEL, chunk, load


def test_replace_document_replaces_every_chunk(backend: IndexBackend) -> None:
    backend.ensure_collection("kb", dims=DIMS, embedding_model=MODEL)
    first = [chunk("kb", "a.md", f"old part {i} zebra", [1.0, 0.0, 0.0, float(i)], i) for i in range(3)]
    backend.replace_document("kb", "a.md", first)
    assert backend.count("kb") == 3
    backend.replace_document("kb", "a.md", [chunk("kb", "a.md", "new text giraffe", [0.0, 1.0, 0.0, 0.0])])
    assert backend.count("kb") == 1
    assert backend.lexical(["kb"], "zebra", 10) == []
    [hit] = backend.lexical(["kb"], "giraffe", 10)
    assert (hit.document_id, hit.text, hit.uri, hit.page, hit.heading) == (
        "a.md", "new text giraffe", "file:///kb/a.md", 1, "Policy")  # fmt: skip
    assert [h.text for h in backend.dense(["kb"], [1.0, 0.0, 0.0, 0.0], 10)] == ["new text giraffe"]


def test_delete_document_and_drop_collection(backend: IndexBackend) -> None:
    load(backend)
    load(backend, "other")
    assert backend.count("kb") == len(DOCS)
    backend.delete_document("kb", "leave.md")
    assert backend.count("kb") == len(DOCS) - 1
    assert all(h.document_id != "leave.md" for h in backend.lexical(["kb"], "parental leave", 10))
    assert all(h.document_id != "leave.md" for h in backend.dense(["kb"], [1.0, 0.1, 0.0, 0.05], 10))
    backend.delete_document("kb", "no-such-doc")
    backend.drop_collection("kb")
    assert backend.count("kb") == 0
    assert backend.embedding_model("kb") is None
    assert backend.lexical(["kb"], "parental", 10) == []
    assert backend.dense(["kb"], [1.0, 0.0, 0.0, 0.0], 10) == []
    assert backend.count("other") == len(DOCS)  # the other collection is untouched
    backend.drop_collection("kb")  # idempotent
    load(backend)  # and it can be created again
    assert backend.count("kb") == len(DOCS)
    assert len(backend.dense(["kb"], [1.0, 0.0, 0.0, 0.0], 100)) == len(DOCS)


def test_replace_needs_the_collection_and_its_dims(backend: IndexBackend) -> None:
    with pytest.raises(CollectionNotFound):
        backend.replace_document("nope", "a", [chunk("nope", "a", "x", [1.0, 0, 0, 0])])
    backend.ensure_collection("kb", dims=DIMS, embedding_model=MODEL)
    with pytest.raises(DimensionMismatch):
        backend.replace_document("kb", "a", [chunk("kb", "a", "x", [1.0, 0.0])])
    with pytest.raises(DimensionMismatch):
        backend.dense(["kb"], [1.0, 0.0], 5)
    assert backend.count("kb") == 0


def test_chunks_without_vectors_are_lexical_only(backend: IndexBackend) -> None:
    backend.ensure_collection("kb", dims=DIMS, embedding_model=MODEL)
    backend.replace_document("kb", "a", [chunk("kb", "a", "only words here", [])])
    backend.replace_document("kb", "b", [chunk("kb", "b", "zero vector words", [0.0] * DIMS)])
    assert backend.count("kb") == 2
    assert {h.document_id for h in backend.lexical(["kb"], "words", 10)} == {"a", "b"}
    assert backend.dense(["kb"], [1.0, 0.0, 0.0, 0.0], 10) == []


def test_changing_dims_or_model_drops_vectors(backend: IndexBackend) -> None:
    load(backend)
    backend.ensure_collection("kb", dims=DIMS, embedding_model=MODEL)  # unchanged: keeps everything
    assert len(backend.dense(["kb"], [1.0, 0.0, 0.0, 0.0], 10)) == len(DOCS)
    backend.ensure_collection("kb", dims=DIMS, embedding_model="another-model")
    assert backend.embedding_model("kb") == "another-model"
    assert backend.dense(["kb"], [1.0, 0.0, 0.0, 0.0], 10) == []  # vectors dropped: re-embed
    assert backend.count("kb") == len(DOCS)  # text stays searchable
    assert backend.lexical(["kb"], "refunds", 3)[0].document_id == "refund.md"
    backend.ensure_collection("kb", dims=3, embedding_model="small")
    with pytest.raises(DimensionMismatch):
        backend.replace_document("kb", "a", [chunk("kb", "a", "x", [1.0, 0.0, 0.0, 0.0])])
    backend.replace_document("kb", "v3.md", [chunk("kb", "v3.md", "three dims", [0.0, 1.0, 0.0])])
    hits = backend.dense(["kb"], [0.0, 1.0, 0.0], 10)
    assert [h.document_id for h in hits] == ["v3.md"]
    assert hits[0].dense_score == pytest.approx(1.0, abs=1e-5)


def test_metadata_round_trips(backend: IndexBackend) -> None:
    backend.ensure_collection("kb", dims=DIMS, embedding_model=MODEL)
    metadata: dict[str, Any] = {"lang": "en", "tags": ["a", "b"], "nested": {"k": 1}, "ünï": "cödé"}
    backend.replace_document("kb", "m", [chunk("kb", "m", "metadata check", [1.0, 0, 0, 0], 0, metadata)])
    [hit] = backend.lexical(["kb"], "metadata", 5)
    assert hit.metadata == metadata
    assert hit.title == "M"


def test_replace_documents_writes_a_batch_like_one_by_one(backend: IndexBackend) -> None:
    backend.ensure_collection("kb", dims=DIMS, embedding_model=MODEL)
    backend.ensure_collection("one", dims=DIMS, embedding_model=MODEL)
    backend.replace_document("kb", "a.md", [chunk("kb", "a.md", "old zebra", [1.0, 0.0, 0.0, 0.0])])
    batch = {
        doc: [chunk("kb", doc, f"{text} part {i}", vector, i, metadata) for i in range(2)]
        for doc, (text, vector, metadata) in DOCS.items()
    }
    batch["a.md"] = [chunk("kb", "a.md", "new giraffe", [0.0, 1.0, 0.0, 0.0])]  # replaces the old chunk
    batch["empty.md"] = []
    backend.replace_documents("kb", batch)
    for doc, chunks in batch.items():
        backend.replace_document("one", doc, [chunk("one", doc, c.text, list(c.embedding), c.ordinal, c.metadata)
                                             for c in chunks])  # fmt: skip
    assert backend.count("kb") == backend.count("one") == 2 * len(DOCS) + 1
    assert backend.lexical(["kb"], "zebra", 10) == []
    for query in ("parental leave", "laptop refunds", "giraffe"):
        got = [(h.document_id, h.ordinal, round(h.score, 9)) for h in backend.lexical(["kb"], query, 20)]
        assert got == [
            (h.document_id, h.ordinal, round(h.score, 9)) for h in backend.lexical(["one"], query, 20)
        ]
    vector = [1.0, 0.1, 0.0, 0.0]
    assert [(h.document_id, h.ordinal) for h in backend.dense(["kb"], vector, 20)] == [
        (h.document_id, h.ordinal) for h in backend.dense(["one"], vector, 20)
    ]


def test_replace_documents_is_all_or_nothing(backend: IndexBackend) -> None:
    backend.ensure_collection("kb", dims=DIMS, embedding_model=MODEL)
    backend.replace_document("kb", "a.md", [chunk("kb", "a.md", "kept zebra", [1.0, 0.0, 0.0, 0.0])])
    with pytest.raises(DimensionMismatch):
        backend.replace_documents("kb", {
            "a.md": [chunk("kb", "a.md", "new giraffe", [0.0, 1.0, 0.0, 0.0])],
            "b.md": [chunk("kb", "b.md", "two dims", [1.0, 0.0])],
        })  # fmt: skip
    assert backend.count("kb") == 1
    assert [h.text for h in backend.lexical(["kb"], "zebra giraffe", 10)] == ["kept zebra"]
    with pytest.raises(CollectionNotFound):
        backend.replace_documents("nope", {"a": [chunk("nope", "a", "x", [1.0, 0, 0, 0])]})
