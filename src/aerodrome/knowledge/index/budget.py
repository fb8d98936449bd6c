"""The lexical budget: which of a query's terms a backend ranks, shared by SQLite and PostgreSQL.

Ranking an OR query means scoring every chunk any of its terms matches; on a large
collection a common term matches most chunks. Both backends therefore rank at most
:data:`LEXICAL_BUDGET` matching chunks per query, by leaving the most common terms out:

* a search over collections holding at most ``budget`` chunks in all is never pruned (no
  query can match more chunks than that), and its terms are not even counted;
* otherwise each term's matching chunks in the searched collections are counted, stopping at
  ``budget + 1`` (a larger count only matters for the rarest term, which is always kept);
* terms with no match are dropped; the others are taken rarest first (ties: the earlier in the
  query) while the sum of their counts stays within the budget, the rarest always;
* the chosen terms keep their order in the query.

The terms left out are the most common ones: the lowest BM25 weight, and they neither match nor
score. The functions here are pure, so both backends choose the same terms from the same counts.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

LEXICAL_BUDGET = 20_000  # matching chunks a lexical query may rank
T = TypeVar("T")


def count_cap(budget: int) -> int:
    """The count at which a term's matches stop being counted (``budget + 1``)."""
    return budget + 1


def never_pruned(collection_chunks: int, budget: int) -> bool:
    """True when the searched collections hold no more chunks than the budget: every term is used."""
    return collection_chunks <= budget


def rarest_within_budget(counted: Sequence[tuple[T, int]], budget: int) -> list[T]:
    """The terms to match, in query order, from ``(term, match count)`` pairs in query order.

    Counts are expected capped at :func:`count_cap`; terms counted 0 are dropped. The rarest term
    is always kept; then the next rarest while the running sum of counts stays within ``budget``.
    """
    ranked = sorted(
        ((count, position) for position, (_, count) in enumerate(counted) if count > 0),
    )
    chosen: list[int] = []
    total = 0
    for count, position in ranked:
        if chosen and total + count > budget:
            break
        chosen.append(position)
        total += count
    return [counted[position][0] for position in sorted(chosen)]
