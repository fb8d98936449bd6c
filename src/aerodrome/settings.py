"""Typed process settings; the only reader of the environment."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Process-level settings (``AERODROME_*`` environment variables).

    The platform's own configuration (departments, models, limits) lives in the
    YAML file named by ``config``; these settings say where it is and how to serve.
    """

    model_config = SettingsConfigDict(env_prefix="AERODROME_", extra="ignore")

    config: Path | None = None
    database_url: str | None = Field(default=None, description="overrides database.url of the config file")
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    log_level: str = "info"
    log_json: bool = True
    data_dir: Path | None = Field(
        default=None,
        description="public attack and benchmark data (red-team suites); default: ../shared/data beside the project",
    )


def read_secret_env(name: str) -> str | None:
    """Secret references of the form ``env:NAME`` resolve here (still the settings module)."""
    return os.environ.get(name)
