"""The permission table: (role, action) → scope. Every management endpoint asks it.

Scopes, widest first: ``all`` (every department), ``department`` (the principal's
own department), ``own`` (objects the principal created or made). A role absent
for an action has no access. A principal with several roles gets the widest scope.
"""

from __future__ import annotations

from typing import Literal

from aerodrome.errors import Forbidden
from aerodrome.identity.principal import Principal

Scope = Literal["all", "department", "own"]
_WIDTH: dict[str, int] = {"own": 0, "department": 1, "all": 2}

ACTIONS: tuple[str, ...] = (
    "departments.read",
    "departments.write",
    "users.read",
    "users.write",
    "keys.read",
    "keys.write",
    "catalog.read",
    "catalog.write",
    "runs.read",
    "budgets.read",
    "audit.read",
    "collections.read",
    "collections.write",
    "usecases.read",
    "usecases.write",
    "reviews.read",
    "reviews.decide",
    "feedback.read",
    "usecases.advance",
    "usecases.decide",
    "proposals.read",
    "proposals.write",
    "evals.read",
    "evals.run",
    "redteam.run",
    "redteam.read",
    "alerts.read",
    "alerts.acknowledge",
    "jobs.read",
    "jobs.write",
)

PERMISSIONS: dict[tuple[str, str], Scope] = {
    # platform team: everything
    **{("platform_admin", a): "all" for a in ACTIONS},
    # department administrators run their own department
    ("department_admin", "departments.read"): "department",
    ("department_admin", "users.read"): "department",
    ("department_admin", "users.write"): "department",
    ("department_admin", "keys.read"): "department",
    ("department_admin", "keys.write"): "department",
    ("department_admin", "catalog.read"): "all",
    ("department_admin", "runs.read"): "department",
    ("department_admin", "budgets.read"): "department",
    ("department_admin", "collections.read"): "department",
    ("department_admin", "collections.write"): "department",
    ("department_admin", "usecases.read"): "department",
    ("department_admin", "usecases.write"): "department",
    ("department_admin", "reviews.read"): "department",
    ("department_admin", "reviews.decide"): "department",
    ("department_admin", "feedback.read"): "department",
    ("department_admin", "usecases.advance"): "department",
    ("department_admin", "proposals.read"): "department",
    ("department_admin", "proposals.write"): "department",
    ("department_admin", "evals.read"): "department",
    ("department_admin", "evals.run"): "department",
    ("department_admin", "redteam.run"): "department",
    ("department_admin", "redteam.read"): "department",
    ("department_admin", "alerts.read"): "department",
    ("department_admin", "alerts.acknowledge"): "department",
    # builders make use cases for their department
    ("builder", "departments.read"): "department",
    ("builder", "keys.read"): "own",
    ("builder", "keys.write"): "own",
    ("builder", "catalog.read"): "all",
    ("builder", "runs.read"): "department",
    ("builder", "collections.read"): "department",
    ("builder", "usecases.read"): "department",
    ("builder", "usecases.write"): "department",
    ("builder", "reviews.read"): "department",
    ("builder", "feedback.read"): "department",
    ("builder", "usecases.advance"): "department",
    ("builder", "proposals.read"): "department",
    ("builder", "proposals.write"): "department",
    ("builder", "evals.read"): "department",
    ("builder", "evals.run"): "department",
    ("builder", "redteam.run"): "department",
    ("builder", "redteam.read"): "department",
    ("builder", "alerts.read"): "department",
    ("builder", "alerts.acknowledge"): "department",
    # reviewers and approvers see their department's work
    ("reviewer", "catalog.read"): "all",
    ("reviewer", "runs.read"): "department",
    ("reviewer", "usecases.read"): "department",
    ("reviewer", "reviews.read"): "department",
    ("reviewer", "reviews.decide"): "department",
    ("reviewer", "feedback.read"): "department",
    ("reviewer", "proposals.read"): "department",
    ("reviewer", "evals.read"): "department",
    ("approver", "departments.read"): "all",
    ("approver", "catalog.read"): "all",
    ("approver", "runs.read"): "department",
    ("approver", "budgets.read"): "all",
    ("approver", "usecases.read"): "all",
    ("approver", "reviews.read"): "department",
    ("approver", "feedback.read"): "department",
    ("approver", "usecases.decide"): "all",
    ("approver", "proposals.read"): "all",
    ("approver", "evals.read"): "all",
    ("approver", "redteam.read"): "all",
    ("approver", "alerts.read"): "all",
    # auditors read everything, change nothing
    ("auditor", "departments.read"): "all",
    ("auditor", "users.read"): "all",
    ("auditor", "keys.read"): "all",
    ("auditor", "catalog.read"): "all",
    ("auditor", "runs.read"): "all",
    ("auditor", "budgets.read"): "all",
    ("auditor", "audit.read"): "all",
    ("auditor", "collections.read"): "all",
    ("auditor", "usecases.read"): "all",
    ("auditor", "reviews.read"): "all",
    ("auditor", "feedback.read"): "all",
    ("auditor", "proposals.read"): "all",
    ("auditor", "evals.read"): "all",
    ("auditor", "redteam.read"): "all",
    ("auditor", "alerts.read"): "all",
    ("auditor", "jobs.read"): "all",
    # employees: the catalog they may use, their own keys and runs
    ("user", "catalog.read"): "all",
    ("user", "keys.read"): "own",
    ("user", "keys.write"): "own",
    ("user", "runs.read"): "own",
    ("user", "collections.read"): "department",
    ("user", "usecases.read"): "department",
    ("user", "proposals.read"): "department",
    ("user", "proposals.write"): "department",
}

# Roles a principal may put on a key it creates (beyond its own roles).
GRANTABLE: dict[str, frozenset[str]] = {
    "platform_admin": frozenset(
        {"platform_admin", "department_admin", "builder", "reviewer", "approver", "auditor", "user"}
    ),
    "department_admin": frozenset({"department_admin", "builder", "reviewer", "approver", "user"}),
    "builder": frozenset({"user"}),  # e.g. a key for the tool a use case is wired into
}


def scope_for(principal: Principal, action: str) -> Scope | None:
    best: Scope | None = None
    for role in principal.roles:
        scope = PERMISSIONS.get((role, action))
        if scope is not None and (best is None or _WIDTH[scope] > _WIDTH[best]):
            best = scope
    return best


def require(principal: Principal, action: str) -> Scope:
    """The principal's scope for the action, or 403."""
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}")
    scope = scope_for(principal, action)
    if scope is None:
        raise Forbidden(f"your role(s) {sorted(principal.roles)} may not {action.replace('.', ' ')}")
    return scope


def check_department(principal: Principal, scope: Scope, department_id: str | None) -> None:
    """403 unless the scope covers an object of the given department."""
    if scope == "all":
        return
    if department_id != principal.department_id:
        raise Forbidden("this object belongs to another department")


def may_grant(principal: Principal, role: str) -> bool:
    if role in principal.roles:
        return True
    return any(role in GRANTABLE.get(r, frozenset()) for r in principal.roles)
