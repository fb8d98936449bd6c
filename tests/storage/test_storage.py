"""Storage on SQLite and PostgreSQL: migrations, identity round-trips, the audit chain."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, create_engine, inspect, text

from aerodrome.audit import trail
from aerodrome.config import Budget, DepartmentConfig, UserConfig
from aerodrome.errors import BadRequest, Conflict, NotFound, SchemaOutOfDate
from aerodrome.identity import store
from aerodrome.identity.authenticator import principal_from_row
from aerodrome.identity.keys import parse_prefix
from aerodrome.storage import migrate
from aerodrome.storage.engine import make_engine, normalize_url
from aerodrome.storage.tables import metadata

TABLES = {"departments", "users", "api_keys", "catalog_entries", "runs", "audit_events"}


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    eng = make_engine(db_url)
    try:
        yield eng
    finally:
        eng.dispose()


@pytest.fixture
def migrated(engine: Engine) -> Engine:
    migrate.upgrade(engine)
    return engine


def _tables(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names()) - {"alembic_version"}


def test_upgrade_from_empty_to_head(engine: Engine) -> None:
    assert migrate.current_revision(engine) is None
    assert _tables(engine) == set()
    migrate.upgrade(engine)
    assert migrate.current_revision(engine) == migrate.head_revision(engine) is not None
    assert _tables(engine) == set(metadata.tables) and _tables(engine) >= TABLES
    migrate.ensure_current(engine, auto_migrate=False)  # up to date: no error


def test_downgrade_to_base_and_upgrade_again(migrated: Engine) -> None:
    store.upsert_department(migrated, DepartmentConfig(id="hr"))
    migrate.downgrade(migrated, "base")
    assert migrate.current_revision(migrated) is None
    assert _tables(migrated) == set()
    migrate.upgrade(migrated)
    assert migrate.current_revision(migrated) == migrate.head_revision(migrated)
    assert store.department_exists(migrated, "hr") is False  # the data went with the schema


def test_schema_matches_the_tables_module(migrated: Engine) -> None:
    """No drift between tables.py and the migrations."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    with migrated.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []


def test_ensure_current_on_a_stale_schema(engine: Engine, db_url: str) -> None:
    with pytest.raises(SchemaOutOfDate) as exc:
        migrate.ensure_current(engine, auto_migrate=False)
    assert "aerodrome db upgrade" in exc.value.message
    assert exc.value.code == "schema_out_of_date"
    assert _tables(engine) == set()  # nothing was created behind the operator's back
    migrate.ensure_current(engine, auto_migrate=True)
    assert migrate.current_revision(engine) == migrate.head_revision(engine)


def test_sqlite_is_in_wal_mode(tmp_path) -> None:  # type: ignore[no-untyped-def]
    eng = make_engine(f"sqlite:///{tmp_path}/wal.db")
    try:
        with eng.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    finally:
        eng.dispose()


def test_postgres_urls_use_psycopg3() -> None:
    assert normalize_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalize_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalize_url("sqlite:///x.db") == "sqlite:///x.db"


def test_identity_round_trip(migrated: Engine) -> None:
    store.upsert_department(
        migrated, DepartmentConfig(id="hr", name="HR", eligible_users=12, content_logging="full")
    )
    store.upsert_department(migrated, DepartmentConfig(id="finance", name="Finance"))
    user_id = store.upsert_user(
        migrated,
        UserConfig(
            email="ann@example.com",
            name="Ann",
            department="hr",
            roles=["builder", "user"],
            attributes={"cohort": "volunteer"},
        ),
    )
    # idempotent: the same user again is the same row
    assert (
        store.upsert_user(
            migrated,
            UserConfig(
                email="ann@example.com",
                name="Ann",
                department="hr",
                roles=["builder", "user"],
                attributes={"cohort": "volunteer"},
            ),
        )
        == user_id
    )
    assert store.content_logging_policies(migrated) == {"hr": "full", "finance": "metadata"}
    user = store.user_by_email(migrated, "ann@example.com")
    assert user is not None
    assert (user["department_id"], user["roles"], user["attributes"]) == (
        "hr",
        ["builder", "user"],
        {"cohort": "volunteer"},
    )
    expires = datetime.now(UTC) + timedelta(days=3)
    plaintext, record = store.create_key(
        migrated,
        store.KeyRequest(
            department_id="hr",
            role="builder",
            name="ann's",
            user_email="ann@example.com",
            aliases=["chat-small"],
            rpm=10,
            tpm=1000,
            budget=Budget(usd=5, period="day"),
            expires_at=expires,
        ),
        actor="test",
    )
    prefix = parse_prefix(plaintext)
    assert prefix == record["prefix"]
    row = store.load_key(migrated, prefix)
    assert row is not None
    p = principal_from_row(row)
    assert (p.name, p.department_id, p.roles, p.user_id) == (
        "ann@example.com",
        "hr",
        frozenset({"builder"}),
        user_id,
    )
    assert p.aliases == frozenset({"chat-small"}) and (p.rpm, p.tpm) == (10, 1000)
    assert p.budget is not None and (p.budget.usd, p.budget.period) == (5, "day")
    assert p.expires_at is not None and abs(p.expires_at - expires.timestamp()) < 1e-3
    listed = store.list_keys(migrated, None, "all")
    assert [k["prefix"] for k in listed] == [prefix] and "hash" not in listed[0]
    store.revoke_key(migrated, prefix, actor="test")
    with pytest.raises(Conflict):
        store.revoke_key(migrated, record["id"], actor="test")
    assert store.load_key(migrated, prefix)["revoked_at"] is not None  # type: ignore[index]
    assert store.list_keys(migrated, None, "all", include_revoked=False) == []


def test_create_key_refuses_bad_references(migrated: Engine) -> None:
    store.upsert_department(migrated, DepartmentConfig(id="hr"))
    store.upsert_department(migrated, DepartmentConfig(id="finance"))
    store.upsert_user(migrated, UserConfig(email="fin@example.com", department="finance"))
    with pytest.raises(NotFound):
        store.create_key(migrated, store.KeyRequest(department_id="nowhere", role="user"), actor="t")
    with pytest.raises(BadRequest):
        store.create_key(migrated, store.KeyRequest(department_id="hr", role="wizard"), actor="t")
    with pytest.raises(NotFound):
        store.create_key(
            migrated,
            store.KeyRequest(department_id="hr", role="user", user_email="ghost@example.com"),
            actor="t",
        )
    with pytest.raises(BadRequest):
        store.create_key(
            migrated,
            store.KeyRequest(department_id="hr", role="user", user_email="fin@example.com"),
            actor="t",
        )
    assert store.list_keys(migrated, None, "all") == []


def _some_events(engine: Engine) -> None:
    for dept in ("a", "b", "c", "d"):
        store.upsert_department(engine, DepartmentConfig(id=dept, name=dept.upper()))


def test_audit_trail_chains(migrated: Engine) -> None:
    _some_events(migrated)
    events = list(reversed(trail.list_events(migrated)["data"]))
    assert [e["action"] for e in events] == ["department.create"] * 4
    assert events[0]["prev_hash"] == trail.GENESIS
    for before, after in itertools.pairwise(events):
        assert after["prev_hash"] == before["hash"]
    result = trail.verify(migrated)
    assert result.ok and result.events == 4


def test_audit_trail_detects_a_tampered_event(migrated: Engine) -> None:
    _some_events(migrated)
    seqs = [e["seq"] for e in reversed(trail.list_events(migrated)["data"])]
    with migrated.begin() as conn:
        conn.execute(
            text("UPDATE audit_events SET details = :d WHERE seq = :s"),
            {"d": '{"name": "tampered"}', "s": seqs[1]},
        )
    result = trail.verify(migrated)
    assert not result.ok and result.first_bad_seq == seqs[1]
    assert "hash" in result.reason


def test_audit_trail_detects_a_deleted_event(migrated: Engine) -> None:
    _some_events(migrated)
    seqs = [e["seq"] for e in reversed(trail.list_events(migrated)["data"])]
    with migrated.begin() as conn:
        conn.execute(text("DELETE FROM audit_events WHERE seq = :s"), {"s": seqs[1]})
    result = trail.verify(migrated)
    assert not result.ok and result.first_bad_seq == seqs[2]
    assert "link" in result.reason


def test_audit_trail_verifies_whatever_the_session_time_zone(migrated: Engine, db_url: str) -> None:
    """An operator's PostgreSQL may run in another time zone; the chain must still verify."""
    _some_events(migrated)
    if not db_url.startswith("postgresql"):
        pytest.skip("time zones of the session are a PostgreSQL matter")
    other = create_engine(normalize_url(db_url), connect_args={"options": "-c timezone=America/New_York"})
    try:
        with other.connect() as conn:
            assert conn.exec_driver_sql("SHOW timezone").scalar() == "America/New_York"
        result = trail.verify(other)
        assert result.ok, result
    finally:
        other.dispose()


def test_concurrent_writers_keep_one_chain(migrated: Engine) -> None:
    """Keys created at the same time by many threads: every event is chained, none forks."""
    store.upsert_department(migrated, DepartmentConfig(id="hr"))

    def make(i: int) -> str:
        return store.create_key(
            migrated, store.KeyRequest(department_id="hr", role="user", name=f"k{i}"), actor=f"writer-{i % 4}"
        )[1]["prefix"]

    with ThreadPoolExecutor(8) as pool:
        prefixes = list(pool.map(make, range(40)))
    assert len(set(prefixes)) == 40
    result = trail.verify(migrated)
    assert result.ok, result
    assert result.events == 41
