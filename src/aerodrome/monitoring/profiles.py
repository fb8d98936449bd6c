"""Traffic profiles: aggregates of use-case runs' features, per use case, department and UTC hour.

A :class:`Profile` holds counts and sums only (run and answer counts, refusals, sums and sums of
squares of ln(1 + characters) of inputs and answers, the sum of the inputs' embeddings and of
their squared norms), so profiles add up: a window's profile is the sum of its hours'. Nothing in a
profile is the text of an input or an answer. Rows are written by one process each
(``drift_profiles.writer``), so replicas never contend for a row; readers sum over writers.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
from sqlalchemy import Engine, select

from aerodrome.storage.tables import drift_profiles

PROJECTED_DIMS = 16


def projection(dims: int) -> np.ndarray:
    """A fixed orthonormal basis of 16 random directions of the embedding space (dims x 16).

    Deterministic (seed 0), so every process and every hour project alike. The sum of the outer
    products of the projected inputs gives their covariance in those directions, which is what the
    centroid test needs to be calibrated; the full covariance (384 x 384) would be too big to keep.
    """
    q, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(dims, PROJECTED_DIMS)))
    return np.asarray(q)


def hour_of(t: datetime) -> datetime:
    return t.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def log_length(text: str) -> float:
    return math.log1p(len(text))


@dataclass(slots=True)
class Profile:
    runs: int = 0
    answered: int = 0
    refusals: int = 0
    input_n: int = 0
    input_len_sum: float = 0.0
    input_len_sq: float = 0.0
    output_n: int = 0
    output_len_sum: float = 0.0
    output_len_sq: float = 0.0
    embedded: int = 0
    embedding_model: str | None = None
    embedding_sum: np.ndarray | None = field(default=None)
    embedding_sq: float = 0.0
    projected_outer: np.ndarray | None = field(default=None)  # sum of (P'x)(P'x)' (16 x 16)

    def observe(
        self,
        *,
        input_text: str | None,
        output_text: str | None,
        answered: bool,
        refused: bool,
        embedding: np.ndarray | None = None,
        model: str | None = None,
        basis: np.ndarray | None = None,
    ) -> None:
        """``basis``: :func:`projection` of the embedding's dimensions (computed by the caller once)."""
        self.runs += 1
        if answered:
            self.answered += 1
            self.refusals += int(refused)
        if input_text is not None:
            x = log_length(input_text)
            self.input_n += 1
            self.input_len_sum += x
            self.input_len_sq += x * x
        if output_text is not None:
            y = log_length(output_text)
            self.output_n += 1
            self.output_len_sum += y
            self.output_len_sq += y * y
        if embedding is not None:
            p = embedding @ (basis if basis is not None else projection(len(embedding)))
            self._add_embedding(1, embedding, float(np.dot(embedding, embedding)), model, np.outer(p, p))

    def _add_embedding(
        self, n: int, total: np.ndarray, sq: float, model: str | None, outer: np.ndarray | None
    ) -> None:
        if self.embedding_model is not None and model != self.embedding_model:
            return  # never mix two embedding models in one sum (the newer one waits for the next hour)
        self.embedding_model = model
        self.embedding_sum = (
            total.astype(np.float64) if self.embedding_sum is None else self.embedding_sum + total
        )
        if outer is not None:
            self.projected_outer = outer if self.projected_outer is None else self.projected_outer + outer
        self.embedded += n
        self.embedding_sq += sq

    def merge(self, other: Profile) -> None:
        self.runs += other.runs
        self.answered += other.answered
        self.refusals += other.refusals
        self.input_n += other.input_n
        self.input_len_sum += other.input_len_sum
        self.input_len_sq += other.input_len_sq
        self.output_n += other.output_n
        self.output_len_sum += other.output_len_sum
        self.output_len_sq += other.output_len_sq
        if other.embedding_sum is not None and other.embedded:
            self._add_embedding(
                other.embedded,
                other.embedding_sum,
                other.embedding_sq,
                other.embedding_model,
                other.projected_outer,
            )

    # what rules and reports read
    @property
    def refusal_rate(self) -> float | None:
        return self.refusals / self.answered if self.answered else None

    @property
    def input_chars_mean(self) -> float | None:
        """exp(mean ln(1 + chars)) - 1: the geometric mean length, robust to a few huge inputs."""
        return math.expm1(self.input_len_sum / self.input_n) if self.input_n else None

    @property
    def output_chars_mean(self) -> float | None:
        return math.expm1(self.output_len_sum / self.output_n) if self.output_n else None

    @property
    def centroid(self) -> np.ndarray | None:
        if self.embedding_sum is None or not self.embedded:
            return None
        return self.embedding_sum / self.embedded

    def as_row(self) -> dict[str, Any]:
        return {
            "runs": self.runs,
            "answered": self.answered,
            "refusals": self.refusals,
            "input_n": self.input_n,
            "input_len_sum": self.input_len_sum,
            "input_len_sq": self.input_len_sq,
            "output_n": self.output_n,
            "output_len_sum": self.output_len_sum,
            "output_len_sq": self.output_len_sq,
            "embedded": self.embedded,
            "embedding_model": self.embedding_model,
            "embedding_sum": None if self.embedding_sum is None else [float(v) for v in self.embedding_sum],
            "embedding_sq": self.embedding_sq,
            "projected_outer": None
            if self.projected_outer is None
            else [float(v) for v in self.projected_outer.ravel()],
        }

    @classmethod
    def from_row(cls, row: Any) -> Profile:
        emb = row.embedding_sum
        return cls(
            runs=row.runs,
            answered=row.answered,
            refusals=row.refusals,
            input_n=row.input_n,
            input_len_sum=row.input_len_sum,
            input_len_sq=row.input_len_sq,
            output_n=row.output_n,
            output_len_sum=row.output_len_sum,
            output_len_sq=row.output_len_sq,
            embedded=row.embedded,
            embedding_model=row.embedding_model,
            embedding_sum=None if emb is None else np.asarray(emb, dtype=np.float64),
            embedding_sq=row.embedding_sq,
            projected_outer=None
            if row.projected_outer is None
            else np.asarray(row.projected_outer, dtype=np.float64).reshape(PROJECTED_DIMS, PROJECTED_DIMS),
        )


Key = tuple[str, str, datetime]  # use case, department ("" for none), hour


def add_to_table(engine: Engine, writer: str, batch: dict[Key, Profile]) -> None:
    """Add the batch to this writer's rows (one transaction; no other process writes these rows)."""
    if not batch:
        return
    now = datetime.now(UTC)
    t = drift_profiles
    with engine.begin() as conn:
        for (usecase, dept, hour), prof in batch.items():
            where = (
                t.c.usecase_id == usecase,
                t.c.department_id == dept,
                t.c.hour == hour,
                t.c.writer == writer,
            )
            row = conn.execute(select(t).where(*where)).first()
            if row is None:
                conn.execute(
                    t.insert().values(
                        usecase_id=usecase,
                        department_id=dept,
                        hour=hour,
                        writer=writer,
                        updated_at=now,
                        **prof.as_row(),
                    )
                )
                continue
            total = Profile.from_row(row)
            total.merge(prof)
            conn.execute(t.update().where(*where).values(updated_at=now, **total.as_row()))


def hourly(
    engine: Engine, usecase_id: str, start: datetime | None, end: datetime, *, department: str | None = None
) -> dict[datetime, Profile]:
    """The use case's profile per hour in [start, end) (hours that start in it), summed over writers."""
    t = drift_profiles
    conds = [t.c.usecase_id == usecase_id, t.c.hour < end]
    if start is not None:
        conds.append(t.c.hour >= start)
    if department is not None:
        conds.append(t.c.department_id == department)
    out: dict[datetime, Profile] = defaultdict(Profile)
    with engine.connect() as conn:
        for row in conn.execute(select(t).where(*conds).order_by(t.c.hour)):
            out[hour_of(row.hour)].merge(Profile.from_row(row))
    return dict(out)


def total(profiles: dict[datetime, Profile]) -> Profile:
    out = Profile()
    for prof in profiles.values():
        out.merge(prof)
    return out
