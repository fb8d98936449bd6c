"""Where a use case stands with its evaluations: what the evidence engine and the gates read.

* :func:`latest_for_evidence`: the eval run the report uses (the newest finished run of the
  current spec version, else the newest at all), with its pass rate on curated and on
  live-like cases.
* :func:`pass_rate`: that run's pass rate with its Wilson interval (metric ``eval_pass_rate``).
* :func:`readiness_check`: the production gate's "eval suite passing on the pinned model":
  a passed run of the current spec version and the current suite content on the deployment
  that serves the use case's alias now.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, select

from aerodrome.catalog.catalog import Catalog
from aerodrome.config import PlatformConfig
from aerodrome.errors import AerodromeError
from aerodrome.evals import store
from aerodrome.evals.suite import load_suite, suites_folder
from aerodrome.evidence import stats
from aerodrome.evidence.stages import Check
from aerodrome.evidence.stats import Interval
from aerodrome.storage.tables import usecases
from aerodrome.usecases.store import current_spec

REQUIREMENT = "eval suite passing on the pinned model"


def _current_version(engine: Engine, usecase_id: str) -> int | None:
    with engine.connect() as conn:
        return conn.execute(select(usecases.c.current_version).where(usecases.c.id == usecase_id)).scalar()


def latest_for_evidence(
    engine: Engine, usecase_id: str, end: datetime | None = None
) -> dict[str, Any] | None:
    version = _current_version(engine, usecase_id)
    found = None
    if version is not None:
        found = store.latest(engine, usecase_id, spec_version=version, before=end)
    return found or store.latest(engine, usecase_id, before=end)


def pass_rate(engine: Engine, usecase_id: str, end: datetime | None, confidence: float) -> Interval:
    run = latest_for_evidence(engine, usecase_id, end)
    if run is None:
        return stats.wilson(0, 0, confidence)
    return stats.wilson(int(run["passed"]), int(run["cases"]), confidence)


def summary(run: dict[str, Any] | None) -> dict[str, Any] | None:
    """What a report shows of the eval run it used."""
    if run is None:
        return None
    return {
        k: run[k]
        for k in (
            "id",
            "spec_version",
            "deployment",
            "status",
            "cases",
            "passed",
            "pass_rate",
            "curated_cases",
            "curated_pass_rate",
            "live_cases",
            "live_pass_rate",
            "created_at",
        )
    }


def current_run(
    engine: Engine, config: PlatformConfig, catalog: Catalog, usecase_id: str, deployment: str
) -> tuple[dict[str, Any] | None, str]:
    """The newest finished run of the current spec version and suite content on ``deployment``,
    or None and why there is none."""
    with engine.connect() as conn:
        spec = current_spec(conn, usecase_id)
    version = _current_version(engine, usecase_id)
    if spec is None or version is None:
        return None, "the use case has no spec"
    try:
        suite = load_suite(
            suites_folder(config), usecase_id, spec, max_inputs_bytes=config.usecases.max_inputs_bytes
        )
    except AerodromeError as exc:
        return None, exc.message
    run = store.latest(
        engine, usecase_id, spec_version=version, suite_hash=suite.digest, deployment=deployment
    )
    if run is None:
        return None, (
            f"no eval run of spec version {version} with the current suite on {deployment}: "
            f"run `aerodrome eval {usecase_id} --deployment {deployment}`"
        )
    return run, ""


def readiness_check(
    engine: Engine, config: PlatformConfig, catalog: Callable[[], Catalog], usecase_id: str
) -> Check:
    with engine.connect() as conn:
        spec = current_spec(conn, usecase_id)
    if spec is None:
        return Check(REQUIREMENT, False, "no spec")
    primary = catalog().primary_deployment(spec.model)
    if primary is None:
        return Check(REQUIREMENT, False, f"the alias {spec.model!r} has no usable deployment")
    run, why = current_run(engine, config, catalog(), usecase_id, primary.name)
    if run is None:
        return Check(REQUIREMENT, False, why)
    detail = (
        f"eval run {run['id']} on {primary.name}: {run['passed']} of {run['cases']} cases "
        f"(pass rate {run['pass_rate']:.0%}, threshold {run['threshold']:.0%})"
    )
    return Check(REQUIREMENT, run["status"] == "passed", detail)
