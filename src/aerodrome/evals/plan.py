"""What an eval run will measure: a use case's spec version, its suite, one deployment of the catalog."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine

from aerodrome.catalog.catalog import Catalog
from aerodrome.config import PlatformConfig
from aerodrome.errors import BadRequest, ModelNotFound
from aerodrome.evals.store import RunKey
from aerodrome.evals.suite import Suite, load_suite, suites_folder
from aerodrome.usecases import store as usecase_store
from aerodrome.usecases.registry import LiveUseCase, UseCaseRegistry, compile_live


@dataclass(slots=True)
class Plan:
    usecase_id: str
    spec_version: int
    live: LiveUseCase  # the spec version, compiled
    suite: Suite
    alias: str
    deployment: str
    upstream_model: str
    threshold: float
    eval_run_id: str = ""

    def key(self) -> RunKey:
        return RunKey(
            usecase_id=self.usecase_id,
            spec_version=self.spec_version,
            suite_hash=self.suite.digest,
            alias=self.alias,
            deployment=self.deployment,
            upstream_model=self.upstream_model,
            threshold=self.threshold,
        )


def version_of(
    engine: Engine, registry: UseCaseRegistry, config: PlatformConfig, usecase_id: str, number: int | None
) -> LiveUseCase:
    """The use case's current version, or an older one compiled from its stored spec."""
    live = registry.get(usecase_id)
    if number is None or number == live.version:
        return live
    row = usecase_store.version(engine, usecase_id, number)
    return compile_live(
        {"spec": row["spec"], "current_version": number, "origin": live.origin, "source": live.source},
        config.guardrails.pii_recognizers,
    )


def prepare(
    engine: Engine,
    registry: UseCaseRegistry,
    catalog: Catalog,
    config: PlatformConfig,
    usecase_id: str,
    *,
    deployment: str | None = None,
    spec_version: int | None = None,
) -> Plan:
    """Check everything before any case runs: 404 for an unknown use case, version, deployment or
    suite; 400 for a suite with problems (every one named) or a deployment that cannot serve chat."""
    live = version_of(engine, registry, config, usecase_id, spec_version)
    alias = live.spec.model
    if deployment is None:
        primary = catalog.primary_deployment(alias)
        if primary is None:
            raise ModelNotFound(
                f"the use case's model {alias!r} is not a usable alias of the catalog; name a --deployment",
                param="deployment",
            )
        dep = primary
    else:
        found = catalog.deployments.get(deployment)
        if found is None:
            known = ", ".join(sorted(n for n, d in catalog.deployments.items() if d.kind == "chat"))
            raise ModelNotFound(
                f"no deployment {deployment!r} in the catalog (chat deployments: {known})", param="deployment"
            )
        dep = found
    if dep.kind != "chat":
        raise BadRequest(f"the deployment {dep.name!r} serves {dep.kind}, not chat", param="deployment")
    suite = load_suite(
        suites_folder(config), usecase_id, live.spec, max_inputs_bytes=config.usecases.max_inputs_bytes
    )
    threshold = suite.threshold if suite.threshold is not None else config.evals.threshold
    return Plan(
        usecase_id=usecase_id,
        spec_version=live.version,
        live=live,
        suite=suite,
        alias=alias,
        deployment=dep.name,
        upstream_model=dep.model,
        threshold=threshold,
    )
