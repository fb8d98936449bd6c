"""Whether an answer is a refusal: the model declined instead of answering.

A heuristic on the answer's opening (where models put their refusals), in English: an
apology or an "I can't / I'm unable / I won't" followed by a verb of helping or answering.
It is a rate to watch for change, not a verdict on one answer: a jump in refusals after a
model upgrade or a shift of inputs is what drift monitoring looks for.
"""

from __future__ import annotations

import re

_OPENING_CHARS = 240
_REFUSAL = re.compile(
    r"""^\W*(?:
        (?:i'?m|i\ am)\ (?:sorry|afraid),?\ (?:but\ )?(?:i|that)\ (?:can(?:no|')t|cannot|won'?t|am\ (?:not\ able|unable)|'m\ (?:not\ able|unable))
      | i\ (?:can(?:no|')t|cannot|won'?t|will\ not|am\ unable\ to|'m\ unable\ to|am\ not\ able\ to|'m\ not\ able\ to)
        \ (?:help|assist|answer|provide|comply|do\ that|share|respond|discuss|give)
      | (?:sorry|unfortunately),?\ (?:but\ )?i\ (?:can(?:no|')t|cannot|won'?t|am\ unable|'m\ unable)
      | as\ an\ ai(?:\ language\ model)?,?\ i\ (?:can(?:no|')t|cannot|don'?t|am\ not\ able)
    )""",
    re.IGNORECASE | re.VERBOSE,
)


def is_refusal(answer: str | None) -> bool:
    """True when the answer opens with a refusal ("I'm sorry, but I can't help with that.")."""
    if not answer:
        return False
    opening = answer[:_OPENING_CHARS].replace("\u2019", "'")
    return _REFUSAL.search(opening) is not None
