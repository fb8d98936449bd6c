"""Local passwords: argon2id hashes in ``user_credentials``; checking a login. Domain functions, no HTTP."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Engine, select, update

from aerodrome.audit import trail
from aerodrome.errors import BadRequest, NotFound, Unauthorized
from aerodrome.storage.tables import user_credentials, users

MIN_LENGTH = 12
_HASHER = PasswordHasher()  # argon2id, the library's recommended parameters (immutable)
# Checked when the email is unknown, so a login takes the same time whether or not the user exists.
_DUMMY_HASH = _HASHER.hash("aerodrome-no-such-user")


class BadLogin(Unauthorized):
    code = "invalid_login"


def generate() -> str:
    """A random password for a first admin (shown once)."""
    return secrets.token_urlsafe(15)


def set_password(engine: Engine, email: str, password: str, *, actor: str) -> None:
    if len(password) < MIN_LENGTH:
        raise BadRequest(f"a password has at least {MIN_LENGTH} characters", param="password")
    digest = _HASHER.hash(password)
    now = datetime.now(UTC)
    with engine.begin() as conn:
        row = conn.execute(select(users.c.id).where(users.c.email == email)).first()
        if row is None:
            raise NotFound(f"unknown user {email!r}", code="user_not_found", param="email")
        exists = conn.execute(
            select(user_credentials.c.user_id).where(user_credentials.c.user_id == row.id)
        ).first()
        if exists:
            conn.execute(
                update(user_credentials)
                .where(user_credentials.c.user_id == row.id)
                .values(password_hash=digest, updated_at=now)
            )
        else:
            conn.execute(
                user_credentials.insert().values(user_id=row.id, password_hash=digest, updated_at=now)
            )
        trail.record(
            conn, actor=actor, action="user.password_set", object_type="user", object_id=row.id, details={}
        )


def has_password(engine: Engine, email: str) -> bool:
    q = (
        select(user_credentials.c.user_id)
        .select_from(user_credentials.join(users, users.c.id == user_credentials.c.user_id))
        .where(users.c.email == email)
    )
    with engine.connect() as conn:
        return conn.execute(q).first() is not None


def check_login(engine: Engine, email: str, password: str) -> dict[str, Any]:
    """The user row for a correct email and password of an enabled user; 401 otherwise (one message)."""
    q = (
        select(users, user_credentials.c.password_hash)
        .select_from(users.outerjoin(user_credentials, user_credentials.c.user_id == users.c.id))
        .where(users.c.email == email.strip())
    )
    with engine.connect() as conn:
        row = conn.execute(q).mappings().first()
    digest = row["password_hash"] if row is not None and row["password_hash"] else _DUMMY_HASH
    ok: bool
    try:
        ok = _HASHER.verify(digest, password)
    except (VerificationError, InvalidHashError):
        ok = False
    if not ok or row is None or row["password_hash"] is None or row["disabled"]:
        raise BadLogin("wrong email or password")
    if _HASHER.check_needs_rehash(digest):
        set_password(engine, row["email"], password, actor=row["email"])
    return {k: v for k, v in row.items() if k != "password_hash"}
