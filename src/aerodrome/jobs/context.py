"""What a running job sees: the database, the config, the services it may need, its own record."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Engine

if TYPE_CHECKING:
    from aerodrome.config import PlatformConfig
    from aerodrome.knowledge.service import KnowledgeService
    from aerodrome.runtime import Runtime

Progress = Callable[[int, int | None, str], None]
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Platform:
    """The whole running platform (use cases, gateway, providers) and the event loop it lives on.

    Kinds that run use cases (evaluations, red-team runs) need it: a server hands over its own; an
    ``aerodrome worker`` process starts one on first use."""

    runtime: Runtime
    loop: asyncio.AbstractEventLoop

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine on the platform's loop from a job's thread and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()


@dataclass(slots=True)
class JobContext:
    """Shared by every job of one process; ``knowledge`` builds the knowledge service on first use."""

    engine: Engine
    config: PlatformConfig
    knowledge: Callable[[], KnowledgeService]
    services: dict[str, Any] = field(default_factory=dict)  # for kinds that need more
    platform: Callable[[], Platform] | None = None  # for kinds that run use cases

    def running_platform(self) -> Platform:
        if self.platform is None:
            raise RuntimeError("this process cannot run use cases (no platform was handed to its jobs)")
        return self.platform()


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
