"""The SQLite index ranks at most a budget of full-text matches: the most common terms go first."""

from __future__ import annotations

from pathlib import Path

import pytest

from aerodrome.knowledge.index.sqlite import SQLiteIndex
from tests.knowledge.index.corpus import chunk


def _index(path: Path, budget: int) -> SQLiteIndex:
    index = SQLiteIndex(path, vector_engine="numpy", lexical_budget=budget)
    index.ensure_collection("kb", dims=4, embedding_model="m")
    index.ensure_collection("other", dims=4, embedding_model="m")
    for i in range(60):  # "leave" in every chunk, "expenses" in 10, "parking" in 3
        words = ["leave"] + (["expenses"] if i % 6 == 0 else []) + (["parking"] if i % 20 == 0 else [])
        index.replace_document("kb", f"d{i}", [chunk("kb", f"d{i}", " ".join([*words, f"n{i}"]), [])])
    for i in range(20):  # kb holds more chunks (80) than any budget below: the terms are counted
        index.replace_document("kb", f"f{i}", [chunk("kb", f"f{i}", "unrelated words", [])])
    for i in range(100):  # matches in another collection do not count against kb's budget
        index.replace_document("other", f"o{i}", [chunk("other", f"o{i}", "leave", [])])
    return index


def test_under_the_budget_every_term_matches_and_scores(tmp_path: Path) -> None:
    index = _index(tmp_path / "a.db", budget=73)  # 60 + 10 + 3 in kb (160 "leave" chunks in both collections)
    hits = index.lexical(["kb"], "leave expenses parking", 100)
    assert len(hits) == 60
    assert [h.score for h in hits] == [h.score for h in _index(tmp_path / "z.db", 10**6).lexical(
        ["kb"], "leave expenses parking", 100)]  # fmt: skip
    assert {h.document_id for h in hits[:3]} == {"d0", "d20", "d40"}  # all three terms


def test_over_the_budget_the_most_common_terms_are_left_out(tmp_path: Path) -> None:
    index = _index(tmp_path / "b.db", budget=13)  # parking (3) + expenses (10) fit, leave (60) does not
    hits = index.lexical(["kb"], "leave expenses parking", 100)
    assert {h.document_id for h in hits} == {f"d{i}" for i in range(0, 60, 6)} | {"d20", "d40"}
    assert {h.document_id for h in hits[:3]} == {"d0", "d20", "d40"}
    only_rarest = _index(tmp_path / "c.db", budget=5).lexical(["kb"], "leave expenses parking", 100)
    assert {h.document_id for h in only_rarest} == {"d0", "d20", "d40"}
    one_common_term = _index(tmp_path / "d.db", budget=5).lexical(["kb"], "leave", 100)
    assert len(one_common_term) == 60  # the rarest term always matches, whatever its count


def test_budget_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="lexical_budget"):
        SQLiteIndex(tmp_path / "x.db", lexical_budget=0)


def test_a_collection_within_the_budget_is_never_pruned(tmp_path: Path) -> None:
    index = _index(tmp_path / "e.db", budget=80)  # 80 chunks in kb: all three terms (73 matches in all)
    assert len(index.lexical(["kb"], "leave expenses parking", 100)) == 60
    small = _index(tmp_path / "f.db", budget=79)  # the terms are counted: 73 fit
    assert len(small.lexical(["kb"], "leave expenses parking", 100)) == 60
    smaller = _index(tmp_path / "g.db", budget=72)  # leave (60) no longer fits
    assert len(smaller.lexical(["kb"], "leave expenses parking", 100)) == 12
