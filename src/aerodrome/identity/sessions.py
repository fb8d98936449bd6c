"""Console sessions: a random token in an HttpOnly cookie, its SHA-256 and CSRF token in the database.

A session resolves to the same :class:`Principal` as an API key of its user (roles and
department from the users table, read at every request, so a role change or a disabled
user takes effect at once). Domain functions, no HTTP.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, delete, select

from aerodrome.audit import trail
from aerodrome.identity.principal import Principal
from aerodrome.storage.tables import console_sessions, users


@dataclass(frozen=True, slots=True)
class Session:
    token: str  # the cookie value (only ever in the cookie)
    csrf: str
    principal: Principal
    user: dict[str, Any]


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def principal_of(user: dict[str, Any]) -> Principal:
    return Principal(
        name=user["email"],
        department_id=user["department_id"],
        roles=frozenset(user["roles"] or ()),
        user_id=user["id"],
    )


def open_session(engine: Engine, user: dict[str, Any], *, method: str, hours: float) -> Session:
    """Start a session for a user who just proved who they are (audited: console.login)."""
    token = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    now = datetime.now(UTC)
    with engine.begin() as conn:
        conn.execute(delete(console_sessions).where(console_sessions.c.expires_at < now))
        conn.execute(
            console_sessions.insert().values(
                id=_digest(token),
                user_id=user["id"],
                csrf=csrf,
                method=method,
                created_at=now,
                expires_at=now + timedelta(hours=hours),
            )
        )
        trail.record(
            conn,
            actor=user["email"],
            action="console.login",
            object_type="user",
            object_id=user["id"],
            details={"method": method},
        )
    return Session(token=token, csrf=csrf, principal=principal_of(user), user=user)


def find_session(engine: Engine, token: str) -> Session | None:
    """The live session of a cookie value, or None (unknown, expired, or the user disabled)."""
    if not token or len(token) > 128:
        return None
    q = (
        select(users, console_sessions.c.csrf, console_sessions.c.expires_at)
        .select_from(console_sessions.join(users, users.c.id == console_sessions.c.user_id))
        .where(console_sessions.c.id == _digest(token))
    )
    with engine.connect() as conn:
        row = conn.execute(q).mappings().first()
    if row is None or row["disabled"] or row["expires_at"] <= datetime.now(UTC):
        return None
    user = {k: v for k, v in row.items() if k not in ("csrf", "expires_at")}
    return Session(token=token, csrf=row["csrf"], principal=principal_of(user), user=user)


def close_session(engine: Engine, session: Session) -> None:
    """Log out: the session row is deleted, so the cookie is worthless even if kept (audited)."""
    with engine.begin() as conn:
        conn.execute(delete(console_sessions).where(console_sessions.c.id == _digest(session.token)))
        trail.record(
            conn,
            actor=session.principal.name,
            action="console.logout",
            object_type="user",
            object_id=session.user["id"],
            details={},
        )
