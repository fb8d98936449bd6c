"""Chunks follow the document's structure, overlap within a section, and map back onto its text."""

from __future__ import annotations

import itertools

import pytest
from pydantic import ValidationError

from aerodrome.knowledge.chunking import ChunkingConfig, chunk, chunk_with
from aerodrome.knowledge.documents import ChunkDraft, ParsedDocument, Section


def sentences(n: int, prefix: str = "Sentence") -> str:
    return " ".join(f"{prefix} number {i} says something useful about leave." for i in range(n))


def check_offsets(parsed: ParsedDocument, chunks: list[ChunkDraft]) -> None:
    assert [c.ordinal for c in chunks] == list(range(len(chunks)))
    for c in chunks:
        assert parsed.text[c.char_start : c.char_end] == c.text


def test_short_document_is_one_chunk_with_heading_and_page() -> None:
    parsed = ParsedDocument(title="t", sections=[Section("Short text.", heading="Leave", page=2)])
    assert chunk(parsed) == [ChunkDraft(0, "Short text.", "Leave", 2, 0, 11)]


def test_sections_of_normal_size_are_never_crossed() -> None:
    a, b = sentences(6, "Alpha"), sentences(6, "Beta")  # ~330 chars each, over min_chars
    parsed = ParsedDocument(title=None, sections=[Section(a, heading="A"), Section(b, heading="B")])
    chunks = chunk(parsed, max_chars=1200)
    assert [(c.heading, c.text) for c in chunks] == [("A", a), ("B", b)]
    check_offsets(parsed, chunks)


def test_tiny_sibling_sections_merge_under_their_parent() -> None:
    parsed = ParsedDocument(
        title="FAQ",
        sections=[
            Section("Questions people ask.", heading="FAQ"),
            Section("Twenty days.", heading="FAQ > How much leave?"),
            Section("Yes, two days a week.", heading="FAQ > Remote work?"),
            Section(sentences(30), heading="Policy"),
        ],
    )
    chunks = chunk(parsed, max_chars=600, overlap_chars=100)
    assert chunks[0].heading == "FAQ"
    assert chunks[0].text == "Questions people ask.\n\nTwenty days.\n\nYes, two days a week."
    assert all(c.heading == "Policy" for c in chunks[1:])
    check_offsets(parsed, chunks)


def test_tiny_sections_on_different_pages_stay_apart() -> None:
    parsed = ParsedDocument(title=None, sections=[Section("one", page=1), Section("two", page=2)])
    assert [(c.text, c.page) for c in chunk(parsed)] == [("one", 1), ("two", 2)]


def test_long_section_splits_on_paragraphs_first() -> None:
    paras = [sentences(4, f"P{i}") for i in range(6)]  # ~220 chars each
    parsed = ParsedDocument(title=None, sections=[Section("\n\n".join(paras), heading="H")])
    chunks = chunk(parsed, max_chars=500, overlap_chars=0)
    assert len(chunks) == 3
    assert [c.text for c in chunks] == ["\n\n".join(paras[i : i + 2]) for i in (0, 2, 4)]
    check_offsets(parsed, chunks)


def test_overlap_repeats_the_end_of_the_previous_chunk_on_a_word_boundary() -> None:
    parsed = ParsedDocument(title=None, sections=[Section(sentences(40))])
    chunks = chunk(parsed, max_chars=400, overlap_chars=80)
    assert len(chunks) > 3
    for prev, nxt in itertools.pairwise(chunks):
        assert len(prev.text) <= 400
        shared = prev.char_end - nxt.char_start
        assert 0 < shared <= 80
        assert parsed.text[nxt.char_start - 1] == " "  # starts on a word
        assert prev.text.endswith(nxt.text[:shared])
    check_offsets(parsed, chunks)
    assert chunks[-1].char_end == len(parsed.text)


def test_long_sentences_split_on_words_and_words_are_cut_last() -> None:
    words = ParsedDocument(title=None, sections=[Section(" ".join(["word"] * 300))])
    chunks = chunk(words, max_chars=100, overlap_chars=20)
    assert all(len(c.text) <= 100 and c.text.split() == ["word"] * len(c.text.split()) for c in chunks)
    blob = ParsedDocument(title=None, sections=[Section("x" * 250)])
    assert [len(c.text) for c in chunk(blob, max_chars=100, overlap_chars=20)] == [100, 100, 50]


def test_chunking_is_deterministic_and_skips_empty_sections() -> None:
    parsed = ParsedDocument(title=None, sections=[Section(""), Section("   "), Section(sentences(50))])
    first = chunk(parsed, max_chars=300)
    assert first == chunk(parsed, max_chars=300)
    check_offsets(parsed, first)


def test_config_validates_and_drives_chunk_with() -> None:
    assert ChunkingConfig().model_dump() == {"max_chars": 1200, "overlap_chars": 150, "min_chars": 200}
    with pytest.raises(ValidationError):
        ChunkingConfig(max_chars=200, overlap_chars=150)
    with pytest.raises(ValidationError):
        ChunkingConfig.model_validate({"max_chars": 1000, "size": 3})
    parsed = ParsedDocument(title=None, sections=[Section(sentences(40))])
    config = ChunkingConfig(max_chars=300, overlap_chars=50)
    assert chunk_with(parsed, config) == chunk(parsed, max_chars=300, overlap_chars=50)
