"""Corrected runs become eval cases: what people fixed is what the suite should check next time.

Reads the feedback export (:mod:`aerodrome.feedback.export`) of one use case and keeps, per run,
the newest line whose preferred answer is a person's: a reviewer's edit (``review_edited``) or a
caller's correction (``correction``). Each becomes a case tagged ``source: live``:

* ``inputs``: the run's inputs as the model saw them (after redaction or pseudonymisation), from
  the run record or the review item; runs whose department does not log content (``full``) have
  none and are skipped, with the reason;
* ``reference``: the correction;
* ``assertions``: for a JSON use case, ``exact`` on the corrected JSON when it parses; otherwise
  ``similar`` to the reference (local embeddings) at ``min_similarity``;
* ``origin``: the feedback, run and review ids, so a case can be traced back.

Runs already in the suite (a case with the same origin run) are not added twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Engine

from aerodrome.feedback.export import ExportFilter, lines
from aerodrome.identity.principal import Principal
from aerodrome.identity.store import load_departments
from aerodrome.usecases.spec import UseCaseSpec

PREFERRED = ("review_edited", "correction")
_SYSTEM = Principal(name="eval:cases-from-feedback", department_id="", roles=frozenset({"platform_admin"}))


@dataclass(slots=True)
class Harvest:
    cases: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # "run <id>: why"


def _inputs(line: dict[str, Any]) -> dict[str, Any] | None:
    given = line.get("input")
    if isinstance(given, dict):
        inputs = given.get("inputs", given if "messages" not in given else None)
        if isinstance(inputs, dict) and inputs:
            return inputs
    return None


def _assertions(spec: UseCaseSpec, reference: Any, min_similarity: float) -> tuple[Any, list[dict[str, Any]]]:
    if spec.output.format == "json":
        value = reference
        if isinstance(reference, str):
            try:
                value = orjson.loads(reference)
            except orjson.JSONDecodeError:
                value = None
        if isinstance(value, dict):
            return value, [{"type": "exact", "value": value}]
    text = reference if isinstance(reference, str) else orjson.dumps(reference).decode()
    return text, [{"type": "similar", "min": min_similarity}]


def harvest(
    engine: Engine,
    spec: UseCaseSpec,
    *,
    known_runs: set[str],
    known_ids: set[str],
    min_similarity: float = 0.75,
) -> Harvest:
    """New live cases from the use case's corrected runs (newest correction per run)."""
    policies = {d.id: d.content_logging for d in load_departments(engine).values()}
    newest: dict[str, dict[str, Any]] = {}
    for raw in lines(engine, _SYSTEM, "all", ExportFilter(usecase_id=spec.id), policies):
        line = orjson.loads(raw)
        if line.get("preferred_source") in PREFERRED and line.get("preferred_output") is not None:
            newest[line["run_id"]] = line  # oldest first: the last one seen is the newest
    out = Harvest()
    for run_id, line in newest.items():
        if run_id in known_runs:
            continue
        inputs = _inputs(line)
        if inputs is None:
            out.skipped.append(
                f"run {run_id}: its inputs were not kept (department {line.get('department_id')!r} "
                "does not log content in full)"
            )
            continue
        case_id = f"live-{run_id[:16]}"
        if case_id in known_ids:
            continue
        reference, assertions = _assertions(spec, line["preferred_output"], min_similarity)
        department = line.get("department_id")
        case: dict[str, Any] = {
            "id": case_id,
            "source": "live",
            "inputs": inputs,
            "reference": reference,
            "assertions": assertions,
            "origin": {
                "run_id": run_id,
                "feedback_id": line.get("feedback_id"),
                "review_id": (line.get("review") or {}).get("id"),
                "kind": line.get("preferred_source"),
                "spec_version": line.get("spec_version"),
            },
        }
        if department in spec.departments:
            case["department"] = department
        out.cases.append(case)
    return out


def known_origins(path: Path) -> tuple[set[str], set[str]]:
    """(run ids, case ids) of the cases already in a JSONL suite file."""
    runs: set[str] = set()
    ids: set[str] = set()
    if not path.is_file():
        return runs, ids
    for text in path.read_text(encoding="utf-8").splitlines():
        if not text.strip():
            continue
        try:
            case = orjson.loads(text)
        except orjson.JSONDecodeError:
            continue  # the suite loader reports it with its line
        if isinstance(case, dict):
            ids.add(str(case.get("id")))
            origin = case.get("origin")
            if isinstance(origin, dict) and origin.get("run_id"):
                runs.add(str(origin["run_id"]))
    return runs, ids


def append(path: Path, cases: list[dict[str, Any]]) -> None:
    """Add cases to a JSONL suite file (created when absent), one line each."""
    path.parent.mkdir(parents=True, exist_ok=True)
    existing = path.read_bytes() if path.is_file() else b""
    with path.open("ab") as fh:
        if existing and not existing.endswith(b"\n"):
            fh.write(b"\n")
        for case in cases:
            fh.write(orjson.dumps(case) + b"\n")
