"""The folder connector: PDF, DOCX, HTML, Markdown and text files, and CSV / JSONL rows.

A file's ``source_id`` is its POSIX path relative to the folder; a row's is its id
field (``_id`` or ``id`` by default). Hidden files and folders are skipped, so are
extensions Aerodrome does not read. Per file, and never fatal to the others:
over ``max_file_bytes`` → error document; a binary file with a text extension →
error document "binary content"; unreadable file → error document. An empty folder
yields nothing (the caller reports it); a missing folder yields one source error.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from aerodrome.knowledge.connectors.base import error_document
from aerodrome.knowledge.connectors.rows import RowFields, RowFile, read_csv, read_jsonl
from aerodrome.knowledge.documents import SourceDocument
from aerodrome.knowledge.parsers import media_types
from aerodrome.knowledge.parsers.decoding import looks_binary

SNIFF_BYTES = 8192


class FolderSource(BaseModel):
    """A folder of files. Globs are matched against the POSIX path relative to the folder."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["folder"] = "folder"
    path: Path
    include: list[str] = Field(
        default_factory=lambda: ["**/*"],
        description="fnmatch globs ('*' also crosses '/'; a leading '**/' also matches at the top)",
    )
    exclude: list[str] = Field(default_factory=list)
    id_field: str = Field(default="_id|id", description="row id field; alternatives separated by '|'")
    title_field: str | None = "title"
    text_field: str = "text"
    modified_field: str | None = Field(
        default=None, description="row field with its modification time (ISO 8601)"
    )
    max_file_bytes: int = Field(
        default=50 * 1024 * 1024, gt=0, description="per file; for CSV / JSONL (streamed) per row"
    )


def matches(relative: str, patterns: list[str]) -> bool:
    """Whether a relative POSIX path matches any of the globs."""
    for pattern in patterns:
        if fnmatchcase(relative, pattern):
            return True
        if pattern.startswith("**/") and fnmatchcase(relative, pattern[3:]):
            return True
    return False


class FolderConnector:
    """Yields the documents of a folder, files in sorted path order."""

    config_type: ClassVar[type[BaseModel]] = FolderSource

    def __init__(self, config: FolderSource | Mapping[str, Any]) -> None:
        self.config = config if isinstance(config, FolderSource) else FolderSource.model_validate(config)
        c = self.config
        self.fields = RowFields.parse(c.id_field, c.title_field, c.text_field, c.modified_field)

    def documents(self) -> Iterator[SourceDocument]:
        """Every document of the folder; a duplicate id is an error document naming where it was first."""
        root = self.config.path.expanduser().absolute()
        if not root.is_dir():
            yield error_document(str(self.config.path), root.as_uri(), "folder not found", source_error=True)
            return
        seen: dict[str, str] = {}
        problems: list[OSError] = []
        for relative, path in self._files(root, problems):
            for doc in self._file_documents(root, relative, path):
                if doc.error is None and doc.source_id in seen:
                    where, line = seen[doc.source_id], doc.metadata.get("line")
                    location = f"{relative}#L{line}" if line else relative  # its own id, never the original's
                    reason = f"duplicate id {doc.source_id!r} (first in {where})"
                    yield error_document(location, doc.uri, reason)
                    continue
                seen.setdefault(doc.source_id, relative)
                yield doc
        for problem in problems:  # an unreadable sub-folder: the rest was read; a sync keeps what it had
            folder = Path(str(problem.filename or root))
            relative = folder.relative_to(root).as_posix() if folder.is_relative_to(root) else str(folder)
            reason = f"unreadable folder ({problem.strerror or problem})"
            yield error_document(relative, folder.as_uri(), reason, source_error=True)

    def _files(self, root: Path, problems: list[OSError]) -> Iterator[tuple[str, Path]]:
        for directory, dirs, files in os.walk(root, onerror=problems.append):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in sorted(files):
                if name.startswith("."):
                    continue
                path = Path(directory) / name
                relative = path.relative_to(root).as_posix()
                if not matches(relative, self.config.include) or matches(relative, self.config.exclude):
                    continue
                if media_types.for_path(name) is not None:
                    yield relative, path

    def _file_documents(self, root: Path, relative: str, path: Path) -> Iterator[SourceDocument]:
        uri = path.as_uri()
        media_type = media_types.for_path(path.name) or "application/octet-stream"
        try:
            if path.is_symlink() and not path.resolve().is_relative_to(root.resolve()):
                yield error_document(relative, uri, "symbolic link points outside the folder")
                return
            stat = path.stat()
            modified = datetime.fromtimestamp(stat.st_mtime, tz=UTC)
            if media_type in (media_types.CSV, media_types.JSONL):
                yield from self._rows(relative, path, uri, media_type, modified)
                return
            limit = self.config.max_file_bytes
            if stat.st_size > limit:
                yield error_document(
                    relative,
                    uri,
                    f"file too large ({stat.st_size} bytes; the limit is {limit})",
                    modified_at=modified,
                )
                return
            with path.open("rb") as handle:
                content = handle.read(limit + 1)
        except OSError as exc:
            yield error_document(relative, uri, f"unreadable file ({exc.strerror or exc})")
            return
        if len(content) > limit:
            yield error_document(relative, uri, f"file too large (over {limit} bytes)", modified_at=modified)
            return
        if media_type in media_types.TEXTUAL and looks_binary(content[:SNIFF_BYTES]):
            yield error_document(relative, uri, "binary content", media_type=media_type, modified_at=modified)
            return
        yield SourceDocument(
            source_id=relative,
            uri=uri,
            media_type=media_type,
            content=content,
            modified_at=modified,
            metadata={"filename": path.name, "size": len(content)},
        )

    def _rows(
        self, relative: str, path: Path, uri: str, media_type: str, modified: datetime
    ) -> Iterator[SourceDocument]:
        with path.open("rb") as handle:
            head = handle.read(SNIFF_BYTES)
        if looks_binary(head):
            yield error_document(relative, uri, "binary content", media_type=media_type, modified_at=modified)
            return
        file = RowFile(relative, path, uri, self.fields, self.config.max_file_bytes, modified)
        reader = read_jsonl if media_type == media_types.JSONL else read_csv
        try:
            yield from reader(file)
        except OSError as exc:
            yield error_document(relative, uri, f"unreadable file ({exc.strerror or exc})")
