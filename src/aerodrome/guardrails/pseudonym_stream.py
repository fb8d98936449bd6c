"""Restoring pseudonyms in an answer that arrives in pieces.

A placeholder the model echoes (``<EMAIL_ADDRESS_1>``) may be split over chunks (``<EMAIL_AD`` then
``DRESS_1>``). :class:`StreamRestorer` releases text as soon as it cannot be part of a placeholder
and holds back the tail that still could be one; what it releases, joined, is what
:func:`aerodrome.guardrails.pii.restore` gives for the whole answer.
"""

from __future__ import annotations

import re
import string

from aerodrome.guardrails.pii import placeholder_regex

_IGNORED = re.compile(r"[\s_\-<>\[\]{}]+")  # what the tolerant pattern lets vary around the words
_OPENERS = "<[{"
_WORD = frozenset(string.ascii_letters + string.digits)  # as the pattern's look-arounds


def _normal(text: str) -> str:
    return _IGNORED.sub("", text).upper()


class StreamRestorer:
    """Feed the model's text as it comes; each call returns the text that may be shown now."""

    def __init__(self, mapping: dict[str, str]) -> None:
        self._mapping = mapping
        self._raw = ""
        self._done = 0  # how much of the raw text has been released
        self._pattern: re.Pattern[str] | None = None
        self._ordered: list[str] = []
        if mapping:
            self._pattern, self._ordered = placeholder_regex(mapping)
        self._normals = [_normal(p) for p in mapping]
        # a tolerant spelling of a placeholder is at most about twice as long as the placeholder
        self._window = 2 * max((len(p) for p in mapping), default=0) + 8

    @property
    def held(self) -> str:
        """The text received but not released yet."""
        return self._raw[self._done :]

    def feed(self, text: str) -> str:
        if self._pattern is None:
            return text
        self._raw += text
        return self._release(final=False)

    def finish(self) -> str:
        """The rest, at the end of the answer."""
        if self._pattern is None:
            return ""
        return self._release(final=True)

    def _release(self, *, final: bool) -> str:
        assert self._pattern is not None
        raw, pos = self._raw, self._done
        out: list[str] = []
        stop = len(raw)
        for m in self._pattern.finditer(raw, pos):
            if not final and not raw[m.end() :].strip():
                stop = m.start()  # what follows may still change this match (``_1`` → ``_12``)
                break
            assert m.lastgroup is not None
            out += [raw[pos : m.start()], self._mapping[self._ordered[int(m.lastgroup[1:])]]]
            pos = m.end()
        if not final:
            stop = min(stop, self._live_from(pos))
        out.append(raw[pos:stop])
        self._done = stop
        return "".join(out)

    def _live_from(self, pos: int) -> int:
        """The first position from which the rest of the text could still become a placeholder."""
        raw = self._raw
        for i in range(pos, len(raw)):
            ch = raw[i]
            starts = ch in _OPENERS or (ch in _WORD and (i == 0 or raw[i - 1] not in _WORD))
            if not starts:
                continue
            rest = _normal(raw[i : i + self._window])
            if any(p.startswith(rest) for p in self._normals):
                return i
        return len(raw)
