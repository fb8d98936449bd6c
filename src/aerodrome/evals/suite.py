"""Eval suites: where they live, how they read, and every problem as FILE:LINE: FIELD: MESSAGE.

A use case's suite is ``<id>.yaml`` (settings and curated cases) and/or ``<id>.jsonl`` (one case
a line; ``aerodrome eval cases-from-feedback`` appends there) in the suites folder:
``evals.dir``, by default ``<usecases.dir>/evals``. The format is documented in docs/evals.md.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import yaml
from pydantic import ValidationError

from aerodrome.config import PlatformConfig, YamlPath, read_yaml
from aerodrome.errors import AerodromeError, BadRequest, NotFound
from aerodrome.evals.scoring import Assertion, assertion_registry
from aerodrome.usecases.inputs import validate_inputs
from aerodrome.usecases.spec import UseCaseSpec
from aerodrome.usecases.validation import SpecProblem

MAX_SUITE_BYTES = 8 * 1024 * 1024
SOURCES = ("curated", "live")
CASE_KEYS = frozenset(
    {"id", "inputs", "reference", "source", "department", "assertions", "description", "origin"}
)
SUITE_KEYS = frozenset({"usecase", "threshold", "assertions", "cases", "description"})
# A scalar given as ``{kind: scalar}`` fills this parameter (others: "value").
SHORTHAND = {
    "regex": "pattern",
    "judge": "rubric",
    "json_schema": "schema",
    "cites": "min",
    "refuses": "reason",
}


class SuiteNotFound(NotFound):
    code = "eval_suite_not_found"


class SuiteInvalid(BadRequest):
    code = "invalid_eval_suite"

    def __init__(self, problems: list[SpecProblem]) -> None:
        shown = "; ".join(str(p) for p in problems[:5])
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        super().__init__(f"the eval suite has {len(problems)} problem(s): {shown}{more}")
        self.problems = problems

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        data["error"]["problems"] = [p.to_dict() for p in self.problems]
        return data


@dataclass(slots=True)
class Case:
    id: str
    seq: int
    inputs: dict[str, Any]
    assertions: list[Assertion]
    source: str = "curated"  # curated | live
    reference: Any = None
    department: str | None = None
    origin: dict[str, Any] | None = None  # for cases made from corrections: feedback and run ids


@dataclass(slots=True)
class Suite:
    usecase_id: str
    threshold: float | None
    cases: list[Case]
    files: list[Path]
    digest: str  # the suite's content: a recorded run of another content is not evidence for this one


def suites_folder(config: PlatformConfig) -> Path | None:
    folder = config.evals.dir
    if folder is None:
        if config.usecases.dir is None:
            return None
        folder = config.usecases.dir / "evals"
    return folder if folder.is_absolute() else config.base_dir / folder


def suite_files(folder: Path, usecase_id: str) -> list[Path]:
    names = (f"{usecase_id}.yaml", f"{usecase_id}.yml", f"{usecase_id}.jsonl")
    return [folder / n for n in names if (folder / n).is_file()]


def _line(lines: dict[YamlPath, int], path: YamlPath) -> int | None:
    while path:
        if path in lines:
            return lines[path]
        path = path[:-1]
    return lines.get(())


class _Reader:
    """Collects the cases and problems of one suite's files."""

    def __init__(self, usecase_id: str, spec: UseCaseSpec | None, max_inputs_bytes: int) -> None:
        self.usecase_id = usecase_id
        self.spec = spec
        self.max_inputs_bytes = max_inputs_bytes
        self.registry = assertion_registry()
        self.problems: list[SpecProblem] = []
        self.cases: list[Case] = []
        self.seen: dict[str, str] = {}
        self.threshold: float | None = None
        self.defaults: list[Assertion] = []  # the suite's assertions, applied to every case
        self.content: list[Any] = []

    def problem(self, field_: str, message: str, source: str, line: int | None) -> None:
        self.problems.append(SpecProblem(field_, message, source, line))

    def parse_assertion(
        self, raw: Any, where: YamlPath, source: str, line_of: Any
    ) -> tuple[str, dict[str, Any]] | None:
        name = ".".join(str(p) for p in where)
        if isinstance(raw, str):
            kind, params = raw, {}
        elif isinstance(raw, dict) and "type" in raw:
            kind, params = str(raw["type"]), {k: v for k, v in raw.items() if k != "type"}
        elif isinstance(raw, dict) and len(raw) == 1:
            kind, value = next(iter(raw.items()))
            kind = str(kind)
            if isinstance(value, dict) and kind == "json_schema" and "schema" not in value:
                params = {"schema": value}  # {json_schema: <the schema>}
            elif isinstance(value, dict):
                params = dict(value)
            elif value is None or value is True:
                params = {}
            else:
                params = {SHORTHAND.get(kind, "value"): value}
        else:
            self.problem(
                name, "an assertion is a name, {type: NAME, ...} or {NAME: VALUE}", source, line_of(where)
            )
            return None
        if kind not in self.registry.names():
            known = ", ".join(self.registry.names())
            self.problem(name, f"unknown assertion {kind!r} (known: {known})", source, line_of(where))
            return None
        return kind, params

    def build(
        self, kind: str, params: dict[str, Any], where: YamlPath, source: str, line_of: Any
    ) -> Assertion | None:
        try:
            return self.registry.get(kind)(params)
        except ValidationError as exc:
            for err in exc.errors():
                loc = ".".join(str(p) for p in (*where, *err["loc"]))
                self.problem(loc, err["msg"].removeprefix("Value error, "), source, line_of(where))
        except (ValueError, TypeError, AerodromeError) as exc:
            self.problem(".".join(map(str, where)), str(exc), source, line_of(where))
        return None

    def add_case(self, raw: Any, where: YamlPath, source: str, line_of: Any) -> None:
        name = ".".join(str(p) for p in where) or "(case)"
        if not isinstance(raw, dict):
            self.problem(name, "a case must be a mapping", source, line_of(where))
            return
        self.content.append(raw)
        for key in sorted(set(raw) - CASE_KEYS):
            self.problem(
                f"{name}.{key}" if where else key,
                f"unknown field (fields: {sorted(CASE_KEYS)})",
                source,
                line_of((*where, key)),
            )
        case_id = raw.get("id")
        if not isinstance(case_id, str | int) or not str(case_id).strip():
            self.problem(f"{name}.id" if where else "id", "every case needs an id", source, line_of(where))
            return
        case_id = str(case_id)
        if case_id in self.seen:
            self.problem(
                f"{name}.id" if where else "id",
                f"the case id {case_id!r} is already used in {self.seen[case_id]}",
                source,
                line_of((*where, "id")),
            )
            return
        self.seen[case_id] = f"{source}:{line_of(where)}"
        ok = True
        inputs = raw.get("inputs")
        if not isinstance(inputs, dict):
            self.problem(
                f"{name}.inputs" if where else "inputs",
                "inputs must be a mapping of named values",
                source,
                line_of((*where, "inputs")),
            )
            ok = False
        elif self.spec is not None:
            try:
                validate_inputs(self.spec, inputs, max_bytes=self.max_inputs_bytes)
            except AerodromeError as exc:
                self.problem(
                    f"{name}.inputs" if where else "inputs", exc.message, source, line_of((*where, "inputs"))
                )
                ok = False
        origin_source = raw.get("source", "curated")
        if origin_source not in SOURCES:
            self.problem(
                f"{name}.source" if where else "source",
                f"source must be curated or live, not {origin_source!r}",
                source,
                line_of((*where, "source")),
            )
            ok = False
        department = raw.get("department")
        if department is not None and (self.spec is not None and department not in self.spec.departments):
            self.problem(
                f"{name}.department" if where else "department",
                f"the use case is not live in {department!r} (it is in {self.spec.departments})",
                source,
                line_of((*where, "department")),
            )
            ok = False
        raw_assertions = raw.get("assertions", [])
        if not isinstance(raw_assertions, list):
            self.problem(
                f"{name}.assertions" if where else "assertions",
                "assertions must be a list",
                source,
                line_of((*where, "assertions")),
            )
            return
        built: list[Assertion] = list(self.defaults)
        for i, entry in enumerate(raw_assertions):
            at = (*where, "assertions", i)
            parsed = self.parse_assertion(entry, at, source, line_of)
            made = self.build(*parsed, at, source, line_of) if parsed is not None else None
            if made is None:
                ok = False
            else:
                built.append(made)
        if not raw_assertions and not self.defaults:
            self.problem(
                name,
                "a case needs at least one assertion (here or in the suite's assertions)",
                source,
                line_of(where),
            )
            ok = False
        if ok and isinstance(inputs, dict):
            self.cases.append(
                Case(
                    id=case_id,
                    seq=len(self.cases),
                    inputs=inputs,
                    assertions=built,
                    source=str(origin_source),
                    reference=raw.get("reference"),
                    department=department,
                    origin=raw.get("origin") if isinstance(raw.get("origin"), dict) else None,
                )
            )

    def read_yaml_file(self, path: Path, text: str) -> None:
        source = str(path)
        try:
            data, lines = read_yaml(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            self.problem(
                "(file)",
                f"not valid YAML: {getattr(exc, 'problem', None) or exc}",
                source,
                mark.line + 1 if mark else None,
            )
            return

        def line_of(where: YamlPath) -> int | None:
            return _line(lines, where)

        if not isinstance(data, dict):
            self.problem("(file)", "a suite file must be a mapping with cases", source, 1)
            return
        for key in sorted(set(data) - SUITE_KEYS):
            self.problem(key, f"unknown field (fields: {sorted(SUITE_KEYS)})", source, line_of((key,)))
        named = data.get("usecase")
        if named is not None and named != self.usecase_id:
            self.problem(
                "usecase",
                f"the suite names {named!r} but its file is for {self.usecase_id!r}",
                source,
                line_of(("usecase",)),
            )
        threshold = data.get("threshold")
        if threshold is not None:
            if (
                isinstance(threshold, bool)
                or not isinstance(threshold, int | float)
                or not 0 <= threshold <= 1
            ):
                self.problem(
                    "threshold",
                    "threshold is the pass rate needed, from 0 to 1",
                    source,
                    line_of(("threshold",)),
                )
            else:
                self.threshold = float(threshold)
        defaults = data.get("assertions", [])
        if not isinstance(defaults, list):
            self.problem("assertions", "assertions must be a list", source, line_of(("assertions",)))
            defaults = []
        for i, entry in enumerate(defaults):
            parsed = self.parse_assertion(entry, ("assertions", i), source, line_of)
            made = self.build(*parsed, ("assertions", i), source, line_of) if parsed is not None else None
            if made is not None:
                self.defaults.append(made)
        self.content.append({k: data.get(k) for k in ("threshold", "assertions")})
        cases = data.get("cases", [])
        if not isinstance(cases, list):
            self.problem("cases", "cases must be a list", source, line_of(("cases",)))
            return
        for i, raw in enumerate(cases):
            self.add_case(raw, ("cases", i), source, line_of)

    def read_jsonl_file(self, path: Path, text: str) -> None:
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                raw = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                self.problem("(line)", f"not valid JSON: {exc}", str(path), number)
                continue
            self.add_case(raw, (), str(path), lambda _where, n=number: n)


def load_suite(
    folder: Path | None,
    usecase_id: str,
    spec: UseCaseSpec | None = None,
    *,
    max_inputs_bytes: int = 256 * 1024,
) -> Suite:
    """The use case's suite, checked (against its spec's inputs when given); 404 / 400 with every problem."""
    if folder is None:
        raise SuiteNotFound(
            "no eval suites folder: set usecases.dir (suites live in its evals/ folder) or evals.dir"
        )
    files = suite_files(folder, usecase_id)
    if not files:
        raise SuiteNotFound(
            f"the use case {usecase_id!r} has no eval suite; write {folder / (usecase_id + '.yaml')} "
            "(docs/evals.md)"
        )
    reader = _Reader(usecase_id, spec, max_inputs_bytes)
    yaml_files = [p for p in files if p.suffix != ".jsonl"]
    if len(yaml_files) > 1:
        reader.problem(
            "(file)", f"two suite files: {yaml_files[0].name} and {yaml_files[1].name}", str(yaml_files[1]), 1
        )
    for path in files:
        raw = path.read_bytes()
        if len(raw) > MAX_SUITE_BYTES:
            reader.problem(
                "(file)", f"{len(raw)} bytes; a suite file may have {MAX_SUITE_BYTES}", str(path), None
            )
            continue
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            reader.problem("(file)", f"not UTF-8 (byte {exc.start})", str(path), None)
            continue
        if path.suffix == ".jsonl":
            reader.read_jsonl_file(path, text)
        else:
            reader.read_yaml_file(path, text)
    if not reader.problems and not reader.cases:
        reader.problem("cases", "the suite has no cases", str(files[0]), None)
    if reader.problems:
        raise SuiteInvalid(reader.problems)
    digest = hashlib.sha256(
        orjson.dumps(reader.content, option=orjson.OPT_SORT_KEYS, default=str)
    ).hexdigest()
    return Suite(usecase_id, reader.threshold, reader.cases, files, digest)
