"""The images code tasks run in: which stored tasks use them, and pruning the unused ones.

Each accepted code task names its instance image (`payload.extra["image"]`), a thin layer
on its repository's environment image (see `pipelines.code_agent.environment`). Nothing
else records that use, and a task may live in any store, so only the stores named here
can say that an image is unused: pruning never guesses, it removes only instance images
that none of the named stores' tasks (accepted or not, any dataset) names, then the
environment images none of whose instances a task names. Docker refuses to remove an image
another is built on or a container runs from, and that refusal is what keeps them.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from docker.models.images import Image

from envsynth.errors import ConfigError
from envsynth.schema import CodeInstance
from envsynth.store import Store
from pipelines.code_agent.environment import ENV_LABEL, REPO_LABEL
from sandbox.docker_sandbox import docker_client
from sandbox.images import IMAGE_LABEL, remove_quietly

# The values of IMAGE_LABEL that environment.py gives the two layers, by their tag prefix.
KINDS = {"env": "envsynth/env-", "instance": "envsynth/inst-"}


@dataclass(frozen=True)
class TaskImage:
    """One tag of an environment or instance image.

    Attributes:
        tag: the image's tag (an image under several instance names has a row for each).
        kind: "env" or "instance".
        repo: the repository it holds (owner/name).
        size_mb: the image's size, its shared layers included.
        tasks: stored tasks that name this tag; for an environment, that name an instance
            built on it.
    """

    tag: str
    kind: str
    repo: str
    size_mb: float
    tasks: int


def existing_stores(dbs: Iterable[str | os.PathLike[str]]) -> list[Store]:
    """Open stores that must already exist: a mistyped path must not read as "no tasks".

    Raises:
        ConfigError: a path (not a URL) with no file at it.
    """
    stores = []
    for db in dbs:
        if "://" not in os.fspath(db) and not Path(db).expanduser().is_file():
            raise ConfigError(f"no store at {os.fspath(db)!r}: name an existing database")
        stores.append(Store(db))
    return stores


def referenced_tags(stores: Iterable[Store]) -> Counter[str]:
    """How many code tasks of these stores name each instance image tag."""
    uses: Counter[str] = Counter()
    for store in stores:
        for task in store.iter_tasks(accepted=None, kind="code"):
            if isinstance(task.payload, CodeInstance) and "image" in task.payload.extra:
                uses[task.payload.extra["image"]] += 1
    return uses


def task_images(stores: Iterable[Store] = (), repo: str | None = None) -> list[TaskImage]:
    """Every tag of an environment or instance image, with its use by the stores' tasks.

    Args:
        stores: where to count uses (none: every count is 0).
        repo: only this repository's images (owner/name).
    """
    uses = referenced_tags(stores)
    tagged = [
        (kind, image, tag)
        for kind, image in _images(repo)
        for tag in image.tags
        if tag.startswith(KINDS[kind])
    ]
    # An instance inherits its environment's ENV_LABEL: an environment's tasks are the
    # tasks of the instances built on it.
    by_env: Counter[str] = Counter()
    for kind, image, tag in tagged:
        if kind == "instance":
            by_env[image.labels.get(ENV_LABEL, "")] += uses[tag]
    rows = [
        TaskImage(
            tag=tag,
            kind=kind,
            repo=image.labels.get(REPO_LABEL, ""),
            size_mb=image.attrs.get("Size", 0) / 1e6,
            tasks=uses[tag] if kind == "instance" else by_env[image.labels.get(ENV_LABEL, "")],
        )
        for kind, image, tag in tagged
    ]
    return sorted(rows, key=lambda r: (r.repo, r.kind, r.tag))


def prune_task_images(stores: Iterable[Store], repo: str | None = None) -> list[str]:
    """Remove the instance tags no task of `stores` names, then unused environment images.

    Args:
        stores: the stores whose tasks keep their images (at least one: see the module doc).
        repo: only this repository's images (owner/name).

    Returns:
        The tags removed (a tag shared with a kept one only loses its name).

    Raises:
        ValueError: no store was named.
    """
    stores = list(stores)
    if not stores:
        raise ValueError("name the stores whose tasks keep their images")
    rows = task_images(stores, repo)
    client = docker_client()
    removed = []
    # Instances first: an environment image cannot go while an instance is built on it.
    for row in sorted(rows, key=lambda r: r.kind != "instance"):
        if row.tasks == 0 and remove_quietly(client, row.tag):
            removed.append(row.tag)
    return removed


def _images(repo: str | None) -> Iterable[tuple[str, Image]]:
    client = docker_client()
    for kind in KINDS:
        labels = [f"{IMAGE_LABEL}={kind}"] + ([f"{REPO_LABEL}={repo}"] if repo else [])
        for image in client.images.list(filters={"label": labels}):
            yield kind, image
