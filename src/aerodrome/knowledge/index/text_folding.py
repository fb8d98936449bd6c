"""Diacritic folding for full-text search where the server cannot do it (PostgreSQL without unaccent).

``fold("Café Zürich")`` is ``"Cafe Zurich"``: Unicode NFKD, combining marks removed,
recomposed. SQLite's ``unicode61 remove_diacritics 2`` tokenizer does the same inside FTS5.
"""

from __future__ import annotations

import unicodedata


def fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return unicodedata.normalize("NFC", stripped)
