"""API-key authentication with a short-lived cache.

The hot path is a dictionary look-up and one SHA-256. Entries (found or not) live
``ttl_s`` seconds (≤ 5), so a key revoked on any replica stops working everywhere
within that time; on the replica that revoked it, at once (:meth:`forget`), and in scaled
mode on every replica at once (identity/revocations.py announces it through Redis).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import InterfaceError, OperationalError

from aerodrome.config import Budget
from aerodrome.errors import ServiceUnavailable, Unauthorized
from aerodrome.identity import keys as keymat
from aerodrome.identity.principal import Principal
from aerodrome.identity.store import load_key


@dataclass(slots=True)
class _Entry:
    row: dict[str, Any] | None
    principal: Principal | None
    fetched: float


def _epoch(value: datetime | None) -> float | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.timestamp()


def principal_from_row(row: dict[str, Any]) -> Principal:
    budget = None
    if row["budget_usd"] is not None:
        budget = Budget(
            usd=row["budget_usd"],
            period=row["budget_period"] or "month",
            soft_pct=row.get("budget_soft_pct") or 0.8,
        )
    # Key names are not unique: a service key's identity carries its prefix, so that
    # "own" scopes (keys it created) never match another key of the same name.
    name = row["user_email"] or (
        f"key:{row['name']}/{row['prefix']}" if row["name"] else f"key:{row['prefix']}"
    )
    return Principal(
        name=name,
        department_id=row["department_id"],
        roles=frozenset({row["role"]}),
        key_id=row["id"],
        user_id=row["user_id"],
        aliases=frozenset(row["aliases"]) if row["aliases"] is not None else None,
        rpm=row["rpm"],
        tpm=row["tpm"],
        budget=budget,
        expires_at=_epoch(row["expires_at"]),
        data_class=row.get("data_class"),
    )


log = logging.getLogger("aerodrome.identity")
STALE_S = 300.0  # how long a cached key check still serves while the database is unreachable


class Authenticator:
    def __init__(self, engine: Engine, *, ttl_s: float = 2.0, stale_s: float = STALE_S) -> None:
        self._engine = engine
        self._ttl = ttl_s
        self._stale = stale_s
        self._cache: dict[str, _Entry] = {}

    def forget(self, prefix: str) -> None:
        self._cache.pop(prefix, None)

    def forget_all(self) -> None:
        self._cache.clear()

    async def _load(self, prefix: str, cached: _Entry | None, now: float) -> _Entry:
        try:
            row = await asyncio.to_thread(load_key, self._engine, prefix)
        except (OperationalError, InterfaceError) as exc:
            # The database is restarting: a key checked recently keeps working (revocations are
            # database writes, so none can happen meanwhile); an unknown one cannot be checked.
            if cached is not None and now - cached.fetched <= self._stale:
                log.debug("database unreachable; using a cached key check", extra={"prefix": prefix})
                return cached
            raise ServiceUnavailable(
                "API keys cannot be checked: the database is unreachable; retry in a few seconds",
                code="database_unavailable",
                headers={"Retry-After": "2"},
            ) from exc
        principal = principal_from_row(row) if row is not None else None
        entry = _Entry(row=row, principal=principal, fetched=now)
        if len(self._cache) > 100_000:
            self._cache.clear()
        self._cache[prefix] = entry
        return entry

    async def authenticate(self, authorization: str | None) -> Principal:
        if not authorization:
            raise Unauthorized("no API key: send it as 'Authorization: Bearer <key>'", code="missing_api_key")
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise Unauthorized("the Authorization header must be 'Bearer <key>'", code="invalid_api_key")
        prefix = keymat.parse_prefix(token)
        if prefix is None:
            raise Unauthorized("invalid API key", code="invalid_api_key")
        now = time.monotonic()
        entry = self._cache.get(prefix)
        if entry is None or now - entry.fetched > self._ttl:
            entry = await self._load(prefix, entry, now)
        row = entry.row
        if row is None or entry.principal is None or not keymat.matches(token, row["hash"]):
            raise Unauthorized("invalid API key", code="invalid_api_key")
        if row["revoked_at"] is not None:
            raise Unauthorized("this API key has been revoked", code="revoked_api_key")
        if row.get("user_disabled"):
            raise Unauthorized("the user of this API key is disabled", code="user_disabled")
        principal = entry.principal
        if principal.expires_at is not None and principal.expires_at <= time.time():
            raise Unauthorized("this API key has expired", code="expired_api_key")
        return principal
