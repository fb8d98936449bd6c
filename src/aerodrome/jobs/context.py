"""What a running job sees: the database, the config, the services it may need, its own record."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine

if TYPE_CHECKING:
    from aerodrome.config import PlatformConfig
    from aerodrome.knowledge.service import KnowledgeService

Progress = Callable[[int, int | None, str], None]


@dataclass(slots=True)
class JobContext:
    """Shared by every job of one process; ``knowledge`` builds the knowledge service on first use."""

    engine: Engine
    config: PlatformConfig
    knowledge: Callable[[], KnowledgeService]
    services: dict[str, Any] = field(default_factory=dict)  # for kinds that need more (e.g. evaluations)


@dataclass(frozen=True, slots=True)
class Job:
    id: str
    kind: str
    target: str
    payload: dict[str, Any]
    attempt: int  # 1 on the first try
    max_attempts: int
    created_by: str
    progress: Progress
