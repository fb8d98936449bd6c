"""Incremental sync of a collection: connectors → parse → chunk → embed → index, plus the quality report.

Documents whose content hash is unchanged are neither parsed nor embedded again
(unless the collection's embedding model changed); documents gone from the source
are deleted; a bad document is recorded with its error and never stops the rest.

Changed documents are embedded in batches (``batch`` chunks) and each batch is written to
the index in one ``replace_documents`` call (one transaction: on PostgreSQL 2-4x faster than
one call per document). If that write is refused for a document's data (a ``BadRequest`` such
as a vector of the wrong size, or a ``ValueError``), the batch is written again one document
at a time, and only the documents refused alone are recorded as errors.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine

from aerodrome.config import CollectionConfig
from aerodrome.errors import BadRequest
from aerodrome.knowledge import collections as store
from aerodrome.knowledge.chunking import ChunkingConfig, chunk_with
from aerodrome.knowledge.connectors import make_connector
from aerodrome.knowledge.documents import ChunkDraft, DocumentError, ParsedDocument, SourceDocument
from aerodrome.knowledge.embedding import Embedder
from aerodrome.knowledge.index.base import IndexBackend, IndexedChunk
from aerodrome.knowledge.parsers import parse_document
from aerodrome.knowledge.quality import DocumentFacts, QualityRules, assess

log = logging.getLogger("aerodrome.knowledge")
Progress = Callable[[int, int | None, str], None]


def chunk_id(collection: str, document_id: str, ordinal: int, text: str) -> str:
    h = hashlib.sha256(
        f"{collection}\x00{document_id}\x00{ordinal}\x00{text}".encode("utf-8", "surrogatepass")
    )
    return h.hexdigest()[:32]


@dataclass(slots=True)
class _Pending:
    doc: SourceDocument
    parsed: ParsedDocument
    drafts: list[ChunkDraft]
    is_new: bool


# Errors a write raises for one document's data; anything else (e.g. the index is unreachable) fails the sync.
_DOCUMENT_WRITE_ERRORS = (BadRequest, ValueError)


@dataclass(slots=True)
class SyncResult:
    collection: str
    counts: Counter[str] = field(default_factory=Counter)
    errors: list[dict[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    chunks_embedded: int = 0
    quality: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "collection": self.collection,
            "documents": sum(self.counts[k] for k in ("added", "updated", "unchanged", "errors")),
            **{k: self.counts[k] for k in ("added", "updated", "unchanged", "removed", "errors", "empty")},
            "source_failed": bool(self.counts["source_failed"]),
            "chunks_embedded": self.chunks_embedded,
            "seconds": round(self.seconds, 3),
            "errors_detail": self.errors[:100],
            "quality_summary": self.quality.get("summary", {}),
        }


class CollectionSync:
    def __init__(
        self,
        engine: Engine,
        index: IndexBackend,
        name: str,
        spec: CollectionConfig,
        embedder: Embedder,
        *,
        batch: int = 64,
        progress: Progress | None = None,
    ) -> None:
        self.engine, self.index, self.name, self.spec = engine, index, name, spec
        self.embedder, self.batch = embedder, batch
        self.progress = progress or (lambda done, total, message: None)
        self.result = SyncResult(collection=name)
        self._pending: list[_Pending] = []
        self._pending_chunks = 0
        self._rows: list[dict[str, Any]] = []
        self._facts: list[DocumentFacts] = []
        self._texts: dict[str, str] = {}

    def run(self) -> SyncResult:
        started = time.perf_counter()
        store.set_sync_state(self.engine, self.name, sync_status="running")
        try:
            self._run()
        except Exception:
            store.set_sync_state(self.engine, self.name, sync_status="failed")
            raise
        self.result.seconds = time.perf_counter() - started
        store.set_sync_state(
            self.engine,
            self.name,
            sync_status="ok",
            last_sync_at=datetime.now(UTC),
            last_sync=self.result.to_dict(),
            quality=self.result.quality,
            embedding_model=self.embedder.model_id,
        )
        return self.result

    def _run(self) -> None:
        stored = store.stored_documents(self.engine, self.name)
        previous_model = store.get(self.engine, self.name)["embedding_model"]
        reembed = previous_model is not None and previous_model != self.embedder.model_id
        self.index.ensure_collection(
            self.name, dims=self.embedder.dims, embedding_model=self.embedder.model_id
        )
        chunking = ChunkingConfig.model_validate(self.spec.chunking)
        seen: set[str] = set()
        source_failed = False
        done = 0
        for source in self.spec.sources:
            for doc in make_connector(source).documents():
                done += 1
                if doc.metadata.get("source_error"):
                    source_failed = True
                if doc.source_id in seen:
                    # Leave the first document with this id alone: report, don't index, don't overwrite its row.
                    self.result.counts["errors"] += 1
                    self.result.errors.append(
                        {
                            "document_id": doc.source_id,
                            "uri": doc.uri,
                            "error": "another source already gave a document with this id",
                        }
                    )
                    continue
                seen.add(doc.source_id)
                prev = stored.get(doc.source_id)
                # quarantined and failed documents are looked at again every time
                if (
                    prev is not None
                    and prev["content_hash"] == doc.content_hash
                    and not reembed
                    and prev["status"] == "ok"
                ):
                    self.result.counts["unchanged"] += 1
                    self._facts.append(self._facts_from_row(prev))
                else:
                    self._process(doc, chunking, is_new=prev is None)
                if done % 25 == 0:
                    self.progress(done, None, f"{done} documents read")
        self._flush()
        # A source that failed as a whole (missing folder, failing SQL, unreachable sitemap) says nothing
        # about which documents are gone: keep them rather than empty the collection.
        removed = [] if source_failed else sorted(set(stored) - seen)
        self.result.counts["source_failed"] = int(source_failed)
        for doc_id in removed:
            self.index.delete_document(self.name, doc_id)
        store.delete_documents(self.engine, self.name, removed)
        self.result.counts["removed"] = len(removed)
        self._quality()
        self.progress(done, done, "finished")

    # ---------------------------------------------------------------- per document

    def _error(self, doc: SourceDocument, message: str) -> None:
        self.result.counts["errors"] += 1
        self.result.errors.append({"document_id": doc.source_id, "uri": doc.uri, "error": message[:500]})
        self.index.delete_document(self.name, doc.source_id)
        row = self._row(doc, status="error", error=message[:1000], chunks=0, chars=0, warnings=[])
        self._rows.append(row)
        self._facts.append(
            DocumentFacts(
                document_id=doc.source_id,
                title=doc.title,
                uri=doc.uri,
                text=None,
                error=message,
                warnings=[],
                modified_at=doc.modified_at,
                content_hash=doc.content_hash,
            )
        )

    def _process(self, doc: SourceDocument, chunking: ChunkingConfig, *, is_new: bool) -> None:
        if doc.error:
            self._error(doc, doc.error)
            return
        try:
            parsed = parse_document(doc)
        except DocumentError as exc:
            self._error(doc, exc.message)
            return
        drafts = chunk_with(parsed, chunking)
        self.result.counts["added" if is_new else "updated"] += 1
        text = parsed.text
        self._texts[doc.source_id] = text
        self._facts.append(
            DocumentFacts(
                document_id=doc.source_id,
                title=parsed.title or doc.title,
                uri=doc.uri,
                text=text,
                error=None,
                warnings=list(parsed.warnings),
                modified_at=doc.modified_at,
                content_hash=doc.content_hash,
            )
        )
        if not drafts:
            self.result.counts["empty"] += 1
        self._pending.append(_Pending(doc, parsed, drafts, is_new))
        self._pending_chunks += len(drafts)
        if self._pending_chunks >= self.batch:
            self._flush()

    def _row(
        self,
        doc: SourceDocument,
        *,
        status: str,
        error: str | None,
        chunks: int,
        chars: int,
        warnings: list[str],
        title: str | None = None,
    ) -> dict[str, Any]:
        return {
            "document_id": doc.source_id,
            "uri": doc.uri[:2048],
            "title": (title or doc.title or "")[:1024] or None,
            "content_hash": doc.content_hash,
            "status": status,
            "error": error,
            "warnings": warnings or None,
            "problems": None,
            "modified_at": doc.modified_at,
            "chunks": chunks,
            "chars": chars,
            "synced_at": datetime.now(UTC),
        }

    def _flush(self) -> None:
        if self._pending:
            texts = [d.text for p in self._pending for d in p.drafts]
            vectors = self.embedder.embed(texts) if texts else []
            self.result.chunks_embedded += len(vectors)
            documents: dict[str, list[IndexedChunk]] = {}
            i = 0
            for p in self._pending:
                documents[p.doc.source_id] = self._chunks(p, vectors[i : i + len(p.drafts)])
                i += len(p.drafts)
            failed = self._write(documents)
            for p in self._pending:
                if p.doc.source_id in failed:
                    self._write_failed(p, failed[p.doc.source_id])
                    continue
                self._rows.append(
                    self._row(
                        p.doc,
                        status="ok",
                        error=None,
                        chunks=len(p.drafts),
                        chars=len(p.parsed.text),
                        warnings=list(p.parsed.warnings),
                        title=p.parsed.title or p.doc.title,
                    )
                )
            self._pending.clear()
            self._pending_chunks = 0
        store.save_documents(self.engine, self.name, self._rows)
        self._rows = []

    def _chunks(self, p: _Pending, vectors: list[list[float]]) -> list[IndexedChunk]:
        title = p.parsed.title or p.doc.title
        metadata = {k: v for k, v in p.doc.metadata.items() if isinstance(v, str | int | float | bool)}
        return [
            IndexedChunk(
                chunk_id=chunk_id(self.name, p.doc.source_id, d.ordinal, d.text),
                collection=self.name,
                document_id=p.doc.source_id,
                ordinal=d.ordinal,
                text=d.text,
                embedding=vector,
                title=title,
                uri=p.doc.uri,
                heading=d.heading,
                page=d.page,
                metadata=dict(metadata),
            )
            for d, vector in zip(p.drafts, vectors, strict=True)
        ]

    def _write(self, documents: dict[str, list[IndexedChunk]]) -> dict[str, str]:
        """Writes the batch in one call, or one by one if a document's data is refused → {document_id: error}."""
        try:
            self.index.replace_documents(self.name, documents)
            return {}
        except _DOCUMENT_WRITE_ERRORS as exc:
            if len(documents) == 1:
                return {document_id: str(exc) or type(exc).__name__ for document_id in documents}
        failed: dict[str, str] = {}
        for document_id, chunks in documents.items():
            try:
                self.index.replace_document(self.name, document_id, chunks)
            except _DOCUMENT_WRITE_ERRORS as exc:
                failed[document_id] = str(exc) or type(exc).__name__
        return failed

    def _write_failed(self, p: _Pending, message: str) -> None:
        """A parsed document the index refused: counted and reported as an error instead of added/updated."""
        self.result.counts["added" if p.is_new else "updated"] -= 1
        if not p.drafts:
            self.result.counts["empty"] -= 1
        self._facts = [f for f in self._facts if f.document_id != p.doc.source_id]
        self._texts.pop(p.doc.source_id, None)
        self._error(p.doc, f"index write failed: {message}")

    # ---------------------------------------------------------------- quality

    def _facts_from_row(self, row: dict[str, Any]) -> DocumentFacts:
        return DocumentFacts(
            document_id=row["document_id"],
            title=row["title"],
            uri=row["uri"],
            text=None,
            error=row["error"],
            warnings=list(row["warnings"] or []),
            modified_at=row["modified_at"],
            content_hash=row["content_hash"],
        )

    def _quality(self) -> None:
        rules = QualityRules.model_validate(self.spec.quality)
        missing = [f.document_id for f in self._facts if f.text is None and f.error is None]
        if missing:
            texts = self.index.document_texts(self.name, missing)
            for f in self._facts:
                if f.text is None and f.error is None:
                    f.text = texts.get(f.document_id)
        report = assess(self.spec.data_class, self._facts, rules)
        data = report.to_dict()
        self.result.quality = data
        quarantine = set(report.quarantined)
        if quarantine:
            for doc_id in quarantine:
                self.index.delete_document(self.name, doc_id)
        store.mark_quarantined(self.engine, self.name, quarantine, report.problems_by_document())
