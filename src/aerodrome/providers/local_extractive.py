"""Extractive answering: the chat engine of the built-in ``local`` provider.

What it does: it reads the context that the request itself carries (retrieved
passages in the system, developer, tool or user messages), takes the question from
the last user message, scores every context sentence against the question with a
BM25-like term overlap (stop words removed, light suffix stemming), and answers with
up to three best-supported sentences, verbatim and in their original order, each run
of sentences followed by a citation marker for the passage it came from.

What it does not do: it generates nothing, knows nothing beyond the request, does not
summarise, paraphrase, reason across sentences or follow instructions in the prompt.
When no sentence supports an answer it says so; with no context at all it says that
it only answers from provided context. Pure Python, deterministic, a few ms per call.

Context formats understood (a passage runs until the next marker):

* numbered passages: a line starting ``[1] ...`` → cited as ``[1]``;
* labelled passages: a line starting ``[source: handbook.pdf] ...`` → cited as given;
* blocks ``<doc id="x">...</doc>`` (also ``document``, ``passage``, ``source``) → ``[x]``;
* plain text: used as is, answered without citation markers.

A user message holding both context and question is split at a line starting with
``Question:`` (or ``Q:``); otherwise, after passages, the trailing text is the question.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass

NO_CONTEXT_ANSWER = (
    "The built-in local engine answers only from context provided in the request "
    "(for example retrieved passages), and this request has none, so I cannot answer it."
)
NOT_FOUND_ANSWER = "I could not find this in the provided context."
NO_QUESTION_ANSWER = "I did not find a question to answer in the request."

MAX_SENTENCES = 3
MIN_SUPPORT = 0.34  # share of the question's (idf-weighted) terms a sentence must cover
RELATIVE_SCORE = 0.55  # further sentences must score at least this share of the best one
_MIN_WORDS = 3  # shorter fragments ("Parental leave", "Yes.") are never an answer
_PRIOR_DOCUMENTS = 10
_K1 = 1.2
_B = 0.75

_STOP_WORD_TEXT = """
    a about above after again against all also am an and any are as at be because been before being
    below between both but by can could did do does doing don down during each either else ever few for
    from further get gets got had has have having he her here hers herself him himself his how however i
    if in into is it its itself just let me might more most must my myself no nor not now of off on once
    only or other ought our ours ourselves out over own per please same shall she should so some such
    tell than that the their theirs them themselves then there these they this those through to too
    under until up upon us very via was we were what when where which while who whom whose why will
    with within without would yes yet you your yours yourself yourselves"""
_STOP_WORDS = frozenset(_STOP_WORD_TEXT.split())
_SUFFIXES = (
    ("ies", "y"),
    ("sses", "ss"),
    ("es", ""),
    ("ing", ""),
    ("edly", ""),
    ("ed", ""),
    ("ly", ""),
    ("s", ""),
)
_WORD = re.compile(r"[^\W_]+", re.UNICODE)
_QUESTION_MARKER = re.compile(r"^[ \t]*(?:question|q|query)[ \t]*:[ \t]*", re.IGNORECASE | re.MULTILINE)
_ANSWER_MARKER = re.compile(r"^[ \t]*answer[ \t]*:.*\Z", re.IGNORECASE | re.MULTILINE | re.DOTALL)
_BRACKET_MARKER = re.compile(
    r"^[ \t]*\[(\d{1,4}|source:[^\]\n]{1,200})\][ \t]*:?", re.IGNORECASE | re.MULTILINE
)
_DOC_BLOCK = re.compile(r"<(doc|document|passage|source)\b([^>]*)>(.*?)</\1\s*>", re.IGNORECASE | re.DOTALL)
_DOC_ID = re.compile(r"""\b(?:id|name|source|title)\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+))""", re.IGNORECASE)
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9])")
_ABBREVIATION = re.compile(
    r"\b(?:e\.g|i\.e|etc|vs|mr|mrs|ms|dr|prof|no|fig|approx|inc|ltd|st)\.$", re.IGNORECASE
)
_ASKED = re.compile(r"[^.?!\n]*\?")  # each question of a message with several
_BULLET = re.compile(r"^\s*(?:[-*•]|\d{1,3}[.)])\s+")
_LABEL_LINE = re.compile(r"^\s*(?:context|documents?|passages?|sources?|excerpts?)\s*:\s*$", re.IGNORECASE)
_INSTRUCTION = re.compile(
    r"^(?:you are|you're|you will|you must|your task|act as|answer|use |using |cite|do not|don't|never|"
    r"always|only |respond|reply|be |please|keep |if the|if you|if it|based on|given the|read the)",
    re.IGNORECASE,
)
# "how long", "how many"...: the second word asks for the answer, it is not a term to match.
_QUESTION_PHRASE = re.compile(r"\bhow\s+(?:long|many|much|often|far|soon|old|big|large)\b", re.IGNORECASE)
_TERMINAL = re.compile(r"([.!?]+[\"')\]]*)$")


@dataclass(frozen=True, slots=True)
class Passage:
    """One unit of context; ``label`` is the citation marker text, None for plain text."""

    label: str | None
    text: str


@dataclass(frozen=True, slots=True)
class Sentence:
    passage: int
    position: int
    text: str
    terms: Counter[str]


def stem(word: str) -> str:
    """A light, deterministic suffix stripper: enough to match plural and tense forms
    ("leaves", "leave" and "leaving" all give "leav")."""
    if len(word) <= 3 or word.isdigit():
        return word
    for suffix, replacement in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            if suffix == "s" and word.endswith(("ss", "us", "is")):
                break
            if suffix == "es" and not word.endswith(("ses", "xes", "zes", "ches", "shes")):
                continue
            word = word[: len(word) - len(suffix)] + replacement
            if suffix in ("ing", "ed") and word[-1] == word[-2] and word[-1] not in "lsz":
                word = word[:-1]  # "stopped" → "stop"
            break
    if len(word) > 3 and word.endswith("e"):
        word = word[:-1]
    return word


def terms(text: str) -> list[str]:
    """Content terms of a text: lower-cased words without stop words, stemmed."""
    return [stem(w) for w in _WORD.findall(text.lower()) if w not in _STOP_WORDS]


def split_question(text: str) -> tuple[str, str]:
    """Split one message into (context, question). Either part may be empty."""
    markers = list(_QUESTION_MARKER.finditer(text))
    if markers:
        last = markers[-1]
        question = _ANSWER_MARKER.sub("", text[last.end() :]).strip()
        return text[: last.start()].strip(), question
    if _DOC_BLOCK.search(text):
        end = max(m.end() for m in _DOC_BLOCK.finditer(text))
        return text[:end], text[end:].strip()
    brackets = list(_BRACKET_MARKER.finditer(text))
    if brackets:
        # The question is the last paragraph after the passages, if there is one.
        tail_start = brackets[-1].end()
        paragraphs = re.split(r"\n\s*\n", text[tail_start:])
        if len(paragraphs) > 1 and paragraphs[-1].strip():
            cut = text.rstrip().rfind(paragraphs[-1].strip())
            return text[:cut].strip(), text[cut:].strip()
        return text.strip(), ""
    paragraphs = [p for p in re.split(r"\n\s*\n", text.strip()) if p.strip()]
    if len(paragraphs) > 1 and paragraphs[-1].rstrip().endswith("?"):
        return "\n\n".join(paragraphs[:-1]), paragraphs[-1].strip()
    return "", text.strip()


def has_passages(text: str) -> bool:
    return bool(_DOC_BLOCK.search(text) or _BRACKET_MARKER.search(text))


def parse_passages(text: str, *, plain: bool) -> list[Passage]:
    """Passages of a context text; text outside markers counts only when ``plain`` is true."""
    passages: list[Passage] = []
    outside: list[str] = []
    position = 0
    for block in _DOC_BLOCK.finditer(text):
        outside.append(text[position : block.start()])
        position = block.end()
        ident = _DOC_ID.search(block.group(2))
        label = next((g for g in ident.groups() if g), None) if ident else None
        passages.append(Passage(f"[{label}]" if label else None, block.group(3).strip()))
    outside.append(text[position:])
    for chunk in outside:
        brackets = list(_BRACKET_MARKER.finditer(chunk))
        if brackets and plain:
            passages.extend(_plain(chunk[: brackets[0].start()]))
        elif not brackets and plain:
            passages.extend(_plain(chunk))
        for i, marker in enumerate(brackets):
            end = brackets[i + 1].start() if i + 1 < len(brackets) else len(chunk)
            label = marker.group(1).strip()
            if label.lower().startswith("source:"):
                label = "source: " + label[7:].strip()
            body = chunk[marker.end() : end].strip()
            if body:
                passages.append(Passage(f"[{label}]", body))
    return passages


def _plain(text: str) -> list[Passage]:
    """Plain context, with instruction sentences ("You are...", "Answer...") removed."""
    kept = [s for s in split_sentences(text) if not _INSTRUCTION.match(s)]
    return [Passage(None, " ".join(kept))] if kept else []


def split_sentences(text: str) -> list[str]:
    """Sentences of a passage. Paragraphs and bullets break, wrapped lines join, and
    headings (``# Title``, or a short unpunctuated line before a capitalised one) are dropped."""
    units: list[str] = []
    for paragraph in re.split(r"\n\s*\n", text):
        current: list[str] = []
        lines = [line.strip() for line in paragraph.splitlines() if line.strip()]
        for index, line in enumerate(lines):
            if _LABEL_LINE.match(line):
                continue
            if line.startswith("#") or _is_heading(line, lines[index + 1] if index + 1 < len(lines) else ""):
                if current:
                    units.append(" ".join(current))
                current = []
                continue
            if _BULLET.match(line) and current:
                units.append(" ".join(current))
                current = []
            current.append(_BULLET.sub("", line))
        if current:
            units.append(" ".join(current))
    sentences: list[str] = []
    for unit in units:
        pieces = _SENTENCE_END.split(unit)
        merged: list[str] = []
        for piece in pieces:
            if merged and _ABBREVIATION.search(merged[-1]):
                merged[-1] = f"{merged[-1]} {piece}"
            else:
                merged.append(piece)
        sentences.extend(s.strip() for s in merged if s.strip())
    return sentences


def _is_heading(line: str, following: str) -> bool:
    if not following or len(line) > 60 or len(line.split()) > 8 or line.endswith((",", ";")):
        return False
    return not _TERMINAL.search(line) and (following[0].isupper() or following[0].isdigit())


def _idf(document_count: int, containing: int) -> float:
    # _PRIOR_DOCUMENTS unseen sentences keep idf meaningful when the context has only a few.
    unseen = document_count + _PRIOR_DOCUMENTS - containing
    return math.log(1.0 + (unseen + 0.5) / (containing + 0.5))


def rank(passages: list[Passage], question: str) -> list[tuple[float, float, Sentence]]:
    """(score, support, sentence) of every sentence that supports the question, best first."""
    query = list(dict.fromkeys(terms(_QUESTION_PHRASE.sub(" ", question))))
    if not query:
        return []
    sentences = [
        Sentence(p, i, text, Counter(terms(text)))
        for p, passage in enumerate(passages)
        for i, text in enumerate(split_sentences(passage.text))
    ]
    sentences = [s for s in sentences if s.terms and len(s.text.split()) >= _MIN_WORDS]
    if not sentences:
        return []
    count = len(sentences)
    frequency: Counter[str] = Counter()
    for sentence in sentences:
        frequency.update(sentence.terms.keys())
    weights = {term: _idf(count, frequency.get(term, 0)) for term in query}
    total_weight = sum(weights.values())
    average_length = sum(sum(s.terms.values()) for s in sentences) / count
    scored: list[tuple[float, float, Sentence]] = []
    for sentence in sentences:
        length = sum(sentence.terms.values())
        score = 0.0
        covered = 0.0
        for term, weight in weights.items():
            tf = sentence.terms.get(term, 0)
            if tf:
                covered += weight
                score += weight * tf * (_K1 + 1) / (tf + _K1 * (1 - _B + _B * length / average_length))
        support = covered / total_weight
        if support >= MIN_SUPPORT:
            scored.append((score, support, sentence))
    scored.sort(key=lambda item: (-item[0], item[2].passage, item[2].position))
    return scored


def select(passages: list[Passage], question: str) -> list[Sentence]:
    """The best-supported sentences for the question, in their original order."""
    scored = rank(passages, question)
    if not scored:
        return []
    best = scored[0][0]
    chosen: list[Sentence] = []
    seen: set[str] = set()
    for score, _support, sentence in scored:
        key = sentence.text.casefold()
        if score < best * RELATIVE_SCORE or key in seen:
            continue
        seen.add(key)
        chosen.append(sentence)
        if len(chosen) == MAX_SENTENCES:
            break
    return sorted(chosen, key=lambda s: (s.passage, s.position))


def compose(passages: list[Passage], chosen: list[Sentence]) -> str:
    """Join the chosen sentences; a citation marker closes each run from one passage."""
    parts: list[str] = []
    for index, sentence in enumerate(chosen):
        label = passages[sentence.passage].label
        next_same = index + 1 < len(chosen) and chosen[index + 1].passage == sentence.passage
        text = sentence.text
        if label and not next_same:
            match = _TERMINAL.search(text)
            end = match.start() if match else len(text)
            text = f"{text[:end].rstrip()} {label}{match.group(1) if match else ''}"
        parts.append(text)
    return " ".join(parts)


def answer(context_texts: list[tuple[str, bool]], question: str) -> str:
    """The engine's answer. ``context_texts`` holds (text, plain_allowed) pairs in order."""
    passages: list[Passage] = []
    for text, plain in context_texts:
        passages.extend(parse_passages(text, plain=plain))
    passages = [p for p in passages if p.text.strip()]
    if not passages:
        return NO_CONTEXT_ANSWER if question.strip() else NO_QUESTION_ANSWER
    if not question.strip():
        return NO_QUESTION_ANSWER
    asked = [q.strip() for q in _ASKED.findall(question) if len(q.split()) >= 2]
    if len(asked) > 1:  # several questions in one message (a ticket): answer each, in context order
        picked: dict[tuple[int, int], Sentence] = {}
        for sub in asked:
            for sentence in select(passages, sub)[:2]:
                picked.setdefault((sentence.passage, sentence.position), sentence)
        chosen = [picked[k] for k in sorted(picked)][: MAX_SENTENCES * 2]
    else:
        chosen = select(passages, question)
    if not chosen:
        return NOT_FOUND_ANSWER
    return compose(passages, chosen)


def message_text(content: object) -> str:
    """The text of an OpenAI message ``content``: a string or a list of parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [
            part["text"]
            for part in content
            if isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str)
        ]
        return "\n".join(texts)
    return ""


def read_messages(messages: list[object]) -> tuple[list[tuple[str, bool]], str]:
    """(context texts with whether plain text counts, question) from OpenAI chat messages.

    System, developer and tool messages are context; earlier user messages count only
    for their marked passages; assistant turns are ignored; the last user message gives
    the question (and any context written before it).
    """
    items = [m for m in messages if isinstance(m, dict)]
    last_user = max((i for i, m in enumerate(items) if m.get("role") == "user"), default=-1)
    context: list[tuple[str, bool]] = []
    question = ""
    for index, message in enumerate(items):
        role = message.get("role")
        text = message_text(message.get("content"))
        if not text.strip() or role == "assistant":
            continue
        if index == last_user:
            before, question = split_question(text)
            if before:
                context.append((before, True))
        elif role == "user":
            context.append((text, False))
        else:
            context.append((text, True))
    return context, question
