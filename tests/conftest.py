"""Shared fixtures: small generated datasets in real SQLite files."""

from __future__ import annotations

from pathlib import Path

import pytest

from envsynth.store import Store
from pipelines.general.pipeline import GeneralConfig, run_general


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect `gpu` tests on a machine without CUDA; they run wherever a GPU is present."""
    import torch

    if torch.cuda.is_available():
        return
    gpu = [item for item in items if item.get_closest_marker("gpu")]
    if gpu:
        config.hook.pytest_deselected(items=gpu)
        items[:] = [item for item in items if not item.get_closest_marker("gpu")]


@pytest.fixture(scope="session")
def small_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A general dataset of 2 environments per family variant pair round, in a SQLite file."""
    path = tmp_path_factory.mktemp("store") / "small.db"
    store = Store(path)
    run_general(GeneralConfig(envs=120, workers=1), store)
    return path


@pytest.fixture()
def store(small_db: Path) -> Store:
    return Store(small_db)
