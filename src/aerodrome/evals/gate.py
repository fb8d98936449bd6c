"""The model-upgrade gate: a production use case changes model only on recorded evidence.

When a catalog change (an alias or a deployment put through the API) would make a use case in
stage ``production`` be served by another deployment (the first usable deployment of its alias),
the change needs **recorded** eval runs, both of the use case's current spec version and current
suite content: one on the deployment serving it now and one on the candidate. The candidate's
pass rate may be lower than the current one's by at most ``evals.upgrade_tolerance``. Otherwise
the change is refused with 409 and the comparison (both pass rates, the paired difference with
its interval, the cases that regressed). Changing the upstream model of a deployment serving a
production use case is refused outright: add a deployment pinned to the new version and switch
the alias to it, through this gate.

Recorded rather than inline runs: a suite can take minutes and cost money, which a catalog PUT
must not hide; a recorded run can be read, compared and audited before the switch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection, Engine, select

from aerodrome.audit import trail
from aerodrome.catalog.catalog import Catalog
from aerodrome.config import PlatformConfig
from aerodrome.errors import Conflict
from aerodrome.evals import comparison, standing, store
from aerodrome.storage.tables import usecases
from aerodrome.usecases.store import current_spec


class UpgradeRefused(Conflict):
    code = "model_upgrade_refused"

    def __init__(self, message: str, *, code: str, usecase_id: str, evidence: dict[str, Any]) -> None:
        super().__init__(message, code=code, param="deployments")
        self.usecase_id = usecase_id
        self.evidence = evidence

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        data["error"]["usecase_id"] = self.usecase_id
        data["error"].update(self.evidence)
        return data


def _production_models(engine: Engine) -> dict[str, str]:
    """use case id → the alias its current spec calls, for use cases in production."""
    with engine.connect() as conn:
        ids = conn.execute(
            select(usecases.c.id).where(usecases.c.stage == "production", usecases.c.status == "active")
        ).scalars()
        out = {}
        for uc in list(ids):
            spec = current_spec(conn, uc)
            if spec is not None:
                out[uc] = spec.model
    return out


def _refuse(engine: Engine, actor: str, err: UpgradeRefused) -> UpgradeRefused:
    with engine.begin() as conn:
        trail.record(
            conn,
            actor=actor,
            action="usecase.model_upgrade_refused",
            object_type="usecase",
            object_id=err.usecase_id,
            details={"code": err.code, "reason": err.message[:500], **_brief(err.evidence)},
        )
    return err


def _brief(evidence: dict[str, Any]) -> dict[str, Any]:
    comp = evidence.get("comparison") or {}
    return {
        "from": evidence.get("from"),
        "to": evidence.get("to"),
        "base_eval_run": (comp.get("base") or {}).get("id"),
        "candidate_eval_run": (comp.get("candidate") or {}).get("id"),
        "base_pass_rate": comp.get("base_pass_rate"),
        "candidate_pass_rate": comp.get("candidate_pass_rate"),
        "difference": comp.get("difference"),
        "regressed": [r["case_id"] for r in comp.get("regressed") or []][:50],
    }


def check(
    engine: Engine, config: PlatformConfig, before: Catalog, after: Catalog, *, actor: str
) -> list[dict[str, Any]]:
    """The evidence of every production use case whose serving deployment the change moves;
    raises :class:`UpgradeRefused` (audited) when one lacks it or would regress."""
    tolerance = config.evals.upgrade_tolerance
    accepted: list[dict[str, Any]] = []
    for uc, alias in _production_models(engine).items():
        old, new = before.primary_deployment(alias), after.primary_deployment(alias)
        if old is None or new is None or (old.name, old.model) == (new.name, new.model):
            continue
        moved = {"from": old.name, "to": new.name, "alias": alias, "tolerance": tolerance}
        if old.name == new.name:
            raise _refuse(
                engine,
                actor,
                UpgradeRefused(
                    f"the deployment {old.name!r} serves the production use case {uc!r}: its upstream model "
                    f"cannot change from {old.model!r} to {new.model!r}; add a deployment pinned to "
                    f"{new.model!r}, evaluate {uc!r} on it and switch the alias {alias!r}",
                    code="upgrade_requires_new_deployment",
                    usecase_id=uc,
                    evidence=moved,
                ),
            )
        base, why_base = standing.current_run(engine, config, before, uc, old.name)
        cand, why_cand = standing.current_run(engine, config, after, uc, new.name)
        if base is None or cand is None:
            raise _refuse(
                engine,
                actor,
                UpgradeRefused(
                    f"switching {alias!r} from {old.name} to {new.name} changes the production use case "
                    f"{uc!r}, which needs recorded eval runs on both: "
                    + "; ".join(w for w in (why_base, why_cand) if w),
                    code="upgrade_eval_missing",
                    usecase_id=uc,
                    evidence=moved,
                ),
            )
        comp = comparison.compare(store.get(engine, base["id"]), store.get(engine, cand["id"]))
        evidence = {**moved, "comparison": comp}
        if cand["pass_rate"] < base["pass_rate"] - tolerance - 1e-12:
            diff = comp["difference"]
            raise _refuse(
                engine,
                actor,
                UpgradeRefused(
                    f"switching {alias!r} from {old.name} to {new.name} would make the production use case "
                    f"{uc!r} worse: its suite passes {cand['pass_rate']:.1%} on {new.name} against "
                    f"{base['pass_rate']:.1%} on {old.name} (difference {diff['estimate']:+.1%}, 95% interval "
                    f"{diff['low']:+.1%} to {diff['high']:+.1%}; tolerance {tolerance:.1%}); "
                    f"{len(comp['regressed'])} case(s) regressed",
                    code="upgrade_regression",
                    usecase_id=uc,
                    evidence=evidence,
                ),
            )
        accepted.append({"usecase_id": uc, **_brief(evidence), "tolerance": tolerance})
    return accepted


def guard(
    engine: Engine, config: PlatformConfig, *, actor: str
) -> Callable[[Catalog, Catalog], Callable[[Connection], None] | None]:
    """The gate as a catalog-store guard: checks the change, then audits every accepted switch
    (one event per use case) in the change's own transaction."""

    def checked(before: Catalog, after: Catalog) -> Callable[[Connection], None] | None:
        accepted = check(engine, config, before, after, actor=actor)
        if not accepted:
            return None

        def commit(conn: Connection) -> None:
            for item in accepted:
                trail.record(
                    conn,
                    actor=actor,
                    action="usecase.model_upgrade",
                    object_type="usecase",
                    object_id=item["usecase_id"],
                    details=item,
                )

        return commit

    return checked
