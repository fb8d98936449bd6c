"""What use-case specs may refer to, read off the platform as it stands."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Engine

from aerodrome.catalog.catalog import Catalog
from aerodrome.knowledge import collections as collection_store
from aerodrome.usecases.validation import PlatformRefs


def platform_refs(
    catalog: Catalog, departments: Iterable[str], engine: Engine, *, webhooks: Iterable[str] | None = None
) -> PlatformRefs:
    return PlatformRefs(
        departments=frozenset(departments),
        chat_aliases=catalog.aliases_of_kind("chat"),
        collections=frozenset(r["name"] for r in collection_store.list_all(engine)),
        webhooks=None if webhooks is None else frozenset(webhooks),
    )
