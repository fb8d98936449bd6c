"""Who may act on a use case: the departments it is live in, checked against the permission table.

The API and the console ask the same functions, so a page and an endpoint refuse alike.
"""

from __future__ import annotations

from typing import Any

from aerodrome.errors import Forbidden
from aerodrome.identity import permissions as perm
from aerodrome.identity.principal import Principal
from aerodrome.usecases import store
from aerodrome.usecases.registry import UseCaseRegistry


def departments_of(row: dict[str, Any], registry: UseCaseRegistry) -> list[str]:
    """The departments a use case is live in; an idea with no spec yet belongs to its proposer's."""
    try:
        return list(registry.get(row["id"]).spec.departments)
    except store.UseCaseNotFound:
        return [row["department_id"]] if row["department_id"] else []


def require(p: Principal, action: str, row: dict[str, Any], registry: UseCaseRegistry) -> str:
    """The principal's scope for ``action`` on this use case; ``403`` when it is not theirs."""
    scope = perm.require(p, action)
    if scope != "all" and p.department_id not in departments_of(row, registry):
        raise Forbidden(f"the use case {row['id']!r} is not your department's", code="usecase_not_live")
    return scope
