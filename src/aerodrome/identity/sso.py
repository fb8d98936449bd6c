"""Single sign-on users: OIDC claims → department and roles; the user is created on first login.

The identity provider is the source of truth for an SSO user's department and roles: they
are read from its claims at every login (a change is an audited ``user.update``).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine

from aerodrome.config import OIDCConfig, UserConfig
from aerodrome.errors import Forbidden
from aerodrome.identity import store


def _groups(claims: dict[str, Any], name: str) -> list[str]:
    value = claims.get(name)
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [str(v) for v in value]
    return []


def user_config(oidc: OIDCConfig, claims: dict[str, Any], known_departments: set[str]) -> UserConfig:
    """The user the claims describe, or 403 saying what is missing."""
    email = claims.get("email")
    if not isinstance(email, str) or "@" not in email:
        raise Forbidden(
            "the identity provider sent no email claim; ask for the 'email' scope", code="sso_no_email"
        )
    if claims.get("email_verified") is False:
        raise Forbidden("the identity provider says this email is not verified", code="sso_email_unverified")
    groups = _groups(claims, oidc.groups_claim)
    department = None
    if oidc.department_claim and isinstance(claims.get(oidc.department_claim), str):
        candidate = claims[oidc.department_claim]
        department = candidate if candidate in known_departments else None
    if department is None:
        department = next((oidc.group_departments[g] for g in groups if g in oidc.group_departments), None)
    department = department or oidc.default_department
    if department is None or department not in known_departments:
        raise Forbidden(
            f"{email}: no department maps to your groups {groups}; ask the platform team",
            code="sso_no_department",
        )
    roles = set(oidc.default_roles)
    for group in groups:
        roles.update(oidc.group_roles.get(group, ()))
    name = claims.get("name") if isinstance(claims.get("name"), str) else ""
    return UserConfig(email=email, name=name or "", department=department, roles=sorted(roles))


def sign_in(engine: Engine, oidc: OIDCConfig, claims: dict[str, Any]) -> dict[str, Any]:
    """Create or update the user of these claims; returns its row (403 when disabled or unmapped)."""
    known = set(store.load_departments(engine))
    user = user_config(oidc, claims, known)
    existing = store.user_by_email(engine, user.email)
    if existing is not None:
        user = user.model_copy(update={"attributes": existing["attributes"] or {}})
    store.upsert_user(engine, user, actor="oidc")
    row = store.user_by_email(engine, user.email)
    assert row is not None
    if row["disabled"]:
        raise Forbidden(f"the user {user.email} is disabled", code="user_disabled")
    return row
