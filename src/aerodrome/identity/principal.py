"""The principal: who is calling, from which department, with which roles and scopes."""

from __future__ import annotations

from dataclasses import dataclass

from aerodrome.config import Budget


@dataclass(frozen=True, slots=True)
class Principal:
    name: str  # the user's email, or "key:<name>" for a service key
    department_id: str
    roles: frozenset[str]
    key_id: str | None = None
    user_id: str | None = None
    aliases: frozenset[str] | None = None  # None: every alias
    rpm: int | None = None
    tpm: int | None = None
    budget: Budget | None = None
    expires_at: float | None = None  # epoch seconds
    data_class: str | None = None  # the least class of everything sent with this key

    def may_use_alias(self, alias: str) -> bool:
        return self.aliases is None or alias in self.aliases
