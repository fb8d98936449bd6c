"""Hybrid retrieval over an index backend: BM25 and dense candidates fused by weighted RRF.

Method (two parameters, tuned on SciFact train queries only, see docs/benchmarks.md):
each list contributes ``weight / (rrf_k + rank)`` for every chunk it holds (rank from 1);
the lexical list has weight ``1 - dense_weight``, the dense list ``dense_weight``. Each
list is ``candidates`` deep (at least ``k``). Chunks are identified by ``chunk_id``, so a
chunk found by both lists appears once; equal fused scores go to the higher cosine.

Scores, so callers can say "not found":

- ``Hit.score``: in hybrid mode the fused score divided by its maximum (a chunk ranked
  first by both lists scores 1.0); it orders results but is relative to the query.
  In lexical mode the full-text rank; in dense mode the cosine similarity.
- ``Hit.dense_score``: the cosine similarity of the chunk to the query, filled for every
  hybrid hit (also those only the lexical list found). It is absolute, so it is what
  ``min_score`` thresholds in hybrid and dense modes (all-MiniLM-L6-v2: ≈ 0.3 and below is
  usually unrelated). In lexical mode ``min_score`` applies to the full-text rank.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

from aerodrome.knowledge.index.base import Hit, IndexBackend

Mode = Literal["hybrid", "lexical", "dense"]


@dataclass(frozen=True, slots=True)
class FusionSettings:
    rrf_k: float = 60.0
    dense_weight: float = 0.4
    candidates: int = 100


def fuse(
    lexical: Sequence[Hit], dense: Sequence[Hit], settings: FusionSettings, limit: int | None = None
) -> list[Hit]:
    """Weighted reciprocal-rank fusion of two ranked lists; scores normalised so 1.0 = first in both.

    ``limit``: only the best ``limit`` fused hits are returned (and built).
    """
    weights = (1.0 - settings.dense_weight, settings.dense_weight)
    fused: dict[str, float] = {}
    merged: dict[str, Hit] = {}
    for weight, hits in zip(weights, (lexical, dense), strict=True):
        seen: set[str] = set()
        for rank, hit in enumerate(hits, start=1):
            if hit.chunk_id in seen:
                continue
            seen.add(hit.chunk_id)
            fused[hit.chunk_id] = fused.get(hit.chunk_id, 0.0) + weight / (settings.rrf_k + rank)
            previous = merged.get(hit.chunk_id)
            merged[hit.chunk_id] = hit if previous is None else _combine(previous, hit)
    best = sum(weights) / (settings.rrf_k + 1)

    def order(chunk_id: str) -> tuple[float, float, str]:  # ties: the higher cosine first
        cosine = merged[chunk_id].dense_score
        return (-fused[chunk_id], -(cosine if cosine is not None else -2.0), chunk_id)

    ordered = sorted(fused, key=order)[:limit]
    return [replace(merged[chunk_id], score=fused[chunk_id] / best) for chunk_id in ordered]


def _combine(first: Hit, second: Hit) -> Hit:
    return replace(
        first,
        lexical_score=first.lexical_score if first.lexical_score is not None else second.lexical_score,
        dense_score=first.dense_score if first.dense_score is not None else second.dense_score,
    )


def _dedupe(hits: Sequence[Hit]) -> list[Hit]:
    seen: set[str] = set()
    unique = []
    for hit in hits:
        if hit.chunk_id not in seen:
            seen.add(hit.chunk_id)
            unique.append(hit)
    return unique


def hybrid_search(
    backend: IndexBackend,
    collections: Sequence[str],
    query: str,
    query_vector: Sequence[float] | None,
    k: int,
    filters: dict[str, Any] | None = None,
    *,
    mode: Mode = "hybrid",
    min_score: float | None = None,
    settings: FusionSettings | None = None,
) -> list[Hit]:
    """The ``k`` best chunks of ``collections`` (only those: the caller passes what the principal may read).

    ``query_vector`` is the query's embedding with the collections' model; without it
    hybrid degrades to lexical. See the module docstring for scores and ``min_score``.
    """
    if k <= 0 or not collections:
        return []
    settings = settings or FusionSettings()
    if mode == "dense":
        if query_vector is None:
            raise ValueError("dense search needs a query vector")
        hits = _dedupe(backend.dense(collections, query_vector, k, filters))
        return [h for h in hits if min_score is None or (h.dense_score or 0.0) >= min_score]
    if mode == "lexical" or query_vector is None:  # hybrid without a vector is lexical
        hits = _dedupe(backend.lexical(collections, query, k, filters))
        return [h for h in hits if min_score is None or (h.lexical_score or 0.0) >= min_score]
    depth = max(k, settings.candidates)
    lexical = backend.lexical(collections, query, depth, filters)
    dense = backend.dense(collections, query_vector, depth, filters)
    fused = fuse(lexical, dense, settings, limit=k)
    missing = [hit.chunk_id for hit in fused if hit.dense_score is None]
    if missing:
        cosines = backend.similarities(collections, missing, query_vector)
        fused = [hit if hit.dense_score is not None else replace(hit, dense_score=cosines.get(hit.chunk_id))
                 for hit in fused]  # fmt: skip
    if min_score is not None:
        fused = [hit for hit in fused if hit.dense_score is not None and hit.dense_score >= min_score]
    return fused
