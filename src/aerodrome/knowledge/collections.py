"""Collections in the database: their specs (from the config file or the API), readers and documents."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, delete, select, update

from aerodrome.audit import trail
from aerodrome.config import CollectionConfig, PlatformConfig
from aerodrome.errors import BadRequest, Conflict, NotFound
from aerodrome.identity.principal import Principal
from aerodrome.storage.tables import collections, documents


def _now() -> datetime:
    return datetime.now(UTC)


def can_read(spec: CollectionConfig, principal: Principal) -> bool:
    """Readers are departments ("*" for all) or roles; nobody else, admins included."""
    depts = spec.readers.departments
    return "*" in depts or principal.department_id in depts or bool(principal.roles & set(spec.readers.roles))


def visible(principal: Principal, scope: str, spec: CollectionConfig) -> bool:
    """Whether a collection shows to a principal whose ``collections.read`` scope is ``scope``.

    Scope "all" sees every collection exists; anyone else only those they may read.
    """
    return scope == "all" or can_read(spec, principal)


def _spec(row: Any) -> CollectionConfig:
    return CollectionConfig.model_validate(row.spec)


def upsert(engine: Engine, spec: CollectionConfig, *, origin: str, actor: str) -> None:
    data = spec.model_dump(mode="json")
    with engine.begin() as conn:
        row = conn.execute(select(collections).where(collections.c.name == spec.name)).first()
        if row is None:
            conn.execute(
                collections.insert().values(
                    name=spec.name,
                    spec=data,
                    origin=origin,
                    sync_status="never",
                    created_at=_now(),
                    updated_at=_now(),
                )
            )
            trail.record(
                conn,
                actor=actor,
                action="collection.create",
                object_type="collection",
                object_id=spec.name,
                details={"origin": origin, **data},
            )
            return
        if origin == "api" and row.origin == "config":
            raise Conflict(
                f"collection {spec.name!r} is defined in the config file; change it there",
                code="collection_in_config",
            )
        if row.spec != data:
            conn.execute(
                update(collections)
                .where(collections.c.name == spec.name)
                .values(spec=data, origin=origin, updated_at=_now())
            )
            trail.record(
                conn,
                actor=actor,
                action="collection.update",
                object_type="collection",
                object_id=spec.name,
                details=data,
            )


def apply_config(engine: Engine, config: PlatformConfig) -> None:
    for spec in config.collections:
        upsert(engine, spec, origin="config", actor="config")


def get(engine: Engine, name: str) -> dict[str, Any]:
    with engine.connect() as conn:
        row = conn.execute(select(collections).where(collections.c.name == name)).mappings().first()
    if row is None:
        raise NotFound(f"no collection {name!r}", code="collection_not_found")
    return dict(row)


def spec_of(engine: Engine, name: str) -> CollectionConfig:
    return CollectionConfig.model_validate(get(engine, name)["spec"])


def list_all(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(select(collections).order_by(collections.c.name)).mappings()]


def readable(engine: Engine, principal: Principal, names: list[str] | None = None) -> list[str]:
    """The collections (of ``names``, or all) the principal may retrieve from."""
    out = []
    for row in list_all(engine):
        if names is not None and row["name"] not in names:
            continue
        if can_read(CollectionConfig.model_validate(row["spec"]), principal):
            out.append(row["name"])
    return out


def remove(engine: Engine, name: str, *, actor: str, allow_config: bool = False) -> None:
    row = get(engine, name)
    if row["origin"] == "config" and not allow_config:
        raise BadRequest(f"collection {name!r} is defined in the config file; remove it there")
    with engine.begin() as conn:
        conn.execute(delete(documents).where(documents.c.collection == name))
        conn.execute(delete(collections).where(collections.c.name == name))
        trail.record(conn, actor=actor, action="collection.remove", object_type="collection", object_id=name)


def set_sync_state(engine: Engine, name: str, **values: Any) -> None:
    with engine.begin() as conn:
        conn.execute(
            update(collections).where(collections.c.name == name).values(updated_at=_now(), **values)
        )


# ------------------------------------------------------------------ documents


def stored_documents(engine: Engine, name: str) -> dict[str, dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(select(documents).where(documents.c.collection == name)).mappings()
        return {r["document_id"]: dict(r) for r in rows}


def save_documents(engine: Engine, name: str, rows: list[dict[str, Any]]) -> None:
    """Insert or replace document rows (one transaction)."""
    if not rows:
        return
    ids = [r["document_id"] for r in rows]
    with engine.begin() as conn:
        for start in range(0, len(ids), 500):
            conn.execute(
                delete(documents).where(
                    documents.c.collection == name, documents.c.document_id.in_(ids[start : start + 500])
                )
            )
        conn.execute(documents.insert(), [{"collection": name, **r} for r in rows])


def delete_documents(engine: Engine, name: str, ids: list[str]) -> None:
    with engine.begin() as conn:
        for start in range(0, len(ids), 500):
            conn.execute(
                delete(documents).where(
                    documents.c.collection == name, documents.c.document_id.in_(ids[start : start + 500])
                )
            )


def list_documents(
    engine: Engine, name: str, *, status: str | None = None, limit: int = 100, offset: int = 0
) -> list[dict[str, Any]]:
    q = select(documents).where(documents.c.collection == name).order_by(documents.c.document_id)
    if status:
        q = q.where(documents.c.status == status)
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(q.limit(limit).offset(offset)).mappings()]


def mark_quarantined(
    engine: Engine, name: str, quarantined: set[str], problems: dict[str, list[str]]
) -> None:
    """Record each document's quality problems, and quarantine the ones the rules say."""
    with engine.begin() as conn:
        conn.execute(update(documents).where(documents.c.collection == name).values(problems=None))
        for doc_id, kinds in problems.items():
            values: dict[str, Any] = {"problems": sorted(kinds)}
            if doc_id in quarantined:
                values["status"] = "quarantined"
            conn.execute(
                update(documents)
                .where(documents.c.collection == name, documents.c.document_id == doc_id)
                .values(**values)
            )
        for doc_id in quarantined - set(problems):
            conn.execute(
                update(documents)
                .where(documents.c.collection == name, documents.c.document_id == doc_id)
                .values(status="quarantined")
            )
