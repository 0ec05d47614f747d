"""A missing part of the machine skips a test locally and fails it in CI."""

from __future__ import annotations

import pytest
from needs import require


def test_present_parts_neither_skip_nor_fail() -> None:
    require("docker", None)


def test_a_missing_part_skips_outside_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="docker unavailable: no daemon"):
        require("docker", "no daemon")


def test_a_missing_part_fails_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true but docker cannot run: no daemon"):
        require("docker", "no daemon")
