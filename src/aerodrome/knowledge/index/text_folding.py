"""Diacritic folding for full-text search where the server cannot do it (PostgreSQL without unaccent).

``fold("Café Zürich")`` is ``"Cafe Zurich"``: canonical decomposition (NFD), combining
marks removed, recomposed. SQLite's ``unicode61 remove_diacritics 2`` tokenizer does the
same inside FTS5; like it, compatibility forms are kept (``ﬁ``, ``²`` and ``¼`` stay).
"""

from __future__ import annotations

import unicodedata


def fold(text: str) -> str:
    if text.isascii():
        return text
    decomposed = unicodedata.normalize("NFD", text)
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return unicodedata.normalize("NFC", stripped)
