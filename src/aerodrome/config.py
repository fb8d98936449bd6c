"""Platform configuration file (YAML) → typed objects. The only YAML reader."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from aerodrome.errors import ConfigError

DataClass = Literal["public", "internal", "confidential", "restricted"]
DATA_CLASS_ORDER: dict[str, int] = {"public": 0, "internal": 1, "confidential": 2, "restricted": 3}
ApprovalStatus = Literal["approved", "trial", "deprecated", "blocked"]
Hosting = Literal["on-prem", "private-cloud", "vendor"]
ContentLogging = Literal["off", "metadata", "full"]
Period = Literal["day", "month", "total"]
ROLES = (
    "platform_admin",
    "department_admin",
    "builder",
    "reviewer",
    "approver",
    "auditor",
    "user",
)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Limits(_Model):
    """Requests and tokens per minute; None means unlimited."""

    rpm: int | None = Field(default=None, ge=1)
    tpm: int | None = Field(default=None, ge=1)


class Budget(_Model):
    """A USD budget over a period. ``soft_pct`` of it raises a warning; the whole refuses."""

    usd: float = Field(gt=0)
    period: Period = "month"
    soft_pct: float = Field(default=0.8, gt=0, le=1)


class DepartmentConfig(_Model):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")
    name: str = ""
    eligible_users: int = Field(default=0, ge=0)
    content_logging: ContentLogging = "metadata"
    limits: Limits = Limits()
    budget: Budget | None = None


class UserConfig(_Model):
    email: str
    name: str = ""
    department: str
    roles: list[str] = ["user"]
    attributes: dict[str, Any] = {}

    @field_validator("roles")
    @classmethod
    def _known_roles(cls, roles: list[str]) -> list[str]:
        unknown = [r for r in roles if r not in ROLES]
        if unknown:
            raise ValueError(f"unknown role(s) {unknown}; roles are {list(ROLES)}")
        return roles


class ProviderConfig(_Model):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
    kind: str  # openai | anthropic | local | any registered provider kind
    base_url: str | None = None
    # A secret reference: "env:NAME", "file:/path"; never the secret itself in the file.
    api_key: str | None = None
    headers: dict[str, str] = {}

    @field_validator("api_key")
    @classmethod
    def _secret_ref(cls, value: str | None) -> str | None:
        if value is None or value.startswith(("env:", "file:")):
            return value
        raise ValueError("api_key must be a secret reference such as 'env:OPENAI_API_KEY' or 'file:/run/secrets/key'")


class Prices(_Model):
    input_per_mtok: float = Field(default=0.0, ge=0)
    output_per_mtok: float = Field(default=0.0, ge=0)


class DeploymentConfig(_Model):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,127}$")
    provider: str
    model: str  # upstream model id, pinned to a version
    status: ApprovalStatus = "approved"
    hosting: Hosting = "vendor"
    trains_on_data: bool = False
    region: str = ""
    max_data_class: DataClass = "internal"
    prices: Prices = Prices()
    context_window: int = Field(default=8192, ge=1)
    max_output_tokens: int = Field(default=4096, ge=1)
    timeout_s: float = Field(default=60.0, gt=0)
    weight: float = Field(default=1.0, gt=0)
    kind: Literal["chat", "embeddings"] = "chat"


class AliasConfig(_Model):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")
    deployments: list[str] = Field(min_length=1)
    strategy: Literal["fallback", "round_robin", "weighted"] = "fallback"
    description: str = ""
    budget: Budget | None = None


class BreakerConfig(_Model):
    failures: int = Field(default=5, ge=1)
    cooldown_s: float = Field(default=30.0, gt=0)


class RoutingConfig(_Model):
    max_retries: int = Field(default=2, ge=0, le=10)
    backoff_initial_s: float = Field(default=0.1, ge=0)
    backoff_max_s: float = Field(default=2.0, ge=0)
    breaker: BreakerConfig = BreakerConfig()


class DatabaseConfig(_Model):
    url: str = "sqlite:///aerodrome.db"
    # None: migrate automatically on SQLite (embedded mode), never on PostgreSQL.
    auto_migrate: bool | None = None


class ServerConfig(_Model):
    max_body_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)
    key_cache_ttl_s: float = Field(default=2.0, ge=0, le=5)
    run_flush_interval_s: float = Field(default=0.2, gt=0)
    run_batch_size: int = Field(default=500, ge=1)
    default_key_limits: Limits = Limits()


class PlatformConfig(_Model):
    """The whole platform configuration, as read from ``aerodrome.yaml``."""

    database: DatabaseConfig = DatabaseConfig()
    server: ServerConfig = ServerConfig()
    routing: RoutingConfig = RoutingConfig()
    departments: list[DepartmentConfig] = []
    users: list[UserConfig] = []
    providers: list[ProviderConfig] = []
    deployments: list[DeploymentConfig] = []
    aliases: list[AliasConfig] = []
    # Set by load_config: the directory relative paths resolve against.
    base_dir: Path = Field(default=Path("."), exclude=True)

    @model_validator(mode="after")
    def _references(self) -> PlatformConfig:
        _unique("departments", [d.id for d in self.departments])
        _unique("providers", [p.name for p in self.providers])
        _unique("deployments", [d.name for d in self.deployments])
        _unique("aliases", [a.name for a in self.aliases])
        departments = {d.id for d in self.departments}
        for user in self.users:
            if user.department not in departments:
                raise ValueError(f"user {user.email}: unknown department {user.department!r}")
        providers = {p.name for p in self.providers}
        for dep in self.deployments:
            if dep.provider not in providers:
                raise ValueError(f"deployment {dep.name}: unknown provider {dep.provider!r}")
        deployments = {d.name for d in self.deployments}
        for alias in self.aliases:
            if alias.name in deployments:
                raise ValueError(f"alias {alias.name}: a deployment has the same name")
            for name in alias.deployments:
                if name not in deployments:
                    raise ValueError(f"alias {alias.name}: unknown deployment {name!r}")
        return self

    def resolved_database_url(self) -> str:
        """SQLite paths in the file are relative to the config file's directory."""
        url = self.database.url
        prefix = "sqlite:///"
        if url.startswith(prefix) and not url.startswith(prefix + "/") and ":memory:" not in url:
            return prefix + str((self.base_dir / url[len(prefix) :]).resolve())
        return url


def _unique(what: str, names: list[str]) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise ValueError(f"{what}: {name!r} is defined twice")
        seen.add(name)


def parse_config(data: dict[str, Any], *, base_dir: Path, source: str = "<config>") -> PlatformConfig:
    try:
        config = PlatformConfig.model_validate(data or {})
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
            lines.append(f"  {loc}: {err['msg']}")
        raise ConfigError(f"{source}: invalid configuration\n" + "\n".join(lines)) from None
    config.base_dir = base_dir
    return config


def load_config(path: Path | str | None) -> PlatformConfig:
    """Read and validate a platform config file; no file means the embedded defaults."""
    if path is None:
        return parse_config({}, base_dir=Path.cwd())
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path} (create one with `aerodrome init`)") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if data is not None and not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping")
    return parse_config(data or {}, base_dir=path.resolve().parent, source=str(path))


def dump_yaml(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
