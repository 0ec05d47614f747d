"""SWE-bench-style instance files (JSONL, JSON, Parquet) against mirrors the tests build."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pr_history import GitRepo, build_history

from pipelines.code_agent.candidate import CodeAgentError
from pipelines.code_agent.sources.instances import InstanceFileError, read_instances


@dataclass
class Mirrors:
    root: Path
    calc: Path  # non-bare, as DIR/owner__calc
    lib: Path  # bare, as DIR/other/lib.git
    instances: list[dict[str, Any]]


@pytest.fixture()
def mirrors(tmp_path: Path) -> Mirrors:
    root = tmp_path / "repos"
    history = build_history(root / "owner__calc")
    calc = history.repo
    fix = history.pull(7)
    source = GitRepo(tmp_path / "lib-src")
    lib_base = source.commit("lib", {"lib.go": "package lib\n", "lib_test.go": "package lib\n"})
    (root / "other").mkdir()
    subprocess.run(
        ["git", "clone", "-q", "--bare", str(source.path), str(root / "other" / "lib.git")],
        check=True,
    )
    instances: list[dict[str, Any]] = [
        {
            "instance_id": "owner__calc-7",
            "repo": "owner/calc",
            "base_commit": fix.base,
            "patch": calc.diff(fix.base, fix.head).split("diff --git a/tests")[0],
            "test_patch": "diff --git a/tests" + calc.diff(fix.base, fix.head).split("a/tests")[1],
            "problem_statement": "add subtracts\n",
            "created_at": "2024-02-01T00:00:00Z",
            "version": "0.1",
            "environment_setup_commit": fix.base,
            "hints_text": "",
            "FAIL_TO_PASS": '["tests/test_calc.py::test_add"]',
            "PASS_TO_PASS": ["tests/test_calc.py::test_mul"],
            "difficulty": "<15 min fix",  # a field of some releases, ignored
        },
        {
            "instance_id": "other__lib-1",
            "repo": "other/lib",
            "base_commit": lib_base,
            "patch": "",
            "test_patch": "",
            "problem_statement": "lib is empty",
            "version": 3.0,
            "hints_text": None,
            "FAIL_TO_PASS": ["TestLib"],
        },
    ]
    return Mirrors(root, calc.path, root / "other" / "lib.git", instances)


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_jsonl_instances_pair_with_their_mirrors(mirrors: Mirrors, tmp_path: Path) -> None:
    found = read_instances(write_jsonl(tmp_path / "i.jsonl", mirrors.instances), mirrors.root)
    calc, lib = found
    assert calc.instance_id == "owner__calc-7" and calc.source == "swebench"
    assert calc.repo_path == str(mirrors.calc.resolve())
    assert lib.repo_path == str(mirrors.lib.resolve())
    assert calc.upstream_fail_to_pass == ["tests/test_calc.py::test_add"]
    assert calc.upstream_pass_to_pass == ["tests/test_calc.py::test_mul"]
    assert lib.upstream_fail_to_pass == ["TestLib"] and lib.upstream_pass_to_pass == []
    assert (calc.version, lib.version, lib.hints_text) == ("0.1", "3.0", "")
    assert calc.patch == mirrors.instances[0]["patch"]
    assert calc.test_patch.startswith("diff --git a/tests/test_calc.py")
    assert calc.environment_setup_commit == calc.base_commit


def test_parquet_and_json_array_read_the_same(mirrors: Mirrors, tmp_path: Path) -> None:
    rows = [dict(r) for r in mirrors.instances]
    for row in rows:  # Parquet columns need one type: JSON-encoded lists, as on the Hub
        for key in ("FAIL_TO_PASS", "PASS_TO_PASS"):
            value = row.get(key, [])
            row[key] = value if isinstance(value, str) else json.dumps(value)
        row["version"] = str(row["version"])
        row.pop("difficulty", None)
    expected = read_instances(write_jsonl(tmp_path / "i.jsonl", mirrors.instances), mirrors.root)
    parquet = tmp_path / "i.parquet"
    pq.write_table(pa.Table.from_pylist(rows), parquet)
    assert read_instances(parquet, mirrors.root) == expected
    array = tmp_path / "i.json"
    array.write_text(json.dumps(mirrors.instances, indent=2))
    assert read_instances(array, mirrors.root) == expected


def test_parquet_timestamps_become_iso_text(mirrors: Mirrors, tmp_path: Path) -> None:
    row = {k: v for k, v in mirrors.instances[1].items() if k not in ("version", "hints_text")}
    row["created_at"] = datetime(2024, 3, 4, 5, 6, 7, tzinfo=UTC)
    parquet = tmp_path / "t.parquet"
    pq.write_table(pa.Table.from_pylist([row]), parquet)
    [found] = read_instances(parquet, mirrors.root)
    assert found.created_at == "2024-03-04T05:06:07+00:00"


def bad_file(mirrors: Mirrors, tmp_path: Path, edit: Any) -> list[tuple[str, str]]:
    """Problems reported for the instance file after `edit(rows)`; asserts nothing was read."""
    rows: list[Any] = [dict(r) for r in mirrors.instances]
    edit(rows)
    path = tmp_path / "bad.jsonl"
    lines = [r if isinstance(r, str) else json.dumps(r) for r in rows]
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(InstanceFileError) as caught:
        read_instances(path, mirrors.root)
    assert "no instance was read" in str(caught.value)
    return caught.value.problems


def test_a_garbage_line_is_named(mirrors: Mirrors, tmp_path: Path) -> None:
    problems = bad_file(mirrors, tmp_path, lambda rows: rows.insert(1, '{"instance_id": "x", '))
    assert len(problems) == 1
    where, message = problems[0]
    assert where == "line 2" and "not JSON" in message


def test_a_missing_field_is_named_with_the_instance(mirrors: Mirrors, tmp_path: Path) -> None:
    problems = bad_file(mirrors, tmp_path, lambda rows: rows[1].pop("test_patch"))
    assert problems == [("line 2 (other__lib-1)", "missing field 'test_patch'")]


def test_an_unknown_mirror_says_where_it_looked(mirrors: Mirrors, tmp_path: Path) -> None:
    (mirrors.root / "ghost__repo").mkdir()  # a folder, but not a git repository

    def edit(rows: list[Any]) -> None:
        rows[1]["repo"] = "ghost/repo"

    [(where, message)] = bad_file(mirrors, tmp_path, edit)
    assert where == "line 2 (other__lib-1)"
    assert f"no git mirror of ghost/repo in {mirrors.root}" in message
    assert str(mirrors.root / "ghost__repo") in message and "clone" in message


def test_a_missing_base_commit_says_to_fetch(mirrors: Mirrors, tmp_path: Path) -> None:
    blob = subprocess.run(
        ["git", "-C", str(mirrors.calc), "rev-parse", "HEAD:README.md"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()

    def edit(rows: list[Any]) -> None:
        rows[0]["base_commit"] = "feedface" * 5
        rows[1]["repo"], rows[1]["base_commit"] = "owner/calc", blob  # an object, not a commit

    problems = bad_file(mirrors, tmp_path, edit)
    assert [where for where, _ in problems] == ["line 1 (owner__calc-7)", "line 2 (other__lib-1)"]
    assert all("is not in" in m and "fetch" in m for _, m in problems)


def test_every_problem_is_listed_at_once(mirrors: Mirrors, tmp_path: Path) -> None:
    def edit(rows: list[Any]) -> None:
        rows.append(dict(rows[0]))  # a repeated id
        rows.append([1, 2])
        rows.append({**rows[1], "instance_id": "z", "FAIL_TO_PASS": "test_a, test_b"})
        rows.append({**rows[1], "instance_id": "y", "base_commit": "not-a-sha"})

    problems = dict(bad_file(mirrors, tmp_path, edit))
    assert set(problems) == {"line 3 (owner__calc-7)", "line 4", "line 5 (z)", "line 6 (y)"}
    assert "repeats line 1" in problems["line 3 (owner__calc-7)"]
    assert "not an instance object" in problems["line 4"]
    assert "FAIL_TO_PASS" in problems["line 5 (z)"] and "JSON" in problems["line 5 (z)"]
    assert "base_commit" in problems["line 6 (y)"]


def test_unreadable_files_and_folders(mirrors: Mirrors, tmp_path: Path) -> None:
    with pytest.raises(CodeAgentError, match="no such instance file"):
        read_instances(tmp_path / "none.jsonl", mirrors.root)
    good = write_jsonl(tmp_path / "i.jsonl", mirrors.instances)
    with pytest.raises(CodeAgentError, match="no such folder"):
        read_instances(good, tmp_path / "nowhere")
    fake = tmp_path / "fake.parquet"
    fake.write_text("not parquet")
    with pytest.raises(InstanceFileError, match="not a readable Parquet file"):
        read_instances(fake, mirrors.root)
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    assert read_instances(empty, mirrors.root) == []
