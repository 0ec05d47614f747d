"""`envsynth generate code` and `envsynth export --format swebench`, run as a user runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from code_repos import python_pair

from envsynth.store import Store
from sandbox.docker_sandbox import unavailable_reason


def envsynth(*args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "envsynth", *args], capture_output=True, text=True, timeout=600
    )
    if ok:
        assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.fixture(autouse=True)
def _docker() -> None:
    why = unavailable_reason()
    if why:
        if os.environ.get("CI"):
            pytest.fail(f"CI=true but Docker cannot run: {why}")
        pytest.skip(why)


def test_instances_file_to_swebench_export(tmp_path: Path) -> None:
    repos = tmp_path / "repos"
    pair = python_pair(repos, "cli/calc")
    good = {
        "instance_id": "cli__calc-7",
        "repo": pair.name,
        "base_commit": pair.base,
        "patch": pair.patch,
        "test_patch": pair.test_patch,
        "problem_statement": "add() subtracts: add(2, 3) returns -1 where 5 is expected. "
        "Please make add return the sum of its arguments.",
        "created_at": "2024-01-02T03:04:05Z",
        "version": "0.1",
        "FAIL_TO_PASS": '["claimed upstream"]',
    }
    # The same fix with its test changes folded into the gold patch: refused by the filter.
    touching = {**good, "instance_id": "cli__calc-8", "patch": pair.patch + pair.test_patch}
    file = tmp_path / "instances.jsonl"
    file.write_text("\n".join(json.dumps(x) for x in (good, touching)) + "\n")
    db = str(tmp_path / "code.db")
    gen = envsynth(
        "generate",
        "code",
        "--instances",
        str(file),
        "--repos-dir",
        str(repos),
        "--db",
        db,
        "--runs",
        "2",
    )
    assert "1 accepted of 2 candidates" in gen.stdout, gen.stdout
    assert "patch:touches_tests: 1" in gen.stdout

    out = tmp_path / "swe.jsonl"
    envsynth("export", "--db", db, "--format", "swebench", "--out", str(out))
    [row] = [json.loads(line) for line in out.read_text().splitlines()]
    assert row["instance_id"] == "cli__calc-7" and row["repo"] == "cli/calc"
    assert row["base_commit"] == pair.base and row["patch"] == pair.patch
    assert json.loads(row["FAIL_TO_PASS"]) == ["tests/test_add.py::test_add"]
    assert "tests/test_sub.py::test_sub" in json.loads(row["PASS_TO_PASS"])
    assert row["environment_setup_commit"] == pair.base and row["version"] == "0.1"
    assert row["created_at"] == "2024-01-02T03:04:05Z"
    recipe = json.loads(row["recipe"])
    assert recipe["repo"] == "cli/calc" and recipe["test_framework"] == "pytest"
    assert row["image"].startswith("envsynth/inst-") and row["env_image"].startswith(
        "envsynth/env-"
    )
    # Our own verdict, not the upstream claim, is what is exported.
    store = Store(db)
    assert store.rejections("code") == {"patch:touches_tests": 1}

    card = tmp_path / "card.md"
    envsynth("card", "--db", db, "--dataset", "code", "--out", str(card))
    text = card.read_text()
    assert "patch:touches_tests" in text and "validate" in text


def test_bad_sources_are_clear_errors(tmp_path: Path) -> None:
    r = envsynth("generate", "code", "--db", str(tmp_path / "x.db"), ok=False)
    assert r.returncode != 0 and "give a source" in r.stderr
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"instance_id": "a__b-1"}\nnot json\n')
    r = envsynth(
        "generate",
        "code",
        "--instances",
        str(bad),
        "--repos-dir",
        str(tmp_path),
        "--db",
        str(tmp_path / "x.db"),
        ok=False,
    )
    assert r.returncode != 0 and "line 2" in r.stderr
    assert Store(str(tmp_path / "x.db")).count_tasks() == 0
