"""Code tasks' environment and instance images on a real docker daemon: listed with the
stored tasks that use them, pruned only where a named store's tasks use none of them."""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from docker.errors import APIError
from needs import require
from typer.testing import CliRunner

from envsynth.cli import app
from envsynth.errors import ConfigError
from envsynth.schema import CodeInstance, Provenance, Task
from envsynth.store import Store
from pipelines.code_agent.environment import ENV_LABEL, REPO_LABEL
from pipelines.code_agent.task_images import existing_stores, prune_task_images, task_images
from sandbox.images import BASE_TAG, IMAGE_LABEL


@pytest.fixture()
def client():  # type: ignore[no-untyped-def]
    from sandbox.docker_sandbox import docker_client, unavailable_reason

    require("the docker daemon", unavailable_reason())
    client = docker_client()
    require("the base image", None if client.images.list(BASE_TAG) else f"no {BASE_TAG}")
    return client


def _build(client, parent: str, tag: str, labels: dict[str, str], marker: str) -> str:  # type: ignore[no-untyped-def]
    label_line = " ".join(f'{k}="{v}"' for k, v in labels.items())
    dockerfile = f"FROM {parent}\nLABEL {label_line}\nRUN echo {marker} > /marker\n"
    image, _ = client.images.build(fileobj=io.BytesIO(dockerfile.encode()), tag=tag, rm=True)
    return str(image.id)


@pytest.fixture()
def images(client) -> Iterator[dict[str, str]]:  # type: ignore[no-untyped-def]
    """Two repositories' images, unique to this test: tag names by role."""
    run = uuid.uuid4().hex[:8]
    repos = {"one": f"prunetest/one-{run}", "two": f"prunetest/two-{run}"}
    tags = {
        "env1": f"envsynth/env-prunetest__one-{run}:e1",
        "kept": f"envsynth/inst-prunetest-kept-{run}:1",
        "alias": f"envsynth/inst-prunetest-alias-{run}:1",  # the kept image, under a 2nd name
        "unused": f"envsynth/inst-prunetest-unused-{run}:1",
        "env2": f"envsynth/env-prunetest__two-{run}:e2",
        "other": f"envsynth/inst-prunetest-other-{run}:1",
    }
    env1 = {IMAGE_LABEL: "env", ENV_LABEL: f"d1-{run}", REPO_LABEL: repos["one"]}
    env2 = {IMAGE_LABEL: "env", ENV_LABEL: f"d2-{run}", REPO_LABEL: repos["two"]}
    instance = {IMAGE_LABEL: "instance"}
    _build(client, BASE_TAG, tags["env1"], env1, f"env1-{run}")
    _build(client, tags["env1"], tags["kept"], instance, f"kept-{run}")
    client.images.get(tags["kept"]).tag(tags["alias"])
    _build(client, tags["env1"], tags["unused"], instance, f"unused-{run}")
    _build(client, BASE_TAG, tags["env2"], env2, f"env2-{run}")
    _build(client, tags["env2"], tags["other"], instance, f"other-{run}")
    yield {**tags, **{f"repo_{k}": v for k, v in repos.items()}}
    for role in ("kept", "alias", "unused", "other", "env1", "env2"):
        try:
            client.images.remove(tags[role], force=True)
        except APIError:  # pruned by the test
            pass


def _store_using(path: Path, image: str) -> Store:
    store = Store(path)
    payload = CodeInstance(
        repo="prunetest/one",
        base_commit="0" * 40,
        patch="",
        test_patch="",
        problem_statement="p",
        extra={"image": image},
    )
    task = Task.build(
        kind="code",
        family="prunetest/one",
        env_id="e",
        dataset="d",
        instruction="i",
        system_prompt="s",
        tools=[],
        payload=payload,
        provenance=Provenance(pipeline="code", version="1"),
    )
    store.put_tasks([task], rejection="p2f")  # a refused task still names its image
    return store


def _present(client, tag: str) -> bool:  # type: ignore[no-untyped-def]
    return bool(client.images.list(tag))


def test_listing_counts_the_tasks_that_use_each_image(client, images, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    store = _store_using(tmp_path / "tasks.db", images["kept"])
    rows = {r.tag: r for r in task_images([store], images["repo_one"])}
    assert set(rows) == {images[k] for k in ("env1", "kept", "alias", "unused")}
    assert {r.repo for r in rows.values()} == {images["repo_one"]}
    assert (rows[images["kept"]].kind, rows[images["kept"]].tasks) == ("instance", 1)
    assert rows[images["alias"]].tasks == rows[images["unused"]].tasks == 0
    # The environment's use is the use of the instances built on it.
    assert (rows[images["env1"]].kind, rows[images["env1"]].tasks) == ("env", 1)
    assert all(r.size_mb > 0 for r in rows.values())
    # Without a store nothing is known to use them.
    assert all(r.tasks == 0 for r in task_images(repo=images["repo_one"]))


def test_prune_removes_only_what_no_named_task_uses(client, images, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    store = _store_using(tmp_path / "tasks.db", images["kept"])
    kept_id = client.images.get(images["kept"]).id

    removed = prune_task_images([store], images["repo_one"])

    assert sorted(removed) == sorted([images["unused"], images["alias"]])
    assert not _present(client, images["unused"]) and not _present(client, images["alias"])
    # The alias was only a name: the image it named is the kept one, still there.
    assert client.images.get(images["kept"]).id == kept_id
    assert _present(client, images["env1"]), "its instance is in use, so it stays"
    # The other repository was not asked about.
    assert _present(client, images["env2"]) and _present(client, images["other"])

    removed = prune_task_images([store], images["repo_two"])
    assert removed == [images["other"], images["env2"]]
    assert not _present(client, images["other"]) and not _present(client, images["env2"])


def test_prune_needs_a_store_and_a_missing_store_is_not_an_empty_one(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="name the stores"):
        prune_task_images([])
    missing = tmp_path / "typo.db"
    with pytest.raises(ConfigError, match="no store at"):
        existing_stores([missing])
    assert not missing.exists(), "opening it would have created an empty store"


def test_cli_lists_and_prunes_with_task_db(client, images, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    db = tmp_path / "tasks.db"
    _store_using(db, images["kept"])
    runner = CliRunner(env={"COLUMNS": "250"})  # whole tags, as a wide terminal shows them
    repo = ["--repo", images["repo_one"]]

    listed = runner.invoke(app, ["images", "list", "--task-db", str(db), *repo])
    assert listed.exit_code == 0, listed.output
    assert images["kept"] in listed.output and "instance" in listed.output

    blind = runner.invoke(app, ["images", "prune", *repo])
    assert blind.exit_code == 0, blind.output
    assert "--task-db" in blind.output and _present(client, images["unused"])

    typo = runner.invoke(app, ["images", "prune", "--task-db", str(tmp_path / "nope.db"), *repo])
    assert typo.exit_code != 0 and _present(client, images["unused"])

    pruned = runner.invoke(app, ["images", "prune", "--task-db", str(db), *repo])
    assert pruned.exit_code == 0, pruned.output
    assert f"removed {images['unused']}" in pruned.output
    assert not _present(client, images["unused"]) and _present(client, images["kept"])
