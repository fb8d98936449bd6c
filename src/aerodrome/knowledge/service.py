"""The knowledge service: one index, the embedders, sync and access-controlled retrieval.

Blocking by design (called from job threads, the CLI, or ``asyncio.to_thread`` in handlers).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from sqlalchemy import Engine

from aerodrome.catalog.catalog import Catalog
from aerodrome.config import CollectionConfig, PlatformConfig
from aerodrome.errors import BadRequest, Forbidden
from aerodrome.identity.principal import Principal
from aerodrome.knowledge import collections as store
from aerodrome.knowledge.embedding import Embedder, LocalEmbedding, make_embedder
from aerodrome.knowledge.index.base import Hit, IndexBackend
from aerodrome.knowledge.search import Mode, hybrid_search
from aerodrome.knowledge.sync import CollectionSync, Progress
from aerodrome.storage.engine import is_sqlite, normalize_url

MODES = ("hybrid", "lexical", "dense")


def open_index(config: PlatformConfig, database_url: str) -> IndexBackend:
    k = config.knowledge
    if k.index == "postgres":
        from aerodrome.knowledge.index.postgres import PostgresIndex

        if not k.index_url:
            raise BadRequest("knowledge.index is postgres but knowledge.index_url is not set")
        return PostgresIndex(k.index_url)
    from aerodrome.knowledge.index.sqlite import SQLiteIndex

    if k.index_url:
        path = Path(k.index_url.removeprefix("sqlite:///"))
        if not path.is_absolute():
            path = config.base_dir / path
    elif is_sqlite(database_url) and ":memory:" not in database_url:
        # Beside the platform database, never inside it: the index uses pysqlite3 (for sqlite-vec) and two
        # SQLite libraries in one process must not share a file (their POSIX locks do not see each other).
        db = Path(normalize_url(database_url).removeprefix("sqlite:///"))
        path = db.with_name(db.stem + ".knowledge.db")
    else:
        path = config.base_dir / "knowledge.db"
    return SQLiteIndex(str(path))


def resolve_paths(spec: CollectionConfig, base_dir: Path) -> CollectionConfig:
    """Relative source paths are relative to the config file's folder."""
    sources = []
    for src in spec.sources:
        path = src.get("path")
        if isinstance(path, str) and not Path(path).expanduser().is_absolute():
            src = {**src, "path": str((base_dir / path).resolve())}
        sources.append(src)
    return spec.model_copy(update={"sources": sources})


def citation(hit: Hit, data_class: str | None = None) -> dict[str, Any]:
    return {
        "document_id": hit.document_id,
        "chunk_id": hit.chunk_id,
        "collection": hit.collection,
        "score": round(hit.score, 6),
        "title": hit.title,
        "text": hit.text,
        "source": {"uri": hit.uri, "page": hit.page, "section": hit.heading, "collection": hit.collection},
        "data_class": data_class,
        "metadata": hit.metadata,
    }


class KnowledgeService:
    def __init__(
        self,
        engine: Engine,
        config: PlatformConfig,
        catalog: Callable[[], Catalog],
        *,
        database_url: str | None = None,
    ) -> None:
        self.engine = engine
        self.config = config
        self._catalog = catalog
        self.index = open_index(config, database_url or config.resolved_database_url())
        self._local: LocalEmbedding | None = None
        self._embedders: dict[tuple[str, int], Embedder] = {}
        self._lock = threading.Lock()

    def embedder(self, spec: CollectionConfig) -> Embedder:
        """The collection's embedder; a catalog alias is looked up again whenever the catalog changes."""
        catalog = self._catalog()
        key = (spec.embedding, 0 if spec.embedding == "local" else id(catalog))
        with self._lock:
            found = self._embedders.get(key)
            if found is None:
                if spec.embedding == "local" and self._local is None:
                    self._local = LocalEmbedding()
                if spec.embedding != "local":  # drop what was built on an older catalog
                    self._embedders = {k: v for k, v in self._embedders.items() if k[0] != spec.embedding}
                found = make_embedder(
                    spec.embedding, catalog, local=self._local, base_dir=self.config.base_dir
                )
                self._embedders[key] = found
            return found

    def local_embedding(self) -> LocalEmbedding:
        """The process's one local model (shared with collections that embed locally)."""
        with self._lock:
            if self._local is None:
                self._local = LocalEmbedding()
            return self._local

    def sync(self, name: str, progress: Progress | None = None) -> dict[str, Any]:
        spec = resolve_paths(store.spec_of(self.engine, name), self.config.base_dir)
        job = CollectionSync(
            self.engine,
            self.index,
            name,
            spec,
            self.embedder(spec),
            batch=self.config.knowledge.embedding_batch,
            progress=progress,
        )
        return job.run().to_dict()

    def retrieve(
        self,
        principal: Principal | None,
        names: list[str] | None,
        query: str,
        *,
        top_k: int = 10,
        filters: dict[str, Any] | None = None,
        min_score: float | None = None,
        mode: str = "hybrid",
    ) -> list[dict[str, Any]]:
        if mode not in MODES:
            raise BadRequest(f"mode must be one of {list(MODES)}", param="mode")
        if not query.strip():
            raise BadRequest("query must not be empty", param="query")
        if principal is None:  # the operator at the command line
            allowed = [store.get(self.engine, n)["name"] for n in names or []] or [
                r["name"] for r in store.list_all(self.engine)
            ]
        elif names:
            for name in names:
                store.get(self.engine, name)  # 404 for an unknown collection
            allowed = store.readable(self.engine, principal, names)
            denied = sorted(set(names) - set(allowed))
            if denied:
                raise Forbidden(
                    f"you may not read the collection(s) {denied}",
                    code="collection_not_permitted",
                    param="collections",
                )
        else:
            allowed = store.readable(self.engine, principal)
        if not allowed:
            return []
        groups: dict[str, list[str]] = {}
        specs = {n: store.spec_of(self.engine, n) for n in allowed}
        for name, spec in specs.items():
            groups.setdefault(spec.embedding, []).append(name)
        hits: list[Hit] = []
        for names_in_group in groups.values():
            vector = None
            if mode != "lexical":
                vector = self.embedder(specs[names_in_group[0]]).embed([query])[0]
            hits += hybrid_search(
                self.index,
                names_in_group,
                query,
                vector,
                top_k,
                filters,
                mode=cast(Mode, mode),
                min_score=min_score,
            )
        hits.sort(key=lambda h: h.score, reverse=True)
        return [citation(h, specs[h.collection].data_class) for h in hits[:top_k]]

    def close(self) -> None:
        self.index.close()
        if self._local is not None:
            self._local.close()
