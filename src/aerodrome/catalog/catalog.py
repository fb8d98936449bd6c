"""The catalog: which models exist, who may use them, what they cost.

Built from the config file plus entries added through the API (stored in the
``catalog_entries`` table). Immutable once built: a change builds a new catalog.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from aerodrome.config import (
    DATA_CLASS_ORDER,
    AliasConfig,
    DeploymentConfig,
    ProviderConfig,
)
from aerodrome.errors import ConfigError, Forbidden, ModelNotFound
from aerodrome.identity.principal import Principal


@dataclass(frozen=True, slots=True)
class ResolvedAlias:
    alias: AliasConfig
    deployments: tuple[DeploymentConfig, ...]  # usable ones (blocked removed), in alias order
    warnings: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return self.alias.name

    def max_prices(self) -> tuple[float, float]:
        """The highest input and output prices among the deployments (for budget reservation)."""
        return (
            max(d.prices.input_per_mtok for d in self.deployments),
            max(d.prices.output_per_mtok for d in self.deployments),
        )

    def max_output_tokens(self) -> int:
        return max(d.max_output_tokens for d in self.deployments)


@dataclass(slots=True)
class Catalog:
    providers: dict[str, ProviderConfig] = field(default_factory=dict)
    deployments: dict[str, DeploymentConfig] = field(default_factory=dict)
    aliases: dict[str, AliasConfig] = field(default_factory=dict)
    sources: dict[tuple[str, str], str] = field(default_factory=dict)  # (kind, name) → "config" | "api"
    _resolved: dict[str, ResolvedAlias] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        providers: list[ProviderConfig],
        deployments: list[DeploymentConfig],
        aliases: list[AliasConfig],
        api_entries: list[tuple[str, dict[str, Any]]] = (),  # type: ignore[assignment]
    ) -> Catalog:
        cat = cls()
        for p in providers:
            cat.providers[p.name] = p
            cat.sources[("provider", p.name)] = "config"
        for d in deployments:
            cat.deployments[d.name] = d
            cat.sources[("deployment", d.name)] = "config"
        for a in aliases:
            cat.aliases[a.name] = a
            cat.sources[("alias", a.name)] = "config"
        for kind, spec in api_entries:
            cat._add(kind, spec, source="api")
        cat._check()
        for name in cat.aliases:
            cat._resolved[name] = cat._resolve_alias(name)
        return cat

    def _add(self, kind: str, spec: dict[str, Any], *, source: str) -> None:
        kinds: dict[
            str, tuple[type[ProviderConfig] | type[DeploymentConfig] | type[AliasConfig], dict[str, Any]]
        ] = {
            "provider": (ProviderConfig, self.providers),
            "deployment": (DeploymentConfig, self.deployments),
            "alias": (AliasConfig, self.aliases),
        }
        if kind not in kinds:
            raise ConfigError(f"unknown catalog entry kind {kind!r}")
        model, target = kinds[kind]
        item = model.model_validate(spec)
        if self.sources.get((kind, item.name)) == "config":
            raise ConfigError(f"{kind} {item.name!r} is defined in the config file; change it there")
        target[item.name] = item
        self.sources[(kind, item.name)] = source

    def _check(self) -> None:
        for dep in self.deployments.values():
            if dep.provider not in self.providers:
                raise ConfigError(f"deployment {dep.name}: unknown provider {dep.provider!r}")
        for alias in self.aliases.values():
            if alias.name in self.deployments:
                raise ConfigError(f"alias {alias.name}: a deployment has the same name")
            for name in alias.deployments:
                if name not in self.deployments:
                    raise ConfigError(f"alias {alias.name}: unknown deployment {name!r}")
            if alias.safe_alias is not None and (
                alias.safe_alias not in self.aliases or alias.safe_alias == alias.name
            ):
                raise ConfigError(f"alias {alias.name}: safe_alias {alias.safe_alias!r} is not another alias")

    def _resolve_alias(self, name: str) -> ResolvedAlias:
        alias = self.aliases[name]
        deps = [self.deployments[d] for d in alias.deployments]
        usable = tuple(d for d in deps if d.status != "blocked")
        warnings = tuple(
            f"deployment {d.name} ({d.model}) is deprecated" for d in usable if d.status == "deprecated"
        )
        return ResolvedAlias(alias=alias, deployments=usable, warnings=warnings)

    def resolve(self, model: str, principal: Principal) -> ResolvedAlias:
        """The alias a request names, if the principal may use it (404 / 403 otherwise)."""
        resolved = self._resolved.get(model)
        if resolved is None:
            raise ModelNotFound(
                f"the model {model!r} does not exist or is not in the catalog; GET /v1/models lists "
                "the models your key may use",
                param="model",
            )
        if not principal.may_use_alias(model):
            raise Forbidden(
                f"your API key may not use the model {model!r}", code="model_not_permitted", param="model"
            )
        if not resolved.deployments:
            raise Forbidden(
                f"the model {model!r} is blocked by the platform team", code="model_blocked", param="model"
            )
        return resolved

    def pinned(self, resolved: ResolvedAlias, deployment: str) -> ResolvedAlias:
        """The alias served by one deployment only (evaluations of a candidate deployment)."""
        dep = self.deployments.get(deployment)
        if dep is None:
            raise ModelNotFound(f"no deployment {deployment!r} in the catalog", param="deployment")
        if dep.status == "blocked":
            raise Forbidden(
                f"the deployment {deployment!r} is blocked by the platform team",
                code="model_blocked",
                param="deployment",
            )
        return replace(resolved, deployments=(dep,))

    def primary_deployment(self, alias: str) -> DeploymentConfig | None:
        """The deployment that serves an alias first (its first usable one), None for an unknown alias."""
        resolved = self._resolved.get(alias)
        return resolved.deployments[0] if resolved is not None and resolved.deployments else None

    def within_ceiling(self, resolved: ResolvedAlias, data_class: str) -> tuple[ResolvedAlias, str | None]:
        """The deployments that may receive ``data_class`` data: of the alias, else of its safe alias.

        Returns the alias to route to and, when it is the safe alias, the name of the one rerouted from.
        Refuses with 403 ``data_class_exceeds_model`` when neither has a permitted deployment.
        """
        rank = DATA_CLASS_ORDER[data_class]
        permitted = tuple(d for d in resolved.deployments if DATA_CLASS_ORDER[d.max_data_class] >= rank)
        if permitted:
            return replace(resolved, deployments=permitted), None
        safe = self._resolved.get(resolved.alias.safe_alias or "")
        if safe is not None:
            permitted = tuple(d for d in safe.deployments if DATA_CLASS_ORDER[d.max_data_class] >= rank)
            if permitted:
                return replace(safe, deployments=permitted), resolved.name
        ceiling = max((d.max_data_class for d in resolved.deployments), key=DATA_CLASS_ORDER.__getitem__)
        raise Forbidden(
            f"this request carries {data_class} data but {resolved.name!r} may receive at most {ceiling} data"
            + (f" (its safe alias {safe.name!r} neither)" if safe is not None else "")
            + f"; use a model approved for {data_class} data",
            code="data_class_exceeds_model",
            param="model",
        )

    def visible_aliases(self, principal: Principal) -> list[ResolvedAlias]:
        return [
            r for name, r in sorted(self._resolved.items()) if principal.may_use_alias(name) and r.deployments
        ]

    def aliases_of_kind(self, kind: str) -> frozenset[str]:
        """Aliases whose deployments (blocked ones included) all serve ``kind`` (chat or embeddings)."""
        return frozenset(
            name
            for name, alias in self.aliases.items()
            if {self.deployments[d].kind for d in alias.deployments} == {kind}
        )

    def alias_kind(self, resolved: ResolvedAlias) -> str:
        kinds = {d.kind for d in resolved.deployments}
        return kinds.pop() if len(kinds) == 1 else "mixed"

    # --------------------------------------------------------- views for the API

    def public_deployment(self, dep: DeploymentConfig) -> dict[str, Any]:
        data = dep.model_dump()
        data["source"] = self.sources.get(("deployment", dep.name), "config")
        data["data_class_rank"] = DATA_CLASS_ORDER[dep.max_data_class]
        return data

    def public_provider(self, provider: ProviderConfig) -> dict[str, Any]:
        from aerodrome.catalog.secrets import describe_ref

        data = provider.model_dump(exclude={"api_key", "headers"})
        data.update(describe_ref(provider.api_key))
        data["header_names"] = sorted(provider.headers)
        data["source"] = self.sources.get(("provider", provider.name), "config")
        return data

    def public_alias(self, alias: AliasConfig) -> dict[str, Any]:
        data = alias.model_dump()
        data["source"] = self.sources.get(("alias", alias.name), "config")
        resolved = self._resolved.get(alias.name)
        data["usable_deployments"] = [d.name for d in resolved.deployments] if resolved else []
        data["warnings"] = list(resolved.warnings) if resolved else []
        return data
