"""Use cases and their immutable spec versions in the database, with audit events."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, func, select, update
from sqlalchemy.exc import IntegrityError

from aerodrome.audit import trail
from aerodrome.errors import Conflict, NotFound
from aerodrome.storage.tables import usecase_versions, usecases
from aerodrome.usecases.spec import UseCaseSpec


class UseCaseNotFound(NotFound):
    code = "usecase_not_found"


def _current_hash(conn: Connection, usecase_id: str, version: int) -> str | None:
    return conn.execute(
        select(usecase_versions.c.spec_hash).where(
            usecase_versions.c.usecase_id == usecase_id, usecase_versions.c.version == version
        )
    ).scalar()


def save_version(
    engine: Engine, spec: UseCaseSpec, *, origin: str, source: str | None, actor: str
) -> tuple[int, bool]:
    """Store the spec as the use case's current version; returns (version, whether a new one was made).

    An unchanged spec makes no version. A use case defined in files is changed only by its file,
    one defined through the API only through the API (409 otherwise).
    """
    for attempt in range(3):  # two replicas saving at once: the loser retries on the new state
        try:
            return _save(engine, spec, origin=origin, source=source, actor=actor)
        except IntegrityError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def _save(
    engine: Engine, spec: UseCaseSpec, *, origin: str, source: str | None, actor: str
) -> tuple[int, bool]:
    now = datetime.now(UTC)
    digest = spec.digest()
    with engine.begin() as conn:
        row = conn.execute(select(usecases).where(usecases.c.id == spec.id)).mappings().first()
        unclaimed = row is not None and row["current_version"] is None  # an idea with no spec yet
        if row is not None and row["origin"] != origin and row["status"] == "active" and not unclaimed:
            where = f"the file {row['source']}" if row["origin"] == "file" else "the API"
            raise Conflict(
                f"the use case {spec.id!r} is defined by {where}; change it there", code="usecase_origin"
            )
        if (
            row is not None
            and not unclaimed
            and _current_hash(conn, spec.id, row["current_version"]) == digest
        ):
            if row["status"] != "active" or row["load_error"] is not None or row["origin"] != origin:
                conn.execute(
                    update(usecases)
                    .where(usecases.c.id == spec.id)
                    .values(status="active", load_error=None, origin=origin, source=source, updated_at=now)
                )
                if row["status"] != "active":
                    trail.record(
                        conn, actor=actor, action="usecase.restore", object_type="usecase", object_id=spec.id
                    )
            return int(row["current_version"]), False
        version = 1
        if row is not None:
            latest = conn.execute(
                select(func.max(usecase_versions.c.version)).where(usecase_versions.c.usecase_id == spec.id)
            ).scalar()
            version = int(latest or 0) + 1
        else:
            conn.execute(
                usecases.insert().values(
                    id=spec.id,
                    origin=origin,
                    source=source,
                    current_version=version,
                    status="active",
                    created_at=now,
                    updated_at=now,
                    updated_by=actor,
                )
            )
        conn.execute(
            usecase_versions.insert().values(
                usecase_id=spec.id,
                version=version,
                spec=spec.canonical(),
                spec_hash=digest,
                created_at=now,
                created_by=actor,
            )
        )
        if row is not None:
            conn.execute(
                update(usecases)
                .where(usecases.c.id == spec.id)
                .values(
                    current_version=version,
                    status="active",
                    load_error=None,
                    origin=origin,
                    source=source,
                    updated_at=now,
                    updated_by=actor,
                )
            )
        if row is not None:
            from aerodrome.evidence.transitions import note_criteria_change

            note_criteria_change(conn, spec.id, spec, version, actor=actor)
        trail.record(
            conn,
            actor=actor,
            action="usecase.create" if version == 1 else "usecase.version",
            object_type="usecase",
            object_id=spec.id,
            details={"version": version, "spec_hash": digest, "origin": origin, "source": source},
        )
    return version, True


def record_load_error(engine: Engine, usecase_id: str, problems: list[dict[str, Any]]) -> bool:
    """Note that the newest file of a use case is broken (its last valid version keeps serving)."""
    with engine.begin() as conn:
        result = conn.execute(
            update(usecases)
            .where(usecases.c.id == usecase_id, usecases.c.origin == "file")
            .values(load_error=problems)
        )
        return bool(result.rowcount)


def remove(engine: Engine, usecase_id: str, *, actor: str, origin: str | None = None) -> None:
    with engine.begin() as conn:
        row = conn.execute(select(usecases).where(usecases.c.id == usecase_id)).mappings().first()
        if row is None or row["status"] != "active":
            raise UseCaseNotFound(f"no use case {usecase_id!r}")
        if origin is not None and row["origin"] != origin:
            raise Conflict(
                f"the use case {usecase_id!r} is defined by the file {row['source']}; remove the file",
                code="usecase_origin",
            )
        conn.execute(
            update(usecases)
            .where(usecases.c.id == usecase_id)
            .values(status="removed", updated_at=datetime.now(UTC), updated_by=actor)
        )
        trail.record(conn, actor=actor, action="usecase.remove", object_type="usecase", object_id=usecase_id)


def list_active(engine: Engine) -> list[dict[str, Any]]:
    """Every active use case with its current spec."""
    query = (
        select(usecases, usecase_versions.c.spec, usecase_versions.c.spec_hash)
        .join(
            usecase_versions,
            (usecase_versions.c.usecase_id == usecases.c.id)
            & (usecase_versions.c.version == usecases.c.current_version),
        )
        .where(usecases.c.status == "active")
        .order_by(usecases.c.id)
    )
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(query).mappings()]


def signature(engine: Engine) -> list[tuple[str, int, str, Any]]:
    """Cheap state of the table: what a replica compares to know whether to reload."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(usecases.c.id, usecases.c.current_version, usecases.c.status, usecases.c.updated_at)
        ).all()
    return sorted((r[0], r[1], r[2], r[3]) for r in rows)


def get(engine: Engine, usecase_id: str) -> dict[str, Any]:
    with engine.connect() as conn:
        row = conn.execute(select(usecases).where(usecases.c.id == usecase_id)).mappings().first()
    if row is None or row["status"] != "active":
        raise UseCaseNotFound(f"no use case {usecase_id!r}")
    return dict(row)


def versions(engine: Engine, usecase_id: str) -> list[dict[str, Any]]:
    get(engine, usecase_id)
    query = (
        select(
            usecase_versions.c.version,
            usecase_versions.c.spec_hash,
            usecase_versions.c.created_at,
            usecase_versions.c.created_by,
        )
        .where(usecase_versions.c.usecase_id == usecase_id)
        .order_by(usecase_versions.c.version)
    )
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(query).mappings()]


def version(engine: Engine, usecase_id: str, number: int) -> dict[str, Any]:
    query = select(usecase_versions).where(
        usecase_versions.c.usecase_id == usecase_id, usecase_versions.c.version == number
    )
    with engine.connect() as conn:
        row = conn.execute(query).mappings().first()
    if row is None:
        raise NotFound(
            f"the use case {usecase_id!r} has no version {number}", code="usecase_version_not_found"
        )
    return dict(row)


def file_defined(engine: Engine) -> dict[str, str | None]:
    """Active use cases defined by files: id → source file."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(usecases.c.id, usecases.c.source).where(
                usecases.c.origin == "file", usecases.c.status == "active"
            )
        ).all()
    return {r[0]: r[1] for r in rows}


def current_spec(conn: Connection, usecase_id: str) -> UseCaseSpec | None:
    """The spec of the version being served, None for an idea with no spec yet (or no such use case)."""
    stored = conn.execute(
        select(usecase_versions.c.spec)
        .select_from(
            usecases.join(
                usecase_versions,
                (usecase_versions.c.usecase_id == usecases.c.id)
                & (usecase_versions.c.version == usecases.c.current_version),
            )
        )
        .where(usecases.c.id == usecase_id)
    ).scalar()
    return UseCaseSpec.model_validate(stored) if stored is not None else None
