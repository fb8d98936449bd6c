"""Job kinds by name: what a queued job of each kind runs, how often it may be tried, how often it recurs.

A kind is a :class:`JobKind`; the registry holds the built-ins (``ingest``, ``rollup``,
``retention``, ``eval``, ``redteam``) plus every entry point of the group ``aerodrome.jobs``. Code in the tree adds
a kind to :func:`job_registry`'s ``builtins``; a plugin adds one with, in its ``pyproject.toml``::

    [project.entry-points."aerodrome.jobs"]
    eval_run = "mypackage.jobs:EVAL_RUN"     # a JobKind instance

Servers enqueue by name (``rt.jobs.enqueue("eval_run", target, payload=...)``) and workers
look the name up here, so a kind needs no other change to run embedded or on a worker.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aerodrome.hookspecs import Registry

if TYPE_CHECKING:
    from aerodrome.config import PlatformConfig
    from aerodrome.jobs.context import Job, JobContext

JOBS_GROUP = "aerodrome.jobs"
Handler = Callable[["JobContext", "Job"], dict[str, Any]]


@dataclass(frozen=True, slots=True)
class JobKind:
    """One kind of background work.

    ``run(ctx, job)`` does the work and returns a JSON-able result; it reports progress with
    ``job.progress(done, total, message)``. It raises to fail the attempt: an
    :class:`~aerodrome.errors.AerodromeError` with a 4xx status (the job's input is wrong) fails
    the job at once, anything else is retried with backoff up to ``max_attempts``.
    """

    name: str
    run: Handler
    max_attempts: int | None = None  # None: the config's jobs.max_attempts
    exclusive: bool = True  # at most one queued or running job per (kind, target)
    # Periodic kinds: seconds between runs under this config (None or 0: not scheduled).
    interval_s: Callable[[PlatformConfig], float | None] | None = None
    target: str = ""  # the target of scheduled runs


def job_registry() -> Registry[JobKind]:
    """The job kinds: the built-ins plus every installed entry point."""
    from aerodrome.evals.jobs import EVAL, REDTEAM
    from aerodrome.jobs.kinds import INGEST, RETENTION, ROLLUP

    return Registry(JOBS_GROUP, {k.name: k for k in (INGEST, ROLLUP, RETENTION, EVAL, REDTEAM)})
