"""Index terms as SQLite's FTS5 makes them (``porter unicode61 remove_diacritics 2``), in Python.

The PostgreSQL backend counts terms itself (for its BM25 postings), so both backends
must cut and stem text alike to rank alike. :class:`Tokenizer` does what the SQLite
backend's FTS5 tokenizer does:

* diacritics folded (:func:`~aerodrome.knowledge.index.text_folding.fold`) and lower case;
* tokens are runs of Unicode letters and digits (``unicode61``: everything else separates);
* each token stemmed with the rules of FTS5's ``porter`` tokenizer, which is Porter's
  original 1980 algorithm applied to the token's UTF-8 bytes (tokens shorter than 3 or
  longer than 64 bytes are kept as they are; non-ASCII bytes count as consonants).

Nothing is dropped: stop words are indexed (and counted in a chunk's length) as FTS5
indexes them; :func:`~aerodrome.knowledge.index.terms.query_terms` drops them from queries.
A test checks the stems against SQLite's own tokenizer.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from aerodrome.knowledge.index.text_folding import fold

_WORD = re.compile(r"[^\W_]+", re.UNICODE)
_MIN_BYTES, _MAX_BYTES = 3, 64  # FTS5 passes shorter and longer tokens through unstemmed
_CACHE_LIMIT = 200_000  # distinct words remembered per tokenizer (stemming is the costly part)
# Case folding beyond str.lower() that FTS5's (simple) case folding does: micro sign, long s, Greek variants.
_FOLD_CASE = str.maketrans("\u00b5\u017f\u03c2\u03d0\u03d1\u03d5\u03d6\u03f0\u03f1\u03f5\u1e9b\u1fbe",
                           "\u03bc\u0073\u03c3\u03b2\u03b8\u03c6\u03c0\u03ba\u03c1\u03b5\u1e61\u03b9")  # fmt: skip


def _is_vowel(c: int, y_is_vowel: bool) -> bool:
    return c in b"aeiou" or (y_is_vowel and c == 0x79)  # 'y' after a consonant is a vowel


def _gobble_vc(s: bytes, prev_consonant: bool) -> int:
    """Length of the shortest prefix of ``s`` holding a vowel followed by a consonant; 0 if none."""
    consonant = prev_consonant
    i = 0
    while i < len(s):
        consonant = not _is_vowel(s[i], consonant)
        if not consonant:
            break
        i += 1
    i += 1
    while i < len(s):
        consonant = not _is_vowel(s[i], consonant)
        if consonant:
            return i + 1
        i += 1
    return 0


def _m_gt0(s: bytes) -> bool:
    return _gobble_vc(s, False) > 0


def _m_gt1(s: bytes) -> bool:
    n = _gobble_vc(s, False)
    return n > 0 and _gobble_vc(s[n:], True) > 0


def _m_eq1(s: bytes) -> bool:
    n = _gobble_vc(s, False)
    return n > 0 and _gobble_vc(s[n:], True) == 0


def _o_star(s: bytes) -> bool:
    """Ends consonant-vowel-consonant, the last not w, x or y."""
    if not s or s[-1] in b"wxy":
        return False
    mask, consonant = 0, False
    for c in s:
        consonant = not _is_vowel(c, consonant)
        mask = ((mask << 1) | consonant) & 0x7
    return mask == 0b101


def _m_gt1_s_or_t(s: bytes) -> bool:
    return bool(s) and s[-1] in b"st" and _m_gt1(s)


def _has_vowel(s: bytes) -> bool:
    return any(_is_vowel(c, i > 0) for i, c in enumerate(s))


Rule = tuple[bytes, bytes, Callable[[bytes], bool]]


def _rules(
    table: dict[str, list[tuple[str, str]]], condition: Callable[[bytes], bool]
) -> dict[int, list[Rule]]:
    return {
        ord(key): [(suffix.encode(), out.encode(), condition) for suffix, out in rules]
        for key, rules in table.items()
    }


# Rules by the word's second-to-last letter; in each list only the first matching suffix is tried.
_STEP2 = _rules(
    {
        "a": [("ational", "ate"), ("tional", "tion")],
        "c": [("enci", "ence"), ("anci", "ance")],
        "e": [("izer", "ize")],
        "g": [("logi", "log")],
        "l": [("bli", "ble"), ("alli", "al"), ("entli", "ent"), ("eli", "e"), ("ousli", "ous")],
        "o": [("ization", "ize"), ("ation", "ate"), ("ator", "ate")],
        "s": [("alism", "al"), ("iveness", "ive"), ("fulness", "ful"), ("ousness", "ous")],
        "t": [("aliti", "al"), ("iviti", "ive"), ("biliti", "ble")],
    },
    _m_gt0,
)
_STEP3 = _rules(
    {
        "a": [("ical", "ic")],
        "s": [("ness", "")],
        "t": [("icate", "ic"), ("iciti", "ic")],
        "u": [("ful", "")],
        "v": [("ative", "")],
        "z": [("alize", "al")],
    },
    _m_gt0,
)
_STEP4 = _rules(
    {
        "a": [("al", "")],
        "c": [("ance", ""), ("ence", "")],
        "e": [("er", "")],
        "i": [("ic", "")],
        "l": [("able", ""), ("ible", "")],
        "n": [("ant", ""), ("ement", ""), ("ment", ""), ("ent", "")],
        "o": [("ion", ""), ("ou", "")],
        "s": [("ism", "")],
        "t": [("ate", ""), ("iti", "")],
        "u": [("ous", "")],
        "v": [("ive", "")],
        "z": [("ize", "")],
    },
    _m_gt1,
)
_STEP4[ord("o")][0] = (b"ion", b"", _m_gt1_s_or_t)
_STEP1B2 = {ord("a"): (b"at", b"ate"), ord("b"): (b"bl", b"ble"), ord("i"): (b"iz", b"ize")}


def _apply(word: bytes, rules: dict[int, list[Rule]]) -> bytes:
    if len(word) < 2:
        return word
    for suffix, out, condition in rules.get(word[-2], ()):
        if len(word) > len(suffix) and word.endswith(suffix):
            stem = word[: -len(suffix)]
            return stem + out if condition(stem) else word
    return word


def _step1ab(w: bytes) -> bytes:
    if w.endswith(b"s"):
        if w[-2:-1] == b"e":
            w = w[:-2] if (len(w) > 4 and w[-4:-2] == b"ss") or (len(w) > 3 and w[-3] == 0x69) else w[:-1]
        elif w[-2:-1] != b"s":
            w = w[:-1]
    removed = False
    if w[-2:-1] == b"e":
        if len(w) > 3 and w.endswith(b"eed"):
            if _m_gt0(w[:-3]):
                w = w[:-1]
        elif len(w) > 2 and w.endswith(b"ed") and _has_vowel(w[:-2]):
            w, removed = w[:-2], True
    elif w[-2:-1] == b"n" and len(w) > 3 and w.endswith(b"ing") and _has_vowel(w[:-3]):
        w, removed = w[:-3], True
    if removed:
        rule = _STEP1B2.get(w[-2]) if len(w) >= 2 else None
        if rule is not None and len(w) > 2 and w.endswith(rule[0]):
            w = w[:-2] + rule[1]
        elif len(w) >= 2 and not _is_vowel(w[-1], False) and w[-1] not in b"lsz" and w[-1] == w[-2]:
            w = w[:-1]
        elif _m_eq1(w) and _o_star(w):
            w += b"e"
    return w


def porter_stem(word: str) -> str:
    """The stem FTS5's ``porter`` tokenizer gives a lower-case token."""
    raw = word.encode()
    if not _MIN_BYTES <= len(raw) <= _MAX_BYTES:
        return word
    w = _step1ab(raw)
    if w.endswith(b"y") and _has_vowel(w[:-1]):
        w = w[:-1] + b"i"
    w = _apply(_apply(_apply(w, _STEP2), _STEP3), _STEP4)
    if w.endswith(b"e") and (_m_gt1(w[:-1]) or (_m_eq1(w[:-1]) and not _o_star(w[:-1]))):
        w = w[:-1]
    if len(w) > 1 and w.endswith(b"ll") and _m_gt1(w[:-1]):
        w = w[:-1]
    return w.decode(errors="ignore")


class Tokenizer:
    """Folded, lower-cased, stemmed word tokens of a text, as FTS5 indexes them (stems memoised)."""

    def __init__(self) -> None:
        self._stems: dict[str, str] = {}

    def stem(self, word: str) -> str:
        stem = self._stems.get(word)
        if stem is None:
            if len(self._stems) >= _CACHE_LIMIT:
                self._stems = {}
            stem = self._stems[word] = porter_stem(word)
        return stem

    def tokens(self, text: str) -> list[str]:
        text = text.lower() if text.isascii() else fold(text).lower().translate(_FOLD_CASE)
        stems = self._stems
        return [stems.get(word) or self.stem(word) for word in _WORD.findall(text)]
