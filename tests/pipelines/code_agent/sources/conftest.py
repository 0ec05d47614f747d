"""Fixtures of the source tests: a repository with a pull-request history (pr_history.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pr_history import History, build_history


@pytest.fixture()
def history(tmp_path: Path) -> History:
    return build_history(tmp_path / "calc")
