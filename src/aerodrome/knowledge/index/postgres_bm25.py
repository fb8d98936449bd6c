"""BM25 on PostgreSQL: postings written with each chunk, ranked by one SQL query.

The PostgreSQL backend keeps its own inverted index, so its lexical score is the same
BM25 as SQLite's FTS5 ``bm25()`` (k1 = 1.2, b = 0.75):

    score(chunk) = Σ over query terms t of idf(t) · tf · (k1 + 1) / (tf + k1 · (1 - b + b · length / avgdl))
    idf(t) = ln((N - df(t) + 0.5) / (df(t) + 0.5)), floored at 1e-6 (FTS5's rule)

where tf counts the term in the chunk's title, heading and text alike (the SQLite backend's
column weights are all 1), ``length`` is the chunk's token count (title, heading and text,
stop words included) and N, avgdl and df are over the queried collections. Terms are made
by :class:`~aerodrome.knowledge.index.tokenizer.Tokenizer`, FTS5's tokenizer in Python.

Structures (created by :mod:`~aerodrome.knowledge.index.postgres_layout`):

* ``knowledge_postings (collection_id, term, chunk, tf, length)``, primary key
  ``(collection_id, term, chunk) INCLUDE (tf, length)``: a query reads each of its terms'
  postings as one range of that index (an index-only scan once vacuumed);
* ``knowledge_chunks.length`` and ``.terms`` (its distinct terms, to delete its postings
  by primary key);
* ``knowledge_collections.chunks`` and ``.tokens`` (N and the total length), changed by
  every write in the same transaction, so the statistics are never stale.

df is counted from the postings when the query runs (no per-term counters to keep).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

from aerodrome.knowledge.index.terms import query_terms
from aerodrome.knowledge.index.text_folding import fold
from aerodrome.knowledge.index.tokenizer import Tokenizer

K1 = 1.2
B = 0.75
IDF_FLOOR = 1e-6
K = TypeVar("K")


@dataclass(slots=True)
class ChunkTerms:
    length: int  # tokens in title, heading and text
    tf: dict[str, int]  # term -> occurrences

    @property
    def terms(self) -> str:
        """The distinct terms, space-separated (terms never hold spaces)."""
        return " ".join(self.tf)


def chunk_terms(tokenizer: Tokenizer, title: str | None, heading: str | None, text: str) -> ChunkTerms:
    counts: Counter[str] = Counter()
    for part in (title, heading, text):
        if part:
            counts.update(tokenizer.tokens(part))
    return ChunkTerms(sum(counts.values()), dict(counts))


def query_stems(tokenizer: Tokenizer, query: str) -> list[str]:
    """The query's terms (see :func:`query_terms`), stemmed; a stem twice counts twice, as in FTS5."""
    return [stem for _, stems in term_stems(tokenizer, query) for stem in stems]


def term_stems(tokenizer: Tokenizer, query: str) -> list[tuple[str, list[str]]]:
    """Each query term (see :func:`query_terms`) with its stems (nearly always one), in query order."""
    return [(term, tokenizer.tokens(term)) for term in query_terms(fold(query))]


# Each stem's postings in the collections, counted up to a cap (the lexical budget's term counts).
COUNT_STEMS = """
SELECT s.stem, (SELECT count(*) FROM (SELECT 1 FROM knowledge_postings p
                WHERE p.collection_id = ANY(%(collections)s) AND p.term = s.stem LIMIT %(cap)s) AS m)
FROM unnest(%(stems)s::text[]) AS s(stem)
"""


def posting_arrays(keys: Sequence[K], terms: Sequence[ChunkTerms]) -> tuple[list[K], list[str], list[int]]:
    """(chunk key, term, tf) columns of every posting of the given chunks, for ``unnest``."""
    owners: list[K] = []
    words: list[str] = []
    counts: list[int] = []
    for key, chunk in zip(keys, terms, strict=True):
        owners.extend([key] * len(chunk.tf))
        words.extend(chunk.tf)
        counts.extend(chunk.tf.values())
    return owners, words, counts


# Writes chunks (columns as arrays), their postings and the collection's statistics;
# a chunk whose chunk_id the collection already holds is skipped with its postings.
INSERT_CHUNKS = """
WITH new AS (
    INSERT INTO knowledge_chunks (collection_id, chunk_id, document_id, ordinal, text, title, uri, heading, page,
                                  metadata, embedding, length, terms)
    SELECT %(collection)s, r.chunk_id, r.document_id, r.ordinal, r.text, r.title, r.uri, r.heading, r.page,
           r.metadata, r.embedding, r.length, string_to_array(r.terms, ' ')
    FROM unnest(%(chunk_ids)s::text[], %(documents)s::text[], %(ordinals)s::int[], %(texts)s::text[], %(titles)s::text[],
                %(uris)s::text[], %(headings)s::text[], %(pages)s::int[], %(metadata)s::jsonb[],
                %(embeddings)s::vector[], %(lengths)s::int[], %(terms)s::text[])
         AS r(chunk_id, document_id, ordinal, text, title, uri, heading, page, metadata, embedding, length, terms)
    ON CONFLICT (collection_id, chunk_id) DO NOTHING
    RETURNING id, chunk_id, length),
posted AS (
    INSERT INTO knowledge_postings (collection_id, term, chunk, tf, length)
    SELECT %(collection)s, p.term, new.id, p.tf, new.length
    FROM unnest(%(posting_chunks)s::text[], %(posting_terms)s::text[], %(posting_tfs)s::int[]) AS p(chunk_id, term, tf)
    JOIN new ON new.chunk_id = p.chunk_id)
UPDATE knowledge_collections
SET chunks = chunks + (SELECT count(*) FROM new), tokens = tokens + (SELECT coalesce(sum(length), 0) FROM new)
WHERE id = %(collection)s AND EXISTS (SELECT 1 FROM new)
"""
# Deletes some documents' chunks, their postings (by primary key) and their part of the statistics.
DELETE_DOCUMENTS = """
WITH gone AS (
    DELETE FROM knowledge_chunks WHERE collection_id = %(collection)s AND document_id = ANY(%(documents)s)
    RETURNING id, length, terms),
dropped AS (
    DELETE FROM knowledge_postings p USING gone, unnest(gone.terms) AS t(term)
    WHERE p.collection_id = %(collection)s AND p.term = t.term AND p.chunk = gone.id)
UPDATE knowledge_collections
SET chunks = chunks - (SELECT count(*) FROM gone), tokens = tokens - (SELECT coalesce(sum(length), 0) FROM gone)
WHERE id = %(collection)s AND EXISTS (SELECT 1 FROM gone)
"""


def rank_sql(columns: str, where: str) -> str:
    """The BM25 query: postings of the query terms in the collections, scored, best ``k`` with their rows.

    Parameters in order: stems, collection ids, stems, N, avgdl, [k when unfiltered], filter parameters, k.
    Unfiltered, the best k are chosen from the postings alone before any chunk row is read; filtered,
    the filter applies to every scored chunk before the best k are chosen (never after).
    """
    top = "" if where else " ORDER BY score DESC, p.chunk LIMIT %s"
    return f"""
WITH q AS (SELECT term, count(*) AS occurrences FROM unnest(%s::text[]) AS term GROUP BY term),
p AS MATERIALIZED (
    SELECT p.term, p.chunk, p.tf, p.length FROM knowledge_postings p
    WHERE p.collection_id = ANY(%s) AND p.term = ANY(%s::text[])),
w AS (
    SELECT p.term, q.occurrences * greatest(ln((%s::float8 - count(*) + 0.5) / (count(*) + 0.5)), {IDF_FLOOR}) AS idf
    FROM p JOIN q ON q.term = p.term GROUP BY p.term, q.occurrences),
s AS (
    SELECT p.chunk, sum(w.idf * p.tf * {K1 + 1} / (p.tf + {K1}::float8 * ({1 - B}::float8 + {B}::float8 * p.length / %s::float8))) AS score
    FROM p JOIN w ON w.term = p.term GROUP BY p.chunk{top})
SELECT {columns}, s.score FROM s JOIN knowledge_chunks c ON c.id = s.chunk
JOIN knowledge_collections k ON k.id = c.collection_id{f" WHERE {where}" if where else ""}
ORDER BY s.score DESC, c.id LIMIT %s
"""
