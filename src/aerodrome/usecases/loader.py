"""Reading use-case spec files: one spec per ``*.yaml`` / ``*.yml`` file in the configured folder."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from aerodrome.config import read_yaml
from aerodrome.usecases.validation import PlatformRefs, SpecCheck, SpecProblem, check_spec

MAX_SPEC_BYTES = 512 * 1024


@dataclass(slots=True)
class FileCheck:
    path: Path
    check: SpecCheck
    declared_id: str | None = None  # the id the file names, even when the spec is invalid


@dataclass(slots=True)
class FolderLoad:
    files: list[FileCheck] = field(default_factory=list)
    problems: list[SpecProblem] = field(default_factory=list)  # about the folder itself

    @property
    def ok(self) -> bool:
        return not self.problems and all(f.check.ok for f in self.files)

    def all_problems(self) -> list[SpecProblem]:
        return self.problems + [p for f in self.files for p in f.check.problems]


def spec_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in (".yaml", ".yml"))


def folder_signature(folder: Path) -> tuple[tuple[str, int, int], ...]:
    """Changes whenever a spec file is added, removed or edited (cheap: names, sizes, mtimes)."""
    try:
        files = spec_files(folder)
    except OSError:
        return ()
    out = []
    for p in files:
        try:
            st = p.stat()
        except OSError:
            continue
        out.append((p.name, st.st_size, st.st_mtime_ns))
    return tuple(out)


def check_file(path: Path, refs: PlatformRefs, *, label: str | None = None) -> FileCheck:
    source = label or str(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        return FileCheck(
            path, SpecCheck(None, [SpecProblem("(file)", f"cannot read: {exc.strerror}", source)])
        )
    if len(raw) > MAX_SPEC_BYTES:
        problem = SpecProblem("(file)", f"{len(raw)} bytes; a spec file may have {MAX_SPEC_BYTES}", source)
        return FileCheck(path, SpecCheck(None, [problem]))
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        problem = SpecProblem("(file)", f"not UTF-8 (byte {exc.start})", source)
        return FileCheck(path, SpecCheck(None, [problem]))
    try:
        data, lines = read_yaml(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        reason = getattr(exc, "problem", None) or str(exc)
        return FileCheck(
            path, SpecCheck(None, [SpecProblem("(file)", f"not valid YAML: {reason}", source, line)])
        )
    declared = data.get("id") if isinstance(data, dict) and isinstance(data.get("id"), str) else None
    return FileCheck(path, check_spec(data, refs, source=source, lines=lines, text=text), declared)


def load_folder(folder: Path, refs: PlatformRefs) -> FolderLoad:
    """Every spec file checked; two files naming the same id is a problem of the second one."""
    result = FolderLoad()
    if not folder.is_dir():
        result.problems.append(SpecProblem("(folder)", "not a folder", str(folder)))
        return result
    seen: dict[str, Path] = {}
    for path in spec_files(folder):
        checked = check_file(path, refs)
        ident = checked.check.spec.id if checked.check.spec is not None else checked.declared_id
        if ident is not None and ident in seen:
            checked.check.problems.append(
                SpecProblem("id", f"the use case {ident!r} is already defined in {seen[ident]}", str(path), 1)
            )
        elif ident is not None:
            seen[ident] = path
        result.files.append(checked)
    return result
