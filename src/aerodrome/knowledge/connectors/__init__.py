"""Connectors: where documents come from (a folder, URLs and sitemaps, a SQL query).

Each connector kind is a class with a pydantic config model (``config_type``) and a
``documents()`` iterator (see :mod:`aerodrome.knowledge.connectors.base`). Kinds are an
extension point (house rule 3): the built-ins register through the same
:class:`~aerodrome.hookspecs.Registry` as third-party ones, from the entry-point group
``aerodrome.connectors``::

    [project.entry-points."aerodrome.connectors"]
    sharepoint = "mypackage.sharepoint:SharePointConnector"

A source config is a mapping with a ``kind``; :func:`make_connector` validates it
against the kind's model and builds the connector.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import BaseModel, Field

from aerodrome.errors import ConfigError
from aerodrome.hookspecs import Registry
from aerodrome.knowledge.connectors.base import Connector, ConnectorFactory, error_document
from aerodrome.knowledge.connectors.folder import FolderConnector, FolderSource
from aerodrome.knowledge.connectors.sql import SqlConnector, SqlSource
from aerodrome.knowledge.connectors.url import UrlConnector, UrlSource

CONNECTORS_GROUP = "aerodrome.connectors"

BuiltinSource = Annotated[FolderSource | UrlSource | SqlSource, Field(discriminator="kind")]
"""The built-in source configs, for models that embed a source (a collection's ``sources``)."""


def connector_registry() -> Registry[ConnectorFactory]:
    """The connector kinds: the built-ins plus every installed ``aerodrome.connectors`` entry point."""
    return Registry(
        CONNECTORS_GROUP,
        {"folder": FolderConnector, "url": UrlConnector, "sql": SqlConnector},
    )


def source_config(
    config: BaseModel | Mapping[str, Any], registry: Registry[ConnectorFactory] | None = None
) -> BaseModel:
    """Validate a source config (a mapping with ``kind``) against its kind's model.

    Raises :class:`~aerodrome.errors.ConfigError` for an unknown kind or invalid fields.
    """
    registry = registry or connector_registry()
    data: Mapping[str, Any] = config.model_dump() if isinstance(config, BaseModel) else config
    kind = data.get("kind")
    if not isinstance(kind, str):
        raise ConfigError("a source needs a 'kind' (folder, url, sql, or an installed connector)")
    factory = registry.get(kind)
    if isinstance(config, factory.config_type):
        return config
    try:
        return factory.config_type.model_validate(dict(data))
    except ValueError as exc:  # pydantic.ValidationError is a ValueError
        raise ConfigError(f"invalid {kind} source: {exc}") from exc


def make_connector(
    config: BaseModel | Mapping[str, Any], registry: Registry[ConnectorFactory] | None = None
) -> Connector:
    """Build the connector of a source config."""
    registry = registry or connector_registry()
    validated = source_config(config, registry)
    kind = str(getattr(validated, "kind", "") or (config.get("kind") if isinstance(config, Mapping) else ""))
    return registry.get(kind)(validated)


__all__ = [
    "CONNECTORS_GROUP",
    "BuiltinSource",
    "Connector",
    "ConnectorFactory",
    "FolderConnector",
    "FolderSource",
    "SqlConnector",
    "SqlSource",
    "UrlConnector",
    "UrlSource",
    "connector_registry",
    "error_document",
    "make_connector",
    "source_config",
]
