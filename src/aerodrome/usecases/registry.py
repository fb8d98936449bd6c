"""The use cases being served: current versions loaded from the database, compiled once.

The folder of spec files (``usecases.dir``) is synchronised into the database at start
and whenever its files change: a valid file whose spec changed makes a new version; a
broken file is recorded as the use case's ``load_error`` while its last valid version
keeps serving; a file that disappeared removes its use case. Every replica reloads
from the database when the table changes, so all serve the same versions.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from aerodrome.guardrails.base import Guardrail
from aerodrome.guardrails.pii import CustomRecognizer
from aerodrome.guardrails.registry import guardrail_registry
from aerodrome.usecases import store
from aerodrome.usecases.loader import FolderLoad, folder_signature, load_folder
from aerodrome.usecases.spec import UseCaseSpec
from aerodrome.usecases.template import PromptTemplate
from aerodrome.usecases.validation import PlatformRefs, SpecProblem

log = logging.getLogger("aerodrome.usecases")


@dataclass(slots=True)
class LiveUseCase:
    spec: UseCaseSpec
    version: int
    origin: str
    source: str | None
    load_error: list[dict[str, Any]] | None
    prompt: PromptTemplate
    system: PromptTemplate | None
    query: PromptTemplate | None
    guards: dict[str, Guardrail] = field(default_factory=dict)  # pii, prompt_injection, output, custom names

    @property
    def id(self) -> str:
        return self.spec.id


def compile_live(row: dict[str, Any], pii_recognizers: Sequence[CustomRecognizer] = ()) -> LiveUseCase:
    spec = UseCaseSpec.model_validate(row["spec"])
    name = spec.id
    live = LiveUseCase(
        spec=spec,
        version=int(row["current_version"]),
        origin=row["origin"],
        source=row["source"],
        load_error=row.get("load_error"),
        prompt=PromptTemplate(spec.prompt, name=f"{name} prompt"),
        system=PromptTemplate(spec.system, name=f"{name} system") if spec.system is not None else None,
        query=(
            PromptTemplate(spec.retrieval.query, name=f"{name} retrieval query")
            if spec.retrieval is not None and spec.retrieval.query is not None
            else None
        ),
    )
    registry = guardrail_registry()
    guards = spec.guardrails
    if guards.pii is not None:
        pii = guards.pii.model_dump()
        own = {c["name"] for c in pii["custom"]}  # the spec's own recognizer wins over the platform's
        pii["custom"] = [r.model_dump() for r in pii_recognizers if r.name not in own] + pii["custom"]
        live.guards["pii"] = registry.get("pii")(pii)
    if guards.prompt_injection is not None:
        live.guards["prompt_injection"] = registry.get("prompt_injection")(
            guards.prompt_injection.model_dump()
        )
    output: dict[str, Any] = {}
    if guards.output is not None:
        out = guards.output
        output = {
            "max_chars": out.max_chars,
            "banned_terms": out.banned_terms,
            "require_citations": out.require_citations,
        }
        if out.pii is not None:  # the platform's recognizers join the answer's check too
            pii = out.pii.model_dump()
            own = {c["name"] for c in pii["custom"]}
            pii["custom"] = [r.model_dump() for r in pii_recognizers if r.name not in own] + pii["custom"]
            output["pii"] = pii
        if out.prompt_leak is not None:
            output["prompt_leak"] = out.prompt_leak.model_dump()
    if spec.output.schema_ is not None:
        output["json_schema"] = spec.output.schema_
    if output:
        live.guards["output"] = registry.get("output")(output)
    for check_name, config in guards.custom.items():
        live.guards[check_name] = registry.get(check_name)(config)
    return live


class UseCaseRegistry:
    def __init__(
        self,
        engine: Engine,
        *,
        folder: Path | None,
        refs: Callable[[], PlatformRefs],
        pii_recognizers: Sequence[CustomRecognizer] = (),
    ) -> None:
        self._pii_recognizers = tuple(pii_recognizers)
        self._engine = engine
        self._folder = folder
        self._refs = refs
        self._live: dict[str, LiveUseCase] = {}
        self._db_signature: Any = None
        self._folder_signature: Any = None
        self._lock = threading.Lock()
        self.folder_problems: list[SpecProblem] = []  # the last folder load's problems

    # ----------------------------------------------------------------- reading

    def get(self, usecase_id: str) -> LiveUseCase:
        found = self._live.get(usecase_id)
        if found is None:
            raise store.UseCaseNotFound(f"no use case {usecase_id!r}")
        return found

    def all(self) -> list[LiveUseCase]:
        return sorted(self._live.values(), key=lambda u: u.id)

    def warm(self) -> None:
        """Build the guardrail engines of every use case now rather than on its first run."""
        for live in self.all():
            for guard in live.guards.values():
                warm = getattr(guard, "warm", None)
                if callable(warm):
                    warm()

    # ----------------------------------------------------------------- keeping current

    def reload(self, *, force: bool = False) -> None:
        """Load current versions from the database when the table changed (compiling only what changed)."""
        with self._lock:
            sig = store.signature(self._engine)
            if not force and sig == self._db_signature:
                return
            rows = store.list_active(self._engine)
            live: dict[str, LiveUseCase] = {}
            for row in rows:
                known = self._live.get(row["id"])
                if known is not None and known.version == row["current_version"]:
                    known.load_error = row["load_error"]
                    known.origin, known.source = row["origin"], row["source"]
                    live[row["id"]] = known
                    continue
                try:
                    live[row["id"]] = compile_live(row, self._pii_recognizers)
                except Exception:  # boundary: one unloadable stored version must not hide the others
                    log.exception(
                        "could not load the use case %s version %s", row["id"], row["current_version"]
                    )
            self._live = live
            self._db_signature = sig

    def sync_folder(self, *, force: bool = False, actor: str = "config") -> FolderLoad | None:
        """Bring the folder's specs into the database (new versions, load errors, removals), then reload."""
        if self._folder is None:
            return None
        sig = folder_signature(self._folder)
        if not force and sig == self._folder_signature:
            return None
        loaded = load_folder(self._folder, self._refs())
        self._apply(loaded, actor)
        self._folder_signature = sig
        self.folder_problems = loaded.all_problems()
        self.reload(force=True)
        return loaded

    def _apply(self, loaded: FolderLoad, actor: str) -> None:
        if loaded.problems:  # the folder itself is missing: change nothing
            for problem in loaded.problems:
                log.error("use-case folder: %s", problem)
            return
        declared: set[str] = set()
        for checked in loaded.files:
            spec = checked.check.spec
            ident = spec.id if spec is not None else checked.declared_id
            if ident is not None:
                declared.add(ident)
            if checked.check.ok and spec is not None:
                try:
                    store.save_version(
                        self._engine, spec, origin="file", source=str(checked.path), actor=actor
                    )
                except Exception as exc:  # boundary: one file's failure must not stop the others
                    log.error("use case %s from %s not saved: %s", spec.id, checked.path, exc)
                continue
            for problem in checked.check.problems:
                log.error("use-case spec: %s", problem)
            if ident is not None:
                store.record_load_error(self._engine, ident, [p.to_dict() for p in checked.check.problems])
        for ident, source in store.file_defined(self._engine).items():
            if ident not in declared:
                log.warning("use case %s: its file %s is gone; removing it", ident, source)
                store.remove(self._engine, ident, actor=actor)
