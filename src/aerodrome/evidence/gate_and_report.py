"""What a use case's evidence tab shows: the next gate's checklist (a dry run) and the pilot
report, from one read of the pilot.

The report's read of the pilot and its departments (``report.build_with_sizes``) already holds
every sample size the gate's minimum-samples check counts, so the gate is given those sizes
(``readiness.samples(..., known=)``) instead of reading the pilot a second time.
tests/evidence/test_fast_paths.py holds the result to the separate computations.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import partial
from typing import Any

from sqlalchemy import Engine

from aerodrome.errors import AerodromeError
from aerodrome.evidence import readiness, transitions
from aerodrome.evidence import report as pilot_report
from aerodrome.evidence.stages import NEXT
from aerodrome.usecases import store


@dataclass(slots=True)
class GateAndReport:
    next: str | None  # the next stage (None: none)
    gate: dict[str, Any] | None  # transitions.advance(..., dry_run=True) to it (None: no gate)
    report: dict[str, Any] | None  # report.build (None: no spec yet, or report_error)
    report_error: str | None


def gate_and_report(
    engine: Engine, usecase_id: str, *, actor: str, evidence: transitions.Evidence
) -> GateAndReport:
    """The next gate's dry run (with ``evidence``'s checks) and the report of ``usecase_id``, whose
    row must exist. When ``evidence.samples`` is :func:`readiness.samples` on ``engine`` (as
    ``readiness.gate_evidence`` makes it), it is given the report's sample sizes."""
    row = store.get(engine, usecase_id)
    nxt = NEXT.get(row["stage"])
    report: dict[str, Any] | None = None
    report_error = None
    sizes = None
    if row["current_version"]:
        try:
            report, sizes = pilot_report.build_with_sizes(engine, usecase_id)
        except AerodromeError as exc:
            report_error = exc.message
    gate = None
    if nxt is not None and row["stage"] != "decision":
        if _reads_samples(evidence, engine):
            evidence = replace(evidence, samples=partial(readiness.samples, engine, known=sizes))
        gate = transitions.advance(engine, usecase_id, nxt, actor=actor, evidence=evidence, dry_run=True)
    return GateAndReport(nxt, gate, report, report_error)


def _reads_samples(evidence: transitions.Evidence, engine: Engine) -> bool:
    f = evidence.samples
    return isinstance(f, partial) and f.func is readiness.samples and f.args == (engine,) and not f.keywords
