"""Where an environment's task comes from: a Task, a task id, or a dataset and a seed."""

from __future__ import annotations

from typing import Any

import numpy as np

from envsynth.errors import ConfigError
from envsynth.schema import Task
from envsynth.store import Store


class TaskSource:
    """Resolve the task of each episode.

    Exactly one of `task`, `task_id` or `dataset` is given. With `dataset`, the task is drawn
    by the reset seed (the same seed always gives the same task, so every member of a GRPO
    group gets the same instance), or by the environment's generator when no seed is given.
    `options={"task_id": …}` at reset overrides it for one episode.

    Args:
        kind: the task kind this environment serves.
        task: a Task (or its dict form).
        task_id: id of a task in the store at `db`.
        dataset: name of a dataset in the store at `db`.
        db: store path or SQLAlchemy URL; `ENVSYNTH_DB` or ./envsynth.db by default.
    """

    def __init__(
        self,
        kind: str,
        task: Task | dict[str, Any] | None = None,
        task_id: str | None = None,
        dataset: str | None = None,
        db: str | None = None,
    ):
        if sum(x is not None for x in (task, task_id, dataset)) != 1:
            raise ConfigError("give exactly one of task=, task_id= or dataset= (with db=)")
        self.kind, self.db = kind, db
        self._store: Store | None = None
        self._fixed = Task.model_validate(task) if isinstance(task, dict) else task
        if task_id is not None:
            self._fixed = self.store.task(task_id)
        self.dataset = dataset
        self._ids: list[str] = []
        if dataset is not None:
            self._ids = self.store.task_ids(dataset=dataset, accepted=True)
            if not self._ids:
                raise ConfigError(f"dataset {dataset!r} in {self.store.url} has no accepted tasks")
        if self._fixed is not None and self._fixed.kind != kind:
            raise ConfigError(f"task {self._fixed.id} is a {self._fixed.kind} task, not {kind}")

    @property
    def store(self) -> Store:
        if self._store is None:
            self._store = Store(self.db)
        return self._store

    def select(self, seed: int | None, rng: np.random.Generator, options: dict[str, Any]) -> Task:
        if "task_id" in options:
            return self.store.task(options["task_id"])
        if self._fixed is not None:
            return self._fixed
        index = seed % len(self._ids) if seed is not None else int(rng.integers(len(self._ids)))
        task = self.store.task(self._ids[index])
        if task.kind != self.kind:
            raise ConfigError(f"task {task.id} is a {task.kind} task, not {self.kind}")
        return task
