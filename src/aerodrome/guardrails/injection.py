"""Prompt-injection guardrail: a small linear classifier plus heuristics for hidden instructions.

The classifier is logistic regression over TF-IDF weighted character n-grams (3 to 5 characters,
taken inside word boundaries, so it reads English and German alike and survives small spelling
changes). It was trained by ``scripts/train_injection.py`` on the deepset/prompt-injections train
split; its vocabulary, IDF weights, coefficients and decision threshold ship in the package as
``injection_model.json`` and are read once (``importlib.resources``). Inference is pure Python:
no heavy runtime dependency.

Long texts are scored in overlapping windows (``WINDOW`` characters, stride ``STRIDE``) and the
highest window score is the text's score, so an instruction buried at the end of a long document
is still caught (256-character windows: at 512 the benign context around a short
injection dilutes it below the threshold).

:func:`hidden_instructions` is independent of the model: regular expressions that find
instructions hidden in retrieved documents (override phrases, role-play triggers, system-prompt
probes, zero-width and bidi characters, HTML comments, invisible CSS, base64 blobs), with spans.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
import threading
import time
import unicodedata
from dataclasses import dataclass
from importlib import resources
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from aerodrome.guardrails.base import CheckResult, Finding, Verdict

__all__ = [
    "MODEL_RESOURCE",
    "STRIDE",
    "WINDOW",
    "InjectionConfig",
    "InjectionGuardrail",
    "InjectionModel",
    "char_ngrams",
    "hidden_instructions",
    "load_model",
    "normalize",
]

MODEL_RESOURCE = "injection_model.json"
WINDOW = 256
STRIDE = 128
NGRAM_MIN = 3
NGRAM_MAX = 5

# Characters that render as nothing: stripped before scoring, reported by hidden_instructions.
_INVISIBLE = "\u00ad\u180e\u200b\u200c\u200d\u200e\u200f\u2060\u2061\u2062\u2063\u2064\ufeff"
_BIDI = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
_INVISIBLE_TABLE = {ord(c): None for c in _INVISIBLE + _BIDI}
_WS = re.compile(r"\s+")


def normalize(text: str) -> str:
    """What the model reads: NFKC, lowercased (the training data is), invisible characters removed."""
    text = unicodedata.normalize("NFKC", text).lower().translate(_INVISIBLE_TABLE)
    # Unicode tag characters (U+E0000..U+E007F) smuggle ASCII invisibly: read them as ASCII.
    if any(0xE0000 <= ord(c) <= 0xE007F for c in text):
        text = "".join(chr(ord(c) - 0xE0000) if 0xE0020 <= ord(c) <= 0xE007E else c for c in text)
    return text


def char_ngrams(text: str) -> list[str]:
    """Character n-grams (3..5) of each whitespace-separated word padded with one space each side.

    ``text`` is expected already normalised. The same function feeds training and inference.
    """
    grams: list[str] = []
    append = grams.append
    for word in text.split():
        w = f" {word} "
        size = len(w)
        for n in range(NGRAM_MIN, NGRAM_MAX + 1):
            if size <= n:
                append(w)  # a short word counts once, whole
                break
            for i in range(size - n + 1):
                append(w[i : i + n])
    return grams


@dataclass(frozen=True, slots=True)
class InjectionModel:
    """Sublinear TF-IDF (L2-normalised) → logistic regression, read from the package file."""

    vocab: dict[str, tuple[float, float]]  # n-gram → (idf, coefficient)
    intercept: float
    threshold: float
    meta: dict[str, Any]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> InjectionModel:
        terms: list[str] = data["terms"]
        idf: list[float] = data["idf"]
        coef: list[float] = data["coef"]
        if not (len(terms) == len(idf) == len(coef)):
            raise ValueError("injection model: terms, idf and coef differ in length")
        return cls(
            vocab={t: (float(i), float(c)) for t, i, c in zip(terms, idf, coef, strict=True)},
            intercept=float(data["intercept"]),
            threshold=float(data["threshold"]),
            meta=dict(data.get("meta", {})),
        )

    def score_normalized(self, text: str) -> float:
        """Probability that ``text`` (already normalised) is an injection."""
        counts: dict[str, int] = {}
        vocab = self.vocab
        for gram in char_ngrams(text):
            if gram in vocab:
                counts[gram] = counts.get(gram, 0) + 1
        if not counts:
            return _sigmoid(self.intercept)
        dot = 0.0
        norm2 = 0.0
        for gram, tf in counts.items():
            idf, coef = vocab[gram]
            value = (1.0 + math.log(tf)) * idf
            norm2 += value * value
            dot += value * coef
        return _sigmoid(self.intercept + dot / math.sqrt(norm2))

    def score(self, text: str, *, window: int = WINDOW, stride: int = STRIDE) -> float:
        """The highest probability over overlapping windows of the normalised text."""
        norm = normalize(text)
        best = 0.0
        for start, end in windows(len(norm), window, stride):
            best = max(best, self.score_normalized(norm[start:end]))
        return best


def windows(length: int, window: int = WINDOW, stride: int = STRIDE) -> list[tuple[int, int]]:
    """Start/end offsets of overlapping windows covering ``length`` characters (the last one ends at it)."""
    if length <= window:
        return [(0, length)]
    spans = [(s, s + window) for s in range(0, length - window + 1, stride)]
    if spans[-1][1] < length:
        spans.append((length - window, length))
    return spans


def _sigmoid(z: float) -> float:
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


_model_lock = threading.Lock()
_model_cache: InjectionModel | None = None


def load_model() -> InjectionModel:
    """The packaged model, read once per process (thread-safe); instances share it (read-only)."""
    global _model_cache
    with _model_lock:
        if _model_cache is None:
            raw = resources.files("aerodrome.guardrails").joinpath(MODEL_RESOURCE).read_text("utf-8")
            _model_cache = InjectionModel.from_dict(json.loads(raw))
        return _model_cache


class InjectionConfig(BaseModel):
    """Settings of the prompt-injection check (a use case's ``guardrails.prompt_injection``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    action: Literal["detect", "block"] = Field(
        default="block", description="block: verdict block over the threshold; detect: verdict flag."
    )
    threshold: float | None = Field(
        default=None,
        ge=0.0,
        le=1.0,
        description="Probability at or above which a text is an injection; None = the model's.",
    )


class InjectionGuardrail:
    """The ``prompt_injection`` check: the classifier's probability, max over windows."""

    name = "prompt_injection"

    def __init__(self, config: InjectionConfig | None = None) -> None:
        self.config = config or InjectionConfig()
        self.model = load_model()
        self.threshold = self.config.threshold if self.config.threshold is not None else self.model.threshold

    def score(self, text: str) -> float:
        return self.model.score(text)

    def check(self, text: str) -> CheckResult:
        started = time.perf_counter()
        score = self.model.score(text)
        findings: list[Finding] = []
        verdict: Verdict = "pass"
        if score >= self.threshold:
            findings.append(Finding(kind="prompt_injection", start=None, end=None, score=score))
            verdict = "block" if self.config.action == "block" else "flag"
        return CheckResult(
            check=self.name,
            verdict=verdict,
            findings=findings,
            score=score,
            elapsed_ms=(time.perf_counter() - started) * 1000.0,
        )


# --- heuristics for instructions hidden in retrieved documents ---------------------------------

_I = re.IGNORECASE | re.DOTALL
_PHRASES: list[tuple[re.Pattern[str], float]] = [
    # English override phrases
    (
        re.compile(
            r"\b(?:ignore|disregard|forget|override|bypass|skip|drop)\s+(?:all\s+|any\s+|the\s+|your\s+|of\s+)*"
            r"(?:(?:previous|prior|above|earlier|preceding|former|original|initial|system|existing|other)\s+)*"
            r"(?:instructions?|directions?|prompts?|rules|guidelines|commands|context|constraints|assignments?|tasks?)\b",
            _I,
        ),
        0.95,
    ),
    (
        re.compile(
            r"\b(?:ignore|disregard|forget)\s+(?:everything|all)\s+(?:above|before|previously|you\s+were\s+told)\b",
            _I,
        ),
        0.95,
    ),
    (re.compile(r"\bnew\s+(?:instructions?|task|rules)\s*:", _I), 0.8),
    # German override phrases
    (
        re.compile(
            r"\b(?:ignorier(?:e|en)?|vergiss|vergessen\s+sie|missachte)\s+(?:alle\s+|die\s+|deine\s+|ihre\s+|s[äa]mtliche\s+)*"
            r"(?:(?:vorherigen|bisherigen|vorigen|obigen|alten|urspr[üu]nglichen)\s+)*"
            r"(?:anweisungen|instruktionen|befehle|regeln|aufgaben|vorgaben)\b",
            _I,
        ),
        0.95,
    ),
    (re.compile(r"\b(?:vergiss|vergessen\s+sie)\s+alles\b", _I), 0.9),
    (re.compile(r"\bneue\s+(?:anweisung(?:en)?|aufgabe)\s*:", _I), 0.8),
    # role-play triggers
    (re.compile(r"\byou\s+are\s+now\b", _I), 0.85),
    (re.compile(r"\bfrom\s+now\s+on,?\s+(?:you|act|answer|respond)\b", _I), 0.85),
    (
        re.compile(r"\b(?:du\s+bist\s+(?:jetzt|nun|ab\s+sofort)|ab\s+(?:jetzt|sofort)\s+bist\s+du)\b", _I),
        0.85,
    ),
    (
        re.compile(
            r"\b(?:act|behave|respond)\s+as\s+(?:if\s+you\s+were\s+)?(?:an?\s+)?(?:unrestricted|unfiltered|jailbroken|evil|dan)\b",
            _I,
        ),
        0.9,
    ),
    (re.compile(r"\bpretend\s+(?:to\s+be|you\s+are)\b", _I), 0.75),
    (re.compile(r"\b(?:do\s+anything\s+now|developer\s+mode|jailbreak|dan\s+mode)\b", _I), 0.9),
    (re.compile(r"\bas\s+an\s+ai(?:\s+language\s+model)?\b", _I), 0.5),
    # probes for the system prompt
    (re.compile(r"\bsystem\s*-?\s*prompt\b", _I), 0.8),
    (
        re.compile(
            r"\b(?:reveal|print|show|repeat|output|leak|tell\s+me)\s+(?:me\s+)?(?:your|the)\s+(?:initial\s+|hidden\s+|original\s+)?"
            r"(?:instructions|prompt|rules)\b",
            _I,
        ),
        0.85,
    ),
    # chat-template tokens and fake role headers inside a document
    (re.compile(r"<\|im_start\|>|<\|system\|>|<\|start_header_id\|>|\[/?INST\]|<</?SYS>>", _I), 0.9),
    (re.compile(r"^\s*(?:#+\s*)?(?:system|assistant)\s*:\s*\S", _I | re.MULTILINE), 0.7),
    # markdown image that exfiltrates data in its URL
    (re.compile(r"!\[[^\]]*\]\(https?://[^)\s]*\?[^)\s]*=\s*(?:\{|\[|%7b)", _I), 0.85),
]

_INVISIBLE_RUN = re.compile(f"[{_INVISIBLE}{_BIDI}\U000e0000-\U000e007f]+")
_HTML_COMMENT = re.compile(r"<!--(.*?)-->", re.DOTALL)
_HIDDEN_STYLE = re.compile(
    r"<(\w+)[^>]*style\s*=\s*[\"'][^\"']*(?:display\s*:\s*none|visibility\s*:\s*hidden|font-size\s*:\s*0(?![.\d]*[1-9])|"
    r"opacity\s*:\s*0(?![.\d]*[1-9])|color\s*:\s*(?:white|#fff(?:fff)?\b|rgb\(\s*255\s*,\s*255\s*,\s*255\s*\)))"
    r"[^\"']*[\"'][^>]*>(.*?)(?:</\1\s*>|$)",
    _I,
)
_BASE64 = re.compile(r"(?<![A-Za-z0-9+/])[A-Za-z0-9+/]{24,}={0,2}(?![A-Za-z0-9+/=])")
_DECODE_HINT = re.compile(
    r"\b(?:decode|base64|dekodier|entschl[üu]ssel|execute|run|follow|ausf[üu]hren)", re.IGNORECASE
)
_INSTRUCTION_WORDS = re.compile(
    r"\b(?:ignore|disregard|instruction|you\s+are|you\s+must|assistant|system|prompt|respond|reply|answer|say|tell|"
    r"send|include|visit|click|anweisung|ignoriere|antworte|sage)\b",
    re.IGNORECASE,
)


def hidden_instructions(text: str) -> list[Finding]:
    """Spans of ``text`` that look like instructions planted for the model (kind ``hidden_instruction``).

    Sorted by start; scores are heuristic confidences (0.5 weak, 0.95 strong).
    """
    found: dict[tuple[int, int], float] = {}

    def add(start: int, end: int, score: float) -> None:
        key = (start, end)
        found[key] = max(found.get(key, 0.0), score)

    for pattern, score in _PHRASES:
        for m in pattern.finditer(text):
            add(m.start(), m.end(), score)
    for m in _INVISIBLE_RUN.finditer(text):
        # one zero-width joiner inside emoji or a soft hyphen is common; tags and runs are not
        tags = any(0xE0000 <= ord(c) <= 0xE007F for c in m.group())
        add(m.start(), m.end(), 0.95 if tags or len(m.group()) >= 3 else 0.5)
    for m in _HTML_COMMENT.finditer(text):
        if _INSTRUCTION_WORDS.search(m.group(1)):
            add(m.start(), m.end(), 0.85)
    for m in _HIDDEN_STYLE.finditer(text):
        if m.group(2).strip():
            add(m.start(), m.end(), 0.9 if _INSTRUCTION_WORDS.search(m.group(2)) else 0.6)
    for m in _BASE64.finditer(text):
        decoded = _decode_text(m.group())
        if decoded is None:
            continue
        hint = _DECODE_HINT.search(text, max(0, m.start() - 80), m.start()) is not None
        if _INSTRUCTION_WORDS.search(decoded) or hint:
            add(m.start(), m.end(), 0.9)
        else:
            add(m.start(), m.end(), 0.5)
    return [Finding("hidden_instruction", s, e, sc) for (s, e), sc in sorted(found.items())]


def _decode_text(blob: str) -> str | None:
    """The blob decoded as base64 when it is mostly printable text (an encoded message), else None."""
    if len(blob.rstrip("=")) % 4 == 1 or not (re.search(r"[A-Z]", blob) and re.search(r"[a-z]", blob)):
        return None
    try:
        raw = base64.b64decode(blob + "=" * (-len(blob) % 4), validate=True)
        decoded = raw.decode("utf-8")
    except (binascii.Error, ValueError):
        return None
    printable = sum(ch.isprintable() or ch in "\n\t" for ch in decoded)
    letters = sum(ch.isalpha() or ch == " " for ch in decoded)
    if not decoded or printable / len(decoded) < 0.95 or letters / len(decoded) < 0.6:
        return None
    return decoded
