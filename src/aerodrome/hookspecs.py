"""Every extension point of Aerodrome, in one place.

Built-in implementations register through exactly the same mechanism as
third-party ones: a mapping of names to factories, filled from the built-ins and
from Python entry points of the groups below.

| extension point | entry-point group           | contract                                  |
|-----------------|-----------------------------|-------------------------------------------|
| provider kinds  | ``aerodrome.providers``     | :class:`aerodrome.providers.base.ProviderFactory` |
| connectors      | ``aerodrome.connectors``    | a class with ``config_type`` (pydantic) and ``documents()``, see
                                                  :mod:`aerodrome.knowledge.connectors.base`; registry:
                                                  ``aerodrome.knowledge.connectors.connector_registry()`` |
| guardrails      | ``aerodrome.guardrails``    | ``factory(config: Mapping) -> Guardrail`` (see
                                                  :mod:`aerodrome.guardrails.base`); registry:
                                                  ``aerodrome.guardrails.registry.guardrail_registry()`` |
| parsers         | ``aerodrome.parsers``       | ``parse(SourceDocument) -> ParsedDocument`` keyed by media type;
                                                  registry: ``aerodrome.knowledge.parsers.parser_registry()`` |
| scorers         | ``aerodrome.scorers``       | eval assertions: ``factory(params: Mapping) -> Assertion`` (see
                                                  :mod:`aerodrome.evals.scoring`); registry:
                                                  ``aerodrome.evals.scoring.assertion_registry()`` |

A third-party package adds a provider kind with, in its ``pyproject.toml``::

    [project.entry-points."aerodrome.providers"]
    mykind = "mypackage.provider:factory"
"""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Generic, TypeVar

from aerodrome.errors import ConfigError
from aerodrome.providers.base import ProviderFactory

T = TypeVar("T")

PROVIDERS_GROUP = "aerodrome.providers"
CONNECTORS_GROUP = "aerodrome.connectors"
PARSERS_GROUP = "aerodrome.parsers"
GUARDRAILS_GROUP = "aerodrome.guardrails"
SCORERS_GROUP = "aerodrome.scorers"


class Registry(Generic[T]):
    """Names → factories for one extension point."""

    def __init__(self, group: str, builtins: dict[str, T]) -> None:
        self.group = group
        self._items: dict[str, T] = dict(builtins)
        self._loaded = False

    def register(self, name: str, item: T) -> None:
        self._items[name] = item

    def _load_entry_points(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        for ep in entry_points(group=self.group):
            if ep.name not in self._items:
                self._items[ep.name] = ep.load()

    def get(self, name: str) -> T:
        if name not in self._items:
            self._load_entry_points()
        try:
            return self._items[name]
        except KeyError:
            known = ", ".join(sorted(self._items))
            raise ConfigError(
                f"unknown {self.group.split('.')[-1][:-1]} kind {name!r} (known: {known})"
            ) from None

    def names(self) -> list[str]:
        self._load_entry_points()
        return sorted(self._items)


def provider_registry() -> Registry[ProviderFactory]:
    """The provider kinds: the built-ins plus every installed entry point."""
    from aerodrome.providers.anthropic import factory as anthropic_factory
    from aerodrome.providers.local import factory as local_factory
    from aerodrome.providers.openai_compatible import factory as openai_factory

    builtins: dict[str, ProviderFactory] = {
        "openai": openai_factory,
        "anthropic": anthropic_factory,
        "local": local_factory,
    }
    return Registry(PROVIDERS_GROUP, builtins)
