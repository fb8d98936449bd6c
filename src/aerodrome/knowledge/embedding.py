"""Embedding chunks and queries: the built-in local model or an embeddings alias of the catalog.

A collection records the ``model_id`` its index was built with; a different one
means every document is re-embedded at the next sync.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from typing import Any, Protocol

import aiohttp

from aerodrome.catalog.catalog import Catalog
from aerodrome.catalog.secrets import resolve_secret
from aerodrome.errors import BadRequest
from aerodrome.hookspecs import provider_registry
from aerodrome.providers.base import ProviderContext
from aerodrome.providers.local_embeddings import DIMENSIONS, MODEL_NAME, LocalEmbedder, as_floats


class Embedder(Protocol):
    model_id: str

    @property
    def dims(self) -> int: ...

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """Blocking; call from a worker thread."""
        ...


class LocalEmbedding:
    """all-MiniLM-L6-v2 on the CPU, loaded once per process (shared by every collection)."""

    model_id = f"local:{MODEL_NAME}"

    def __init__(self) -> None:
        self._model = LocalEmbedder()

    @property
    def dims(self) -> int:
        return DIMENSIONS

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        return [as_floats(raw) for raw in self._model.encode(list(texts))]

    def close(self) -> None:
        self._model.close()


class CatalogEmbedding:
    """An embeddings alias of the catalog, called with its own HTTP session (usable from any thread)."""

    def __init__(self, alias: str, catalog: Catalog, *, base_dir: Any = None) -> None:
        aliased = catalog.aliases.get(alias)
        if aliased is None:
            raise BadRequest(
                f"embedding {alias!r} is neither 'local' nor an alias of the catalog", param="embedding"
            )
        deps = [
            catalog.deployments[d] for d in aliased.deployments if catalog.deployments[d].status != "blocked"
        ]
        deps = [d for d in deps if d.kind == "embeddings"]
        if not deps:
            raise BadRequest(f"alias {alias!r} has no usable embeddings deployment", param="embedding")
        self._dep = deps[0]
        self._provider_config = catalog.providers[self._dep.provider]
        self._api_key = resolve_secret(self._provider_config.api_key, base_dir=base_dir)
        self.model_id = f"{self._provider_config.kind}:{self._dep.model}"
        self._dims: int | None = None
        self._lock = threading.Lock()

    @property
    def dims(self) -> int:
        if self._dims is None:
            self.embed(["dimension probe"])
        assert self._dims is not None
        return self._dims

    async def _call(self, texts: list[str]) -> list[list[float]]:
        async with aiohttp.ClientSession() as http:
            factory = provider_registry().get(self._provider_config.kind)
            provider = factory(
                ProviderContext(config=self._provider_config, http=http, api_key=self._api_key)
            )
            try:
                data = await provider.embeddings(self._dep, {"model": self._dep.model, "input": texts})
            finally:
                await provider.aclose()
        rows = sorted(data["data"], key=lambda d: d.get("index", 0))
        return [list(map(float, r["embedding"])) for r in rows]

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        vectors = asyncio.run(self._call(list(texts)))
        with self._lock:
            if vectors:
                self._dims = len(vectors[0])
        return vectors


def make_embedder(
    name: str, catalog: Catalog, *, local: LocalEmbedding | None = None, base_dir: Any = None
) -> Embedder:
    if name == "local":
        return local or LocalEmbedding()
    return CatalogEmbedding(name, catalog, base_dir=base_dir)
