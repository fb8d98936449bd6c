"""Finding one run for its caller, and who may act on it.

Run records are written off the hot path in batches, so a run asked for right after it finished
may not be in the table yet. The lookup asks, in order: the writer's map of records not yet
written (this replica), the ``runs`` table (with ``run_contents`` when the content is needed),
then the run's review item (written synchronously when an output is held, so it is there on
every replica at once).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine

from aerodrome.errors import Forbidden, NotFound
from aerodrome.identity import permissions as perm
from aerodrome.identity.principal import Principal
from aerodrome.monitoring.run_log import RunWriter
from aerodrome.monitoring.runs import get_run


@dataclass(frozen=True, slots=True)
class FoundRun:
    record: dict[str, Any] | None  # the run record, when written or pending on this replica
    review: dict[str, Any] | None  # the review item, when the output was held
    department_id: str | None
    key_id: str | None
    user_id: str | None

    @property
    def use_case_id(self) -> str | None:
        if self.record is not None and self.record.get("use_case_id"):
            return str(self.record["use_case_id"])
        return self.review["usecase_id"] if self.review else None

    @property
    def spec_version(self) -> int | None:
        if self.record is not None and self.record.get("spec_version") is not None:
            return int(self.record["spec_version"])
        return self.review["spec_version"] if self.review else None


class RunLookup:
    def __init__(
        self, engine: Engine, writer: RunWriter, held: Callable[[str], dict[str, Any] | None]
    ) -> None:
        self.engine = engine
        self.writer = writer
        self.held = held  # run id → its review item (ReviewQueue.for_run)

    def find(self, run_id: str, *, content: bool = True) -> FoundRun:
        """The run, or 404 ``run_not_found``; without ``content``, a written run's record has no
        ``input`` and ``output`` (``run_contents`` is not read)."""
        record = self.writer.recent(run_id) or get_run(self.engine, run_id, content=content)
        review = self.held(run_id)
        if record is not None:
            return FoundRun(
                record, review, record.get("department_id"), record.get("key_id"), record.get("user_id")
            )
        if review is not None:
            return FoundRun(None, review, review["department_id"], review["key_id"], review["user_id"])
        raise NotFound(f"no run {run_id!r}", code="run_not_found", param="run_id")


def stored_input(value: Any) -> Any:
    """The content of a run record's ``input``; None when only a metadata summary was kept."""
    if isinstance(value, dict) and isinstance(value.get("messages"), int):
        return None  # {"messages": n, "roles": [...], "tools": n}: the "metadata" policy
    return value


def stored_output(value: Any) -> Any:
    """The content of a run record's ``output`` (the text itself); None when only its size was kept."""
    if isinstance(value, dict):
        if "text" in value:
            return value["text"]
        if set(value) <= {"chars"}:
            return None
    return value


def is_callers(principal: Principal, run: FoundRun) -> bool:
    """The run was made with the principal's key, or by the same user."""
    if run.key_id is not None and run.key_id == principal.key_id:
        return True
    return run.user_id is not None and principal.user_id is not None and run.user_id == principal.user_id


def check_access(principal: Principal, run: FoundRun, action: str) -> bool:
    """Let the run's caller, or a principal whose scope for ``action`` covers the run; else 403.

    Returns True for the caller, False for someone acting through their role.
    """
    if is_callers(principal, run):
        return True
    scope = perm.scope_for(principal, action)
    if scope == "all" or (
        scope == "department"
        and run.department_id is not None
        and run.department_id == principal.department_id
    ):
        return False
    raise Forbidden("this run belongs to someone else", code="permission_denied")
