"""The store (DESIGN §5): SQLAlchemy 2 typed ORM over a SQLite file or any SQLAlchemy URL.

Every write is an idempotent upsert by content-hash id inside one transaction, so a run
killed at any point and started again finishes with nothing lost and nothing duplicated.
The ORM tables stay private to this module; callers see the pydantic contracts.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import (
    Boolean,
    Float,
    ForeignKey,
    Index,
    String,
    Text,
    create_engine,
    event,
    func,
    select,
)
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from envsynth.errors import NotFoundError, StoreError
from envsynth.schema import AuditReport, IntegrityCheck, StageReport, Task, Trajectory

DEFAULT_DB = "envsynth.db"


class _Base(DeclarativeBase):
    pass


class _Dataset(_Base):
    __tablename__ = "datasets"
    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    config: Mapped[str] = mapped_column(Text)
    created_at: Mapped[float] = mapped_column(Float)


class _Run(_Base):
    __tablename__ = "runs"
    id: Mapped[str] = mapped_column(String(80), primary_key=True)
    pipeline: Mapped[str] = mapped_column(String(32))
    dataset: Mapped[str] = mapped_column(String(200), index=True)
    config: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[float] = mapped_column(Float)
    finished_at: Mapped[float | None] = mapped_column(Float, nullable=True)


class _RunChunk(_Base):
    """One finished unit of a run, with its stage reports: what makes runs resumable."""

    __tablename__ = "run_chunks"
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id"), primary_key=True)
    chunk: Mapped[str] = mapped_column(String(80), primary_key=True)
    reports: Mapped[str] = mapped_column(Text)


class _Environment(_Base):
    __tablename__ = "environments"
    id: Mapped[str] = mapped_column(String(80), primary_key=True)
    dataset: Mapped[str] = mapped_column(String(200), index=True)
    family: Mapped[str] = mapped_column(String(80))
    variant: Mapped[str] = mapped_column(String(80))
    toolset_id: Mapped[str] = mapped_column(String(80))
    state: Mapped[str] = mapped_column(Text)


class _Task(_Base):
    __tablename__ = "tasks"
    id: Mapped[str] = mapped_column(String(80), primary_key=True)
    dataset: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(32))
    family: Mapped[str] = mapped_column(String(80))
    env_id: Mapped[str] = mapped_column(String(80))
    accepted: Mapped[bool] = mapped_column(Boolean)
    rejection: Mapped[str | None] = mapped_column(String(200), nullable=True)
    data: Mapped[str] = mapped_column(Text)
    __table_args__ = (Index("ix_tasks_dataset_accepted", "dataset", "accepted"),)


class _Validation(_Base):
    __tablename__ = "validations"
    task_id: Mapped[str] = mapped_column(String(80), primary_key=True)
    check: Mapped[str] = mapped_column(String(80), primary_key=True)
    expect_pass: Mapped[bool] = mapped_column(Boolean)
    reward: Mapped[float] = mapped_column(Float)
    reason: Mapped[str] = mapped_column(Text)


class _Trajectory(_Base):
    __tablename__ = "trajectories"
    id: Mapped[str] = mapped_column(String(80), primary_key=True)
    task_id: Mapped[str] = mapped_column(String(80), index=True)
    policy: Mapped[str] = mapped_column(String(200))
    reward: Mapped[float | None] = mapped_column(Float, nullable=True)
    data: Mapped[str] = mapped_column(Text)


class _Audit(_Base):
    __tablename__ = "audits"
    id: Mapped[str] = mapped_column(String(80), primary_key=True)
    dataset: Mapped[str] = mapped_column(String(200), index=True)
    policy: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[float] = mapped_column(Float)
    data: Mapped[str] = mapped_column(Text)


def _dumps(obj: Any) -> str:
    return orjson.dumps(obj).decode()


def resolve_url(db: str | os.PathLike[str] | None) -> str:
    """`--db` value → SQLAlchemy URL: a URL stays a URL, a path becomes a SQLite file."""
    db = os.fspath(db) if db is not None else os.environ.get("ENVSYNTH_DB", DEFAULT_DB)
    if "://" in db:
        return db
    return f"sqlite:///{Path(db).expanduser().resolve()}"


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    # WAL lets readers (the CLI's `list`, a gym) work while a pipeline writes.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


class Store:
    """Typed access to one database. Cheap to open; open one per process."""

    def __init__(self, db: str | os.PathLike[str] | None = None):
        self.url = resolve_url(db)
        try:
            url = make_url(self.url)
        except ArgumentError as e:
            raise StoreError(f"not a database path or SQLAlchemy URL: {db!r} ({e})") from None
        self.is_sqlite = url.get_backend_name() == "sqlite"
        if self.is_sqlite and url.database:
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
            self.blob_dir = Path(url.database + ".blobs")
        else:
            self.blob_dir = Path(os.environ.get("ENVSYNTH_BLOBS", "envsynth-blobs")).resolve()
        try:
            self.engine: Engine = create_engine(self.url)
        except (ArgumentError, NoSuchModuleError) as e:
            raise StoreError(
                f"cannot use the database URL {self.url!r}: {e}. Use a file path "
                "or a SQLAlchemy URL such as postgresql+psycopg://…"
            ) from None
        if self.is_sqlite:
            event.listen(self.engine, "connect", _sqlite_pragmas)
        try:
            _Base.metadata.create_all(self.engine)
        except OperationalError as e:
            raise StoreError(f"cannot open the store at {self.url}: {e.orig}") from None

    @contextmanager
    def _session(self) -> Iterator[Session]:
        with Session(self.engine) as session, session.begin():
            yield session

    # ---- upserts ----------------------------------------------------------------------
    def _upsert(self, session: Session, table: type[_Base], rows: Sequence[dict[str, Any]]) -> None:
        if not rows:
            return
        dialect = self.engine.dialect.name
        if dialect in ("sqlite", "postgresql"):
            from sqlalchemy.dialects import postgresql, sqlite

            insert = sqlite.insert if dialect == "sqlite" else postgresql.insert
            keys = [c.name for c in table.__table__.primary_key.columns]  # type: ignore[attr-defined]
            stmt = insert(table)
            update = {c: stmt.excluded[c] for c in rows[0] if c not in keys}
            stmt = (
                stmt.on_conflict_do_update(index_elements=keys, set_=update)
                if update
                else stmt.on_conflict_do_nothing(index_elements=keys)
            )
            # Chunked: SQLite limits the number of bound parameters per statement.
            for i in range(0, len(rows), 200):
                session.execute(stmt, list(rows[i : i + 200]))
        else:
            for row in rows:
                session.merge(table(**row))

    def ensure_dataset(
        self, name: str, kind: str, config: dict[str, Any], overwrite: bool = True
    ) -> None:
        """Record a dataset; with `overwrite=False` an existing record is left as it is."""
        with self._session() as s:
            existing = s.get(_Dataset, name)
            if existing is None:
                s.add(_Dataset(name=name, kind=kind, config=_dumps(config), created_at=time.time()))
            elif overwrite:
                existing.kind, existing.config = kind, _dumps(config)

    def start_run(self, run_id: str, pipeline: str, dataset: str, config: dict[str, Any]) -> None:
        """Record a run as running; a re-run of the same config reuses its id and chunks."""
        with self._session() as s:
            existing = s.get(_Run, run_id)
            if existing is None:
                s.add(
                    _Run(
                        id=run_id,
                        pipeline=pipeline,
                        dataset=dataset,
                        config=_dumps(config),
                        status="running",
                        started_at=time.time(),
                    )
                )
            else:
                existing.status = "running"

    def finish_run(self, run_id: str, status: str = "done") -> None:
        with self._session() as s:
            run = s.get(_Run, run_id)
            if run is None:
                raise NotFoundError(f"no run {run_id}")
            run.status, run.finished_at = status, time.time()

    def done_chunks(self, run_id: str) -> set[str]:
        with Session(self.engine) as s:
            return set(s.scalars(select(_RunChunk.chunk).where(_RunChunk.run_id == run_id)))

    def write_chunk(
        self,
        run_id: str,
        chunk: str,
        reports: Sequence[StageReport],
        environments: Sequence[dict[str, Any]] = (),
        tasks: Sequence[tuple[Task, str | None]] = (),
        checks: Sequence[tuple[str, IntegrityCheck]] = (),
    ) -> None:
        """Write one unit of work and mark it done, all in one transaction."""
        with self._session() as s:
            self._upsert(
                s, _Environment, [{**e, "state": _dumps(e["state"])} for e in environments]
            )
            self._upsert(s, _Task, [_task_row(t, rejection) for t, rejection in tasks])
            self._upsert(
                s,
                _Validation,
                [
                    {
                        "task_id": tid,
                        "check": c.check,
                        "expect_pass": c.expect_pass,
                        "reward": c.reward,
                        "reason": c.reason,
                    }
                    for tid, c in checks
                ],
            )
            self._upsert(
                s,
                _RunChunk,
                [
                    {
                        "run_id": run_id,
                        "chunk": chunk,
                        "reports": _dumps([r.model_dump() for r in reports]),
                    }
                ],
            )

    def put_tasks(self, tasks: Iterable[Task], rejection: str | None = None) -> int:
        rows = [_task_row(t, rejection) for t in tasks]
        with self._session() as s:
            self._upsert(s, _Task, rows)
        return len(rows)

    def set_rejection(self, task_ids: Iterable[str], rejection: str) -> None:
        with self._session() as s:
            for tid in task_ids:
                row = s.get(_Task, tid)
                if row is not None:
                    row.accepted, row.rejection = False, rejection

    def put_trajectories(self, trajectories: Iterable[Trajectory]) -> int:
        rows = [
            {
                "id": t.id,
                "task_id": t.task_id,
                "policy": t.policy.name,
                "reward": t.verdict.reward if t.verdict else None,
                "data": t.model_dump_json(),
            }
            for t in trajectories
        ]
        with self._session() as s:
            self._upsert(s, _Trajectory, rows)
        return len(rows)

    def put_audit(self, report: AuditReport) -> None:
        with self._session() as s:
            self._upsert(
                s,
                _Audit,
                [
                    {
                        "id": report.id,
                        "dataset": report.dataset,
                        "policy": report.policy,
                        "created_at": report.created_at,
                        "data": report.model_dump_json(),
                    }
                ],
            )

    # ---- reads ------------------------------------------------------------------------
    def run_reports(self, run_id: str) -> list[StageReport]:
        """Stage reports of a run: the sum over its finished chunks, in stage order."""
        merged: dict[str, StageReport] = {}
        with Session(self.engine) as s:
            for raw in s.scalars(select(_RunChunk.reports).where(_RunChunk.run_id == run_id)):
                for r in orjson.loads(raw):
                    rep = StageReport.model_validate(r)
                    merged[rep.stage] = (
                        merged[rep.stage].merged(rep) if rep.stage in merged else rep
                    )
        return list(merged.values())

    def runs(self, dataset: str | None = None) -> list[dict[str, Any]]:
        with Session(self.engine) as s:
            q = select(_Run).order_by(_Run.started_at)
            if dataset:
                q = q.where(_Run.dataset == dataset)
            return [
                {
                    "id": r.id,
                    "pipeline": r.pipeline,
                    "dataset": r.dataset,
                    "status": r.status,
                    "config": orjson.loads(r.config),
                    "started_at": r.started_at,
                    "finished_at": r.finished_at,
                }
                for r in s.scalars(q)
            ]

    def datasets(self) -> list[dict[str, Any]]:
        with Session(self.engine) as s:
            out = []
            for d in s.scalars(select(_Dataset).order_by(_Dataset.name)):
                counts = dict(
                    s.execute(
                        select(_Task.accepted, func.count())
                        .where(_Task.dataset == d.name)
                        .group_by(_Task.accepted)
                    ).all()
                )
                out.append(
                    {
                        "name": d.name,
                        "kind": d.kind,
                        "config": orjson.loads(d.config),
                        "accepted": counts.get(True, 0),
                        "rejected": counts.get(False, 0),
                    }
                )
            return out

    def dataset_config(self, name: str) -> dict[str, Any]:
        with Session(self.engine) as s:
            d = s.get(_Dataset, name)
            if d is None:
                known = list(s.scalars(select(_Dataset.name)))
                raise NotFoundError(f"no dataset {name!r} in {self.url}; datasets here: {known}")
            return orjson.loads(d.config)

    def task(self, task_id: str) -> Task:
        with Session(self.engine) as s:
            row = s.get(_Task, task_id)
            if row is None:
                raise NotFoundError(f"no task {task_id!r} in {self.url}")
            return Task.model_validate_json(row.data)

    def task_ids(
        self, dataset: str | None = None, accepted: bool | None = True, family: str | None = None
    ) -> list[str]:
        with Session(self.engine) as s:
            q = select(_Task.id).order_by(_Task.id)
            q = q.where(_Task.dataset == dataset) if dataset else q
            q = q.where(_Task.accepted == accepted) if accepted is not None else q
            q = q.where(_Task.family == family) if family else q
            return list(s.scalars(q))

    def integrity_passed_ids(self, dataset: str) -> list[str]:
        """Tasks that passed integrity: accepted, or cut later by the pass@k filter."""
        with Session(self.engine) as s:
            q = (
                select(_Task.id)
                .where(_Task.dataset == dataset)
                .where(_Task.accepted.is_(True) | (_Task.rejection == "passk_zero"))
                .order_by(_Task.id)
            )
            return list(s.scalars(q))

    def iter_tasks(
        self,
        dataset: str | None = None,
        accepted: bool | None = True,
        batch: int = 500,
        kind: str | None = None,
    ) -> Iterator[Task]:
        """Tasks in id order, read in batches so a large dataset never sits in memory at once.

        `dataset`, `accepted` and `kind` ("general", "code", …) narrow the tasks; None: any.
        """
        last = ""
        while True:
            with Session(self.engine) as s:
                q = (
                    select(_Task.id, _Task.data)
                    .where(_Task.id > last)
                    .order_by(_Task.id)
                    .limit(batch)
                )
                q = q.where(_Task.dataset == dataset) if dataset else q
                q = q.where(_Task.accepted == accepted) if accepted is not None else q
                q = q.where(_Task.kind == kind) if kind else q
                rows = s.execute(q).all()
            if not rows:
                return
            for _, data in rows:
                yield Task.model_validate_json(data)
            last = rows[-1][0]

    def rejections(self, dataset: str) -> dict[str, int]:
        with Session(self.engine) as s:
            rows = s.execute(
                select(_Task.rejection, func.count())
                .where(_Task.dataset == dataset, _Task.accepted.is_(False))
                .group_by(_Task.rejection)
            ).all()
            return {str(reason): int(n) for reason, n in rows}

    def count_tasks(self, dataset: str | None = None, accepted: bool | None = True) -> int:
        with Session(self.engine) as s:
            q = select(func.count()).select_from(_Task)
            q = q.where(_Task.dataset == dataset) if dataset else q
            q = q.where(_Task.accepted == accepted) if accepted is not None else q
            return int(s.scalar(q) or 0)

    def count_environments(self, dataset: str) -> tuple[int, int]:
        """(environments, distinct toolsets) of a dataset."""
        with Session(self.engine) as s:
            envs = (
                s.scalar(
                    select(func.count())
                    .select_from(_Environment)
                    .where(_Environment.dataset == dataset)
                )
                or 0
            )
            toolsets = (
                s.scalar(
                    select(func.count(func.distinct(_Environment.toolset_id))).where(
                        _Environment.dataset == dataset
                    )
                )
                or 0
            )
            return int(envs), int(toolsets)

    def checks(self, task_id: str) -> list[IntegrityCheck]:
        with Session(self.engine) as s:
            rows = s.scalars(select(_Validation).where(_Validation.task_id == task_id))
            return [
                IntegrityCheck(
                    check=r.check, expect_pass=r.expect_pass, reward=r.reward, reason=r.reason
                )
                for r in rows
            ]

    def trajectory(self, trajectory_id: str) -> Trajectory:
        with Session(self.engine) as s:
            row = s.get(_Trajectory, trajectory_id)
            if row is None:
                raise NotFoundError(f"no trajectory {trajectory_id!r} in {self.url}")
            return Trajectory.model_validate_json(row.data)

    def trajectories(self, task_id: str | None = None, limit: int = 1000) -> list[Trajectory]:
        with Session(self.engine) as s:
            q = select(_Trajectory.data).limit(limit)
            q = q.where(_Trajectory.task_id == task_id) if task_id else q
            return [Trajectory.model_validate_json(d) for d in s.scalars(q)]

    def count_trajectories(self) -> int:
        with Session(self.engine) as s:
            return int(s.scalar(select(func.count()).select_from(_Trajectory)) or 0)

    def latest_audit(self, dataset: str) -> AuditReport | None:
        with Session(self.engine) as s:
            data = s.scalar(
                select(_Audit.data)
                .where(_Audit.dataset == dataset)
                .order_by(_Audit.created_at.desc())
                .limit(1)
            )
            return AuditReport.model_validate_json(data) if data else None

    # ---- blobs ------------------------------------------------------------------------
    def put_blob(self, data: bytes) -> str:
        """Store bytes in a file named by their hash next to the database; return the hash."""
        digest = hashlib.sha256(data).hexdigest()
        path = self.blob_dir / digest[:2] / digest
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(data)
            tmp.replace(path)  # atomic: a killed writer never leaves a half blob under its name
        return digest

    def get_blob(self, digest: str) -> bytes:
        path = self.blob_dir / digest[:2] / digest
        if not path.exists():
            raise NotFoundError(f"no blob {digest} under {self.blob_dir}")
        return path.read_bytes()


def _task_row(task: Task, rejection: str | None) -> dict[str, Any]:
    return {
        "id": task.id,
        "dataset": task.dataset,
        "kind": task.kind,
        "family": task.family,
        "env_id": task.env_id,
        "accepted": rejection is None,
        "rejection": rejection,
        "data": task.model_dump_json(),
    }
