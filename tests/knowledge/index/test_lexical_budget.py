"""The lexical budget on both backends: the same terms chosen from the same data, so the same hits.

The rule itself lives in :mod:`aerodrome.knowledge.index.budget`; SQLite counts a term's matches
with FTS5, PostgreSQL with its postings. Each backend's hits are compared with the SQLite numpy
backend's on the same collection, for budgets that keep every term, some of them or only the rarest.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from aerodrome.knowledge.index.base import IndexBackend
from aerodrome.knowledge.index.budget import count_cap, never_pruned, rarest_within_budget
from aerodrome.knowledge.index.sqlite import SQLiteIndex
from tests.knowledge.index.backends import make_backend
from tests.knowledge.index.corpus import chunk

QUERIES = [
    "leave expenses parking",
    "parking, leave and expenses?",
    "leave",
    "leaves leave parked parking",  # two words of one stem each count (and score) twice
    "nothing matches this",
    "expenses unknownword",
]


def _fill(index: IndexBackend, *, other: bool = True) -> IndexBackend:
    index.ensure_collection("kb", dims=4, embedding_model="m")
    index.ensure_collection("other", dims=4, embedding_model="m")
    for i in range(60):  # "leave" in every chunk, "expenses" in 10, "parking" in 3
        words = ["leave"] + (["expenses"] if i % 6 == 0 else []) + (["parking"] if i % 20 == 0 else [])
        meta = {"even": i % 2 == 0}
        index.replace_document(
            "kb", f"d{i}", [chunk("kb", f"d{i}", " ".join([*words, f"n{i}"]), [], metadata=meta)]
        )
    for i in range(20):  # kb holds 80 chunks, more than any budget below but 80
        index.replace_document("kb", f"f{i}", [chunk("kb", f"f{i}", "unrelated words", [])])
    for i in range(100 if other else 0):  # matches in another collection do not count against kb's budget
        index.replace_document("other", f"o{i}", [chunk("other", f"o{i}", "leave parking", [])])
    return index


def _ranked(index: IndexBackend, query: str, **kwargs: Any) -> list[tuple[str, float]]:
    return [(h.document_id, h.score) for h in index.lexical(["kb"], query, 100, **kwargs)]


@pytest.mark.parametrize("kind", ["sqlite-vec", "postgres"])
@pytest.mark.parametrize("other", [True, False], ids=["two-collections", "one-collection"])
@pytest.mark.parametrize("budget", [80, 79, 73, 72, 13, 12, 5, 1])
def test_both_backends_choose_the_same_terms(
    kind: str, other: bool, budget: int, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Same hits; in the same order when kb is the only collection (FTS5's N and avgdl span the
    whole table, PostgreSQL's only the searched collections, so with "other" present scores differ,
    and FTS5 counts the scope column's token in a chunk's length: scores differ by a few percent)."""
    reference = _fill(
        SQLiteIndex(tmp_path / "ref.db", vector_engine="numpy", lexical_budget=budget), other=other
    )
    (tmp_path / kind).mkdir()
    index = _fill(make_backend(kind, tmp_path / kind, request, lexical_budget=budget), other=other)
    try:
        for query in QUERIES:
            for filters in (None, {"metadata.even": True}):
                expected = _ranked(reference, query, filters=filters)
                got = _ranked(index, query, filters=filters)
                assert {d for d, _ in got} == {d for d, _ in expected}, (query, filters)
                if not other:  # the same order (hence the same terms chosen and scored)
                    assert [d for d, _ in got] == [d for d, _ in expected], (query, filters)
    finally:
        index.close()
        reference.close()


@pytest.mark.parametrize("kind", ["sqlite-numpy", "postgres"])
def test_budget_effects(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    def run(budget: int, query: str) -> set[str]:
        sub = tmp_path / f"b{budget}-{len(query)}"
        sub.mkdir()
        index = _fill(make_backend(kind, sub, request, lexical_budget=budget))
        try:
            return {h.document_id for h in index.lexical(["kb"], query, 100)}
        finally:
            index.close()

    every = {f"d{i}" for i in range(60)}
    rare = {f"d{i}" for i in range(0, 60, 6)} | {"d20", "d40"}
    assert run(80, "leave expenses parking") == every  # 80 chunks in kb: never pruned, nothing counted
    assert run(73, "leave expenses parking") == every  # 3 + 10 + 60 fit
    assert run(72, "leave expenses parking") == rare  # leave (60) no longer fits
    assert run(5, "leave expenses parking") == {"d0", "d20", "d40"}  # only the rarest
    assert run(5, "leave") == every  # the rarest term always matches, whatever its count


def test_the_rule() -> None:
    assert rarest_within_budget([("a", 60), ("b", 10), ("c", 3)], 13) == ["b", "c"]
    assert rarest_within_budget([("a", 60), ("b", 10), ("c", 3)], 12) == ["c"]
    assert rarest_within_budget([("a", 60), ("b", 10), ("c", 3)], 2) == ["c"]  # the rarest always
    assert rarest_within_budget([("a", 0), ("b", 5)], 100) == ["b"]  # no match: dropped
    assert rarest_within_budget([("a", 0)], 100) == []
    assert rarest_within_budget([("x", 6), ("y", 6), ("z", 6)], 13) == ["x", "y"]  # ties: query order
    assert rarest_within_budget([("x", 21), ("y", 21)], 20) == ["x"]  # capped counts: query order
    assert count_cap(20) == 21
    assert never_pruned(20, 20) and not never_pruned(21, 20)


def test_budget_must_be_positive(request: pytest.FixtureRequest, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="lexical_budget"):
        make_backend("postgres", tmp_path, request, lexical_budget=0)
