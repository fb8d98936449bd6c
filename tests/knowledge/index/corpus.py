"""A tiny hand-made corpus with 4-dimensional vectors (axes: leave, laptop, refund, security)."""

from __future__ import annotations

import hashlib
from typing import Any

from aerodrome.knowledge.index.base import IndexBackend, IndexedChunk

DIMS = 4
MODEL = "test-4d"

DOCS: dict[str, tuple[str, list[float], dict[str, Any]]] = {
    "leave.md": ("Parental leave lasts sixteen weeks for every employee.", [1.0, 0.1, 0.0, 0.05],
                 {"lang": "en", "dept": "hr", "year": 2024, "public": True}),
    "annual.md": ("Annual holiday requests go through the HR portal.", [0.8, 0.0, 0.1, 0.0],
                  {"lang": "en", "dept": "hr", "year": 2023, "public": False}),
    "laptop.md": ("Laptop replacement happens every three years.", [0.0, 1.0, 0.05, 0.1],
                  {"lang": "en", "dept": "it", "year": 2024, "public": True}),
    "refund.md": ("Refunds are issued within thirty days of purchase.", [0.05, 0.0, 1.0, 0.0],
                  {"lang": "en", "dept": "sales", "year": 2022, "public": True}),
    "phishing.md": ("Report a suspicious email to the security team.", [0.0, 0.2, 0.0, 1.0],
                    {"lang": "en", "dept": "it", "year": 2024, "public": True}),
    "conges.md": ("Le congé parental dure seize semaines.", [0.95, 0.0, 0.0, 0.1],
                  {"lang": "fr", "dept": "hr", "year": 2024, "public": True}),
}  # fmt: skip


def chunk_id(collection: str, document_id: str, ordinal: int, text: str) -> str:
    return hashlib.sha256(f"{collection}\x00{document_id}\x00{ordinal}\x00{text}".encode()).hexdigest()[:32]


def chunk(collection: str, document_id: str, text: str, vector: list[float], ordinal: int = 0,
          metadata: dict[str, Any] | None = None) -> IndexedChunk:  # fmt: skip
    return IndexedChunk(
        chunk_id=chunk_id(collection, document_id, ordinal, text), collection=collection,
        document_id=document_id, ordinal=ordinal, text=text, embedding=vector,
        title=document_id.split(".")[0].title(), uri=f"file:///kb/{document_id}", heading="Policy",
        page=1, metadata=dict(metadata or {}),
    )  # fmt: skip


def load(backend: IndexBackend, collection: str = "kb") -> None:
    backend.ensure_collection(collection, dims=DIMS, embedding_model=MODEL)
    for document_id, (text, vector, metadata) in DOCS.items():
        backend.replace_document(
            collection, document_id, [chunk(collection, document_id, text, vector, 0, metadata)]
        )
