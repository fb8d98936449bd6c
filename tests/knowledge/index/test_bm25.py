"""BM25 ranking: scores checked against a hand computation, statistics after writes, both backends alike.

The PostgreSQL backend keeps its own postings and statistics (see postgres_bm25.py); these tests
pin its scores to the formula and show that deletes and replacements keep the statistics exact.
"""

from __future__ import annotations

import math
import sqlite3
from pathlib import Path

import pytest

from aerodrome.knowledge.index.base import CollectionNotFound, DimensionMismatch, IndexBackend, IndexedChunk
from aerodrome.knowledge.index.postgres import PostgresIndex
from aerodrome.knowledge.index.tokenizer import Tokenizer, porter_stem
from tests.knowledge.index.backends import make_backend
from tests.knowledge.index.corpus import DIMS, MODEL, chunk_id

# Six one-chunk documents of known lengths (no title or heading: the text is every token).
TINY = {
    "d1": "apple apple banana",  # 3 tokens
    "d2": "apple cherry cherry cherry date",  # 5
    "d3": "banana date",  # 2
    "d4": "elder fig grape",  # 3
    "d5": "fig grape",  # 2
    "d6": "grape elder elder kiwi",  # 4
}


def bm25(tf: int, length: int, df: int, n: int, avgdl: float) -> float:
    """FTS5's bm25() term score (k1 = 1.2, b = 0.75, idf floored at 1e-6), written out for the tests."""
    idf = max(math.log((n - df + 0.5) / (df + 0.5)), 1e-6)
    return idf * tf * 2.2 / (tf + 1.2 * (0.25 + 0.75 * length / avgdl))


def plain(collection: str, document_id: str, text: str, vector: list[float] | None = None,
          title: str | None = None) -> IndexedChunk:  # fmt: skip
    return IndexedChunk(
        chunk_id=chunk_id(collection, document_id, 0, text), collection=collection, document_id=document_id,
        ordinal=0, text=text, embedding=vector or [], title=title,
    )  # fmt: skip


def load_tiny(backend: IndexBackend, collection: str = "kb", docs: dict[str, str] | None = None) -> None:
    backend.ensure_collection(collection, dims=DIMS, embedding_model=MODEL)
    for document_id, text in (docs or TINY).items():
        backend.replace_document(collection, document_id, [plain(collection, document_id, text)])


@pytest.fixture
def pg(request: pytest.FixtureRequest, tmp_path: Path) -> PostgresIndex:
    index = make_backend("postgres", tmp_path, request)
    assert isinstance(index, PostgresIndex)
    request.addfinalizer(index.close)
    return index


def scores(backend: IndexBackend, query: str, collection: str = "kb") -> dict[str, float]:
    return {h.document_id: h.score for h in backend.lexical([collection], query, 100)}


def scored_texts(backend: IndexBackend, query: str, collection: str) -> list[tuple[str, float]]:
    return sorted((h.text, h.score) for h in backend.lexical([collection], query, 100))


def test_postgres_scores_are_bm25_by_hand(pg: PostgresIndex) -> None:
    load_tiny(pg)
    n, avgdl = 6, 19 / 6
    assert scores(pg, "apple") == pytest.approx(
        {"d1": bm25(2, 3, 2, n, avgdl), "d2": bm25(1, 5, 2, n, avgdl)}, rel=1e-9
    )
    # Two terms add up; the rarer term (cherry, df 1) weighs more than banana (df 2).
    assert scores(pg, "cherry banana") == pytest.approx(
        {"d2": bm25(3, 5, 1, n, avgdl), "d1": bm25(1, 3, 2, n, avgdl), "d3": bm25(1, 2, 2, n, avgdl)},
        rel=1e-9,
    )
    # Same tf, same df: the shorter chunk ranks first (length normalisation).
    ranked = pg.lexical(["kb"], "banana", 10)
    assert [h.document_id for h in ranked] == ["d3", "d1"]
    # A term in more than half of the chunks gets FTS5's floor idf, not a negative one.
    assert scores(pg, "grape") == pytest.approx(
        {d: bm25(1, length, 3, n, avgdl) for d, length in (("d4", 3), ("d5", 2), ("d6", 4))}, rel=1e-9
    )
    assert all(0 < s < 1e-5 for s in scores(pg, "grape").values())


def test_postgres_title_and_heading_count_as_text(pg: PostgresIndex) -> None:
    pg.ensure_collection("kb", dims=DIMS, embedding_model=MODEL)
    pg.replace_document("kb", "t", [plain("kb", "t", "banana date", title="Apple")])
    for document_id, text in TINY.items():
        if document_id != "d1":
            pg.replace_document("kb", document_id, [plain("kb", document_id, text)])
    n, avgdl = 6, (3 + 5 + 2 + 3 + 2 + 4) / 6
    assert scores(pg, "apple") == pytest.approx(
        {"t": bm25(1, 3, 2, n, avgdl), "d2": bm25(1, 5, 2, n, avgdl)}, rel=1e-9
    )


def test_postgres_statistics_follow_deletes_and_replacements(pg: PostgresIndex) -> None:
    load_tiny(pg)
    pg.replace_document("kb", "d1", [plain("kb", "d1", "apple kiwi kiwi kiwi kiwi kiwi kiwi")])  # longer
    pg.replace_document("kb", "d2", [plain("kb", "d2", f"apple cherry part {i}") for i in range(2)])
    pg.delete_document("kb", "d4")
    pg.replace_document("kb", "d5", [])  # a document without chunks
    pg.delete_document("kb", "no-such-document")
    final = {"d1": "apple kiwi kiwi kiwi kiwi kiwi kiwi", "d3": "banana date", "d6": "grape elder elder kiwi"}
    fresh = {"d1": final["d1"], "d2.0": "apple cherry part 0", "d2.1": "apple cherry part 1",
             "d3": final["d3"], "d6": final["d6"]}  # fmt: skip
    load_tiny(pg, "fresh", fresh)
    assert pg.count("kb") == pg.count("fresh") == 5
    for query in ("apple", "kiwi", "cherry part", "grape elder banana", "apple kiwi date"):
        mutated, rebuilt = scored_texts(pg, query, "kb"), scored_texts(pg, query, "fresh")
        assert [text for text, _ in mutated] == [text for text, _ in rebuilt], query
        assert [score for _, score in mutated] == pytest.approx([score for _, score in rebuilt], rel=1e-9), (
            query
        )
    n, avgdl = 5, (7 + 4 + 4 + 2 + 4) / 5  # apple: d1 (tf 1, 7 tokens) and d2's two chunks (4 tokens)
    assert max(scores(pg, "apple").values()) == pytest.approx(bm25(1, 4, 3, n, avgdl), rel=1e-9)
    conn = pg._conn()
    orphans = conn.execute(
        "SELECT count(*) FROM knowledge_postings p LEFT JOIN knowledge_chunks c ON c.id = p.chunk WHERE c.id IS NULL"
    ).fetchone()
    assert orphans == (0,)
    pg.drop_collection("kb")
    assert conn.execute("SELECT count(*) FROM knowledge_postings p JOIN knowledge_chunks c ON c.id = p.chunk"
                        " JOIN knowledge_collections k ON k.id = c.collection_id WHERE k.name = 'fresh'"
                        ).fetchone() == conn.execute("SELECT count(*) FROM knowledge_postings").fetchone()  # fmt: skip


def test_postgres_statistics_span_the_queried_collections(pg: PostgresIndex) -> None:
    load_tiny(pg, "a", {k: TINY[k] for k in ("d1", "d2", "d3")})
    load_tiny(pg, "b", {k: TINY[k] for k in ("d4", "d5", "d6")})
    load_tiny(pg, "both")
    together = {h.document_id: h.score for h in pg.lexical(["a", "b"], "apple grape", 100)}
    assert together == pytest.approx(scores(pg, "apple grape", "both"), rel=1e-9)


def test_batched_replace_equals_one_by_one(pg: PostgresIndex) -> None:
    load_tiny(pg)
    pg.ensure_collection("batch", dims=DIMS, embedding_model=MODEL)
    pg.replace_documents("batch", {d: [plain("batch", d, text)] for d, text in TINY.items()})
    pg.replace_documents("batch", {"d1": [plain("batch", "d1", "apple")], "d2": []})
    pg.replace_document("kb", "d1", [plain("kb", "d1", "apple")])
    pg.delete_document("kb", "d2")
    assert pg.count("batch") == pg.count("kb") == 5
    for query in ("apple", "banana date", "grape kiwi"):
        assert scores(pg, query, "batch") == pytest.approx(scores(pg, query), rel=1e-9)


def test_postgres_writes_notice_what_another_process_changed(pg: PostgresIndex) -> None:
    load_tiny(pg)
    other = PostgresIndex(pg._url)
    try:
        other.drop_collection("kb")
        other.ensure_collection("kb", dims=2, embedding_model="small")  # a new id and other dims
        with pytest.raises(DimensionMismatch):
            pg.replace_document("kb", "v", [plain("kb", "v", "four dims", [1.0, 0.0, 0.0, 0.0])])
        pg.replace_document("kb", "v", [plain("kb", "v", "two dims", [1.0, 0.0])])
        assert [h.document_id for h in other.dense(["kb"], [1.0, 0.0], 5)] == ["v"]
        other.drop_collection("kb")
        with pytest.raises(CollectionNotFound):
            pg.replace_document("kb", "w", [plain("kb", "w", "gone")])
    finally:
        other.close()


@pytest.mark.parametrize("kind", ["sqlite-numpy", "postgres"])
def test_filtered_lexical_filters_before_the_top_k(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    backend = make_backend(kind, tmp_path, request)
    try:
        load_tiny(backend)
        [hit] = backend.lexical(["kb"], "apple cherry", 1, {"document_id": "d1"})  # d2 ranks first unfiltered
        assert hit.document_id == "d1"
        assert backend.lexical(["kb"], "apple", 5, {"document_id": ["d3", "d4"]}) == []
    finally:
        backend.close()


def test_both_backends_rank_alike(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    docs = {
        "leave": "Parental leave lasts sixteen weeks; leave requests go to HR.",
        "annual": "Annual holiday requests go through the HR portal every year.",
        "laptop": "Laptop replacement happens every three years for every employee.",
        "refund": "Refunds are issued within thirty days of purchase, refunds of travel too.",
        "phishing": "Report suspicious emails and phishing to the security team at once.",
        "conges": "Le congé parental dure seize semaines.",
        "security": "Security training: phishing, passwords, laptops and travel.",
    }
    ranked = {}
    for kind in ("sqlite-numpy", "postgres"):
        backend = make_backend(kind, tmp_path, request)
        try:
            load_tiny(backend, "kb", docs)
            ranked[kind] = [
                [h.document_id for h in backend.lexical(["kb"], q, 10)]
                for q in ("parental leave weeks", "laptops replaced", "phishing security travel",
                          "requests every year", "congés refunds")
            ]  # fmt: skip
        finally:
            backend.close()
    assert ranked["postgres"] == ranked["sqlite-numpy"]


def fts5_tokens(text: str) -> list[str]:
    conn = sqlite3.connect(":memory:")
    try:
        conn.execute("CREATE VIRTUAL TABLE t USING fts5(x, tokenize='porter unicode61 remove_diacritics 2')")
    except sqlite3.OperationalError:
        pytest.skip("this sqlite3 has no FTS5")
    conn.execute("CREATE VIRTUAL TABLE v USING fts5vocab(t, 'instance')")
    conn.execute("INSERT INTO t (x) VALUES (?)", (text,))
    return [row[0] for row in conn.execute("SELECT term FROM v ORDER BY offset")]


def test_tokenizer_stems_like_fts5() -> None:
    root = Path(__file__).resolve().parents[3]
    words = (
        "caresses ponies ties caress cats feed agreed plastered bled motoring sing conflated troubled sized"
        " hopping tanned falling hissing fizzed failing filing happy sky relational conditional rational"
        " valenci hesitanci digitizer conformabli radicalli differentli vileli analogousli vietnamization"
        " predication operator feudalism decisiveness hopefulness callousness formaliti sensitiviti"
        " sensibiliti triplicate formative formalize electriciti electrical hopeful goodness revival"
        " allowance inference airliner gyroscopic adjustable defensible irritant replacement adjustment"
        " dependent adoption homologou communism activate angulariti homologous effective bowdlerize"
        " probate rate cease controll roll generalizations oscillators aed ied eed yyy sky y by dying"
        " Café naïve ÉCOLE Zürich µg H₂O km² ﬁnal ½ x_y 日本語 \u017ftrong αβγ ς"
    )
    for path in sorted((root / "docs").glob("*.md"))[:8]:  # Latin script only (FTS5 keeps Greek accents)
        words += " " + "".join(ch for ch in path.read_text(encoding="utf-8") if ord(ch) < 0x370)
    assert Tokenizer().tokens(words) == fts5_tokens(words)
    assert porter_stem("a" * 65) == "a" * 65 and porter_stem("is") == "is"  # passed through, as FTS5 does
