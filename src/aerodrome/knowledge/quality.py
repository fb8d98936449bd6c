"""The data-quality report of a collection: what is wrong with its documents, and what to quarantine.

Problems (each counted per document, with up to :data:`MAX_EXAMPLES` examples):

- ``unparseable``: the connector or the parser failed (corrupt PDF, too large, refused URL...);
- ``empty`` / ``near_empty``: no text, or fewer than ``min_chars`` characters;
- ``exact_duplicate``: same whitespace-normalised text as another document (the
  document with the smallest id is the original and is not flagged);
- ``near_duplicate``: estimated Jaccard similarity of word 5-shingles at least
  ``near_duplicate_threshold`` (MinHash LSH, 128 permutations), smallest id kept;
- ``stale``: modified more than ``freshness_days`` ago;
- ``encoding``: text repaired while decoding (invalid UTF-8, NUL bytes);
- ``pii_in_public``: PII found in a *public or internal* collection (counts only, never values).

Documents with a problem listed in ``QualityRules.quarantine`` are quarantined.
"""

from __future__ import annotations

import hashlib
import re
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from datasketch import LeanMinHash, MinHash, MinHashLSH
from pydantic import BaseModel, ConfigDict, Field

from aerodrome.knowledge import pii_scan
from aerodrome.knowledge.documents import ParsedDocument, SourceDocument
from aerodrome.knowledge.parsers.decoding import is_encoding_warning

ProblemKind = Literal[
    "unparseable",
    "empty",
    "near_empty",
    "exact_duplicate",
    "near_duplicate",
    "stale",
    "encoding",
    "pii_in_public",
]
PROBLEM_KINDS: tuple[ProblemKind, ...] = (
    "unparseable", "empty", "near_empty", "exact_duplicate", "near_duplicate", "stale", "encoding", "pii_in_public",
)  # fmt: skip
DEFAULT_QUARANTINE: tuple[ProblemKind, ...] = ("unparseable", "empty", "exact_duplicate", "pii_in_public")
PII_CHECKED_CLASSES = frozenset({"public", "internal"})
MAX_EXAMPLES = 5
NUM_PERM = 128
SHINGLE_WORDS = 5
_WORDS = re.compile(r"\w+")


class QualityRules(BaseModel):
    """What counts as a problem, and which problems quarantine a document."""

    model_config = ConfigDict(extra="forbid")

    near_duplicate_threshold: float = Field(
        default=0.9, gt=0.0, le=1.0, description="Jaccard of word 5-shingles"
    )
    min_chars: int = Field(default=50, ge=0, description="fewer characters of text = near-empty")
    freshness_days: int | None = Field(
        default=None, gt=0, description="older documents are stale; None = off"
    )
    quarantine: list[ProblemKind] = Field(default_factory=lambda: list(DEFAULT_QUARANTINE))


@dataclass(slots=True)
class DocumentFacts:
    """What the report needs to know about one document."""

    document_id: str
    title: str | None
    uri: str
    text: str | None  # None when it could not be read
    error: str | None = None
    warnings: list[str] = field(default_factory=list)
    modified_at: datetime | None = None
    content_hash: str = ""

    @classmethod
    def of(
        cls, doc: SourceDocument, parsed: ParsedDocument | None = None, error: str | None = None
    ) -> DocumentFacts:
        """Facts from a connector's document, its parse (if any) and the parse error (if any)."""
        return cls(
            document_id=doc.source_id,
            title=(parsed.title if parsed is not None else None) or doc.title,
            uri=doc.uri,
            text=parsed.text if parsed is not None else None,
            error=doc.error or error,
            warnings=list(parsed.warnings) if parsed is not None else [],
            modified_at=doc.modified_at,
            content_hash=doc.content_hash,
        )


@dataclass(slots=True)
class Example:
    document_id: str
    title: str | None
    uri: str
    detail: str


@dataclass(slots=True)
class ProblemSummary:
    count: int = 0
    examples: list[Example] = field(default_factory=list)


@dataclass(slots=True)
class QualityReport:
    """Counts, examples and quarantined documents; ``flags`` has every problem of every document."""

    data_class: str
    total_documents: int
    rules: QualityRules
    generated_at: datetime
    problems: dict[str, ProblemSummary]
    quarantined: list[str]
    flags: dict[str, list[str]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (every problem kind present, zero counts included)."""
        return {
            "data_class": self.data_class,
            "total_documents": self.total_documents,
            "documents_with_problems": len(self.flags),
            "summary": {kind: summary.count for kind, summary in self.problems.items()},
            "generated_at": self.generated_at.isoformat(),
            "rules": self.rules.model_dump(),
            "problems": {
                kind: {
                    "count": summary.count,
                    "quarantines": kind in self.rules.quarantine,
                    "examples": [
                        {"document_id": e.document_id, "title": e.title, "uri": e.uri, "detail": e.detail}
                        for e in summary.examples
                    ],
                }
                for kind, summary in self.problems.items()
            },
            "quarantined": list(self.quarantined),
        }

    def problems_by_document(self) -> dict[str, list[str]]:
        """Every document with a problem → the kinds of its problems."""
        return {doc_id: list(kinds) for doc_id, kinds in self.flags.items()}

    def to_markdown(self, collection: str = "") -> str:
        """A human summary for the CLI (see :func:`render_markdown`)."""
        return render_markdown(collection, self.to_dict())


def render_markdown(collection: str, report: Mapping[str, Any]) -> str:
    """Markdown for a report in its :meth:`QualityReport.to_dict` form (as stored after a sync)."""
    problems: Mapping[str, Any] = report.get("problems") or {}
    quarantined: list[str] = list(report.get("quarantined") or [])
    name = f"{collection} " if collection else ""
    lines = [
        f"# Data quality of {name}({report.get('data_class', '?')} collection)",
        "",
        f"{report.get('total_documents', 0)} documents, {report.get('documents_with_problems', 0)} with problems, "
        f"{len(quarantined)} quarantined.",
        "",
        "| problem | documents | quarantines |",
        "|---|---:|---|",
    ]
    for kind, summary in problems.items():
        lines.append(
            f"| {kind} | {summary.get('count', 0)} | {'yes' if summary.get('quarantines') else 'no'} |"
        )
    for kind, summary in problems.items():
        examples = summary.get("examples") or []
        if not examples:
            continue
        lines += ["", f"## {kind} ({summary.get('count', 0)})", ""]
        for e in examples:
            doc_id, title = str(e.get("document_id", "")), e.get("title")
            label = doc_id + (f" ({title})" if title and title != doc_id else "")
            lines.append(f"- `{_md(label)}`: {_md(str(e.get('detail', '')))}")
    if quarantined:
        lines += ["", "## Quarantined", ""]
        shown = quarantined[:20]
        lines += [f"- `{_md(doc_id)}`" for doc_id in shown]
        if len(quarantined) > len(shown):
            lines.append(f"- ... and {len(quarantined) - len(shown)} more")
    return "\n".join(lines) + "\n"


def _md(text: str) -> str:
    return " ".join(text.replace("`", "'").replace("|", "\\|").split())


class _Collector:
    def __init__(self, report: QualityReport) -> None:
        self.report = report

    def flag(self, facts: DocumentFacts, kind: ProblemKind, detail: str) -> None:
        summary = self.report.problems[kind]
        summary.count += 1
        if len(summary.examples) < MAX_EXAMPLES:
            summary.examples.append(Example(facts.document_id, facts.title, facts.uri, detail))
        self.report.flags.setdefault(facts.document_id, []).append(kind)


def _text_hash(text: str) -> str:
    return hashlib.sha256(" ".join(text.split()).encode("utf-8", "surrogatepass")).hexdigest()


def shingles(text: str) -> list[bytes]:
    """Word 5-shingles of lower-cased text (the whole text as one shingle when shorter)."""
    words = _WORDS.findall(text.lower())
    if len(words) < SHINGLE_WORDS:
        return [" ".join(words).encode()] if words else []
    return sorted(
        {" ".join(words[i : i + SHINGLE_WORDS]).encode() for i in range(len(words) - SHINGLE_WORDS + 1)}
    )


def _original_first(facts: DocumentFacts) -> tuple[float, str]:
    """Order in which duplicates pick their original: the newest version first, then the smallest id."""
    modified = facts.modified_at
    if modified is None:
        return (float("inf"), facts.document_id)
    aware = modified if modified.tzinfo else modified.replace(tzinfo=UTC)
    return (-aware.timestamp(), facts.document_id)


def _near_duplicates(docs: Sequence[DocumentFacts], threshold: float) -> dict[str, tuple[str, float]]:
    """document_id → (the original it nearly duplicates, estimated Jaccard), originals left out."""
    lsh = MinHashLSH(threshold=threshold, num_perm=NUM_PERM)
    template = MinHash(num_perm=NUM_PERM, seed=1, hashfunc=zlib.crc32)  # permutations computed once
    hashes: dict[str, LeanMinHash] = {}
    originals: dict[str, str] = {}  # union-find parent, toward the preferred original
    similarity: dict[str, float] = {}
    ordered = sorted(docs, key=_original_first)
    rank = {f.document_id: i for i, f in enumerate(ordered)}

    def root(doc_id: str) -> str:
        while originals[doc_id] != doc_id:
            doc_id = originals[doc_id]
        return doc_id

    for facts in ordered:
        grams = shingles(facts.text or "")
        if not grams:
            continue
        minhash = MinHash(
            num_perm=NUM_PERM, hashfunc=zlib.crc32, permutations=template.permutations, scheme=template.scheme
        )
        minhash.update_batch(grams)
        lean = LeanMinHash(minhash)
        originals[facts.document_id] = facts.document_id
        for other in sorted(lsh.query(lean)):
            estimate = lean.jaccard(hashes[other])
            if estimate >= threshold:
                a, b = root(other), root(facts.document_id)
                if a != b:
                    keep, other_root = (a, b) if rank[a] < rank[b] else (b, a)
                    originals[other_root] = keep
                similarity[facts.document_id] = max(similarity.get(facts.document_id, 0.0), estimate)
        lsh.insert(facts.document_id, lean)
        hashes[facts.document_id] = lean
    out: dict[str, tuple[str, float]] = {}
    for doc_id in originals:
        first = root(doc_id)
        if first != doc_id:
            out[doc_id] = (first, similarity.get(doc_id, threshold))
    return out


def assess(
    data_class: str, documents: Sequence[DocumentFacts], rules: QualityRules, *, now: datetime | None = None
) -> QualityReport:
    """The quality report of a collection's documents under its rules."""
    now = now or datetime.now(UTC)
    data_class = data_class.lower()
    report = QualityReport(
        data_class=data_class,
        total_documents=len(documents),
        rules=rules,
        generated_at=now,
        problems={kind: ProblemSummary() for kind in PROBLEM_KINDS},
        quarantined=[],
    )
    collect = _Collector(report)
    readable: list[DocumentFacts] = []
    for facts in documents:
        if facts.error or facts.text is None:
            collect.flag(facts, "unparseable", facts.error or "no text could be read")
            continue
        readable.append(facts)
        size = len(facts.text.strip())
        if size == 0:
            collect.flag(facts, "empty", "no text")
        elif size < rules.min_chars:
            collect.flag(facts, "near_empty", f"{size} characters (minimum {rules.min_chars})")
        encoding = [w for w in facts.warnings if is_encoding_warning(w)]
        if encoding:
            collect.flag(facts, "encoding", "; ".join(encoding))
        if rules.freshness_days is not None and facts.modified_at is not None:
            modified = (
                facts.modified_at if facts.modified_at.tzinfo else facts.modified_at.replace(tzinfo=UTC)
            )
            age = now - modified
            if age > timedelta(days=rules.freshness_days):
                collect.flag(facts, "stale", f"modified {modified.date().isoformat()} ({age.days} days ago)")
        if data_class in PII_CHECKED_CLASSES and size:
            found = pii_scan.counts(facts.text)
            if found:
                detail = ", ".join(f"{n} {kind}" for kind, n in sorted(found.items()))
                collect.flag(facts, "pii_in_public", f"{detail} in a {data_class} collection")
    by_hash: dict[str, DocumentFacts] = {}
    unique: list[DocumentFacts] = []
    for facts in sorted((f for f in readable if (f.text or "").strip()), key=_original_first):
        digest = _text_hash(facts.text or "")
        original = by_hash.setdefault(digest, facts)
        if original is facts:
            unique.append(facts)
        else:
            collect.flag(facts, "exact_duplicate", f"same text as {original.document_id}")
    by_id = {f.document_id: f for f in unique}
    near = _near_duplicates(unique, rules.near_duplicate_threshold)
    for doc_id, (first, estimate) in sorted(near.items()):
        collect.flag(
            by_id[doc_id], "near_duplicate", f"nearly the same text as {first} (Jaccard ~{estimate:.2f})"
        )
    quarantine = set(rules.quarantine)
    report.quarantined = sorted(
        doc_id for doc_id, kinds in report.flags.items() if quarantine.intersection(kinds)
    )
    return report
