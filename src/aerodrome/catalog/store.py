"""Catalog entries added through the API, stored in the database and audited."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy import Connection, Engine, and_, delete, select

from aerodrome.audit import trail
from aerodrome.catalog.catalog import Catalog
from aerodrome.catalog.secrets import resolve_secret
from aerodrome.config import PlatformConfig
from aerodrome.errors import BadRequest, ConfigError, NotFound
from aerodrome.storage.tables import catalog_entries

KINDS = ("provider", "deployment", "alias")

# Checks a change before it is written: (catalog before, catalog after) → raise to refuse, or
# return what to write in the change's transaction (e.g. the evidence of a model upgrade).
Guard = Callable[[Catalog, Catalog], Callable[[Connection], None] | None]


def load_entries(engine: Engine) -> list[tuple[str, dict[str, Any]]]:
    order = {k: i for i, k in enumerate(KINDS)}
    with engine.connect() as conn:
        rows = conn.execute(select(catalog_entries.c.kind, catalog_entries.c.spec)).all()
    return sorted(((r.kind, r.spec) for r in rows), key=lambda e: order.get(e[0], 9))


def build_catalog(config: PlatformConfig, engine: Engine) -> Catalog:
    return Catalog.build(config.providers, config.deployments, config.aliases, load_entries(engine))


def put_entry(
    engine: Engine,
    config: PlatformConfig,
    kind: str,
    spec: dict[str, Any],
    *,
    actor: str,
    guard: Guard | None = None,
) -> Catalog:
    """Add or replace an API catalog entry; returns the new catalog (validated as a whole)."""
    if kind not in KINDS:
        raise BadRequest(f"unknown catalog kind {kind!r}")
    current = load_entries(engine)
    entries = [e for e in current if not (e[0] == kind and e[1].get("name") == spec.get("name"))]
    entries.append((kind, spec))
    try:
        catalog = Catalog.build(config.providers, config.deployments, config.aliases, entries)
    except ValidationError as exc:
        # Never echo the input values: a raw secret sent by mistake must not come back.
        problems = [(".".join(str(p) for p in e["loc"]), e["msg"]) for e in exc.errors(include_input=False)]
        message = "; ".join(f"{loc}: {msg}" if loc else msg for loc, msg in problems)
        raise BadRequest(
            f"invalid {kind} {spec.get('name')!r}: {message}",
            param=problems[0][0] or None if problems else None,
        ) from None
    except ConfigError as exc:
        raise BadRequest(exc.message) from None
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    if kind == "provider":
        # A reference that cannot be read would break every provider build: refuse it now.
        ref = catalog.providers[str(spec["name"])].api_key
        if ref is not None and ref.startswith("file:"):
            try:
                resolve_secret(ref, base_dir=config.base_dir)
            except ConfigError as exc:
                raise BadRequest(exc.message, param="api_key") from None
    name = str(spec["name"])
    commit = guard(_built(config, current), catalog) if guard is not None else None
    with engine.begin() as conn:
        conn.execute(
            delete(catalog_entries).where(
                and_(catalog_entries.c.kind == kind, catalog_entries.c.name == name)
            )
        )
        conn.execute(
            catalog_entries.insert().values(
                kind=kind, name=name, spec=spec, updated_at=datetime.now(UTC), updated_by=actor
            )
        )
        safe = {k: v for k, v in spec.items() if k not in ("api_key", "headers")}
        trail.record(
            conn, actor=actor, action=f"catalog.{kind}.put", object_type=kind, object_id=name, details=safe
        )
        if commit is not None:
            commit(conn)
    return catalog


def _built(config: PlatformConfig, entries: list[tuple[str, dict[str, Any]]]) -> Catalog:
    return Catalog.build(config.providers, config.deployments, config.aliases, entries)


def delete_entry(
    engine: Engine, config: PlatformConfig, kind: str, name: str, *, actor: str, guard: Guard | None = None
) -> Catalog:
    entries = load_entries(engine)
    if not any(k == kind and s.get("name") == name for k, s in entries):
        raise NotFound(
            f"no {kind} {name!r} added through the API (entries of the config file are changed there)"
        )
    remaining = [e for e in entries if not (e[0] == kind and e[1].get("name") == name)]
    try:
        catalog = Catalog.build(config.providers, config.deployments, config.aliases, remaining)
    except ConfigError as exc:
        raise BadRequest(f"cannot remove {kind} {name!r}: {exc.message}") from None
    commit = guard(_built(config, entries), catalog) if guard is not None else None
    with engine.begin() as conn:
        conn.execute(
            delete(catalog_entries).where(
                and_(catalog_entries.c.kind == kind, catalog_entries.c.name == name)
            )
        )
        trail.record(conn, actor=actor, action=f"catalog.{kind}.delete", object_type=kind, object_id=name)
        if commit is not None:
            commit(conn)
    return catalog
