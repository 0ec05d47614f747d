"""The local source: a repository the test builds plus a JSON / JSONL dump of its PRs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pr_history import REJECTIONS, GitRepo, History, apply_in_worktree

from envsynth.schema import StageReport
from pipelines.code_agent.candidate import CodeAgentError
from pipelines.code_agent.sources.local_dump import DumpFormatError, read_local


def pull_objects(history: History) -> list[dict[str, Any]]:
    """The dump's pull requests, with a few of the many fields a real dump would carry."""
    return [
        {
            "number": p.number,
            "title": p.title,
            "body": p.body,
            "state": "closed",
            "created_at": p.created_at,
            "merged_at": None if p.merge is None else p.created_at,
            "base": {"ref": "main", "sha": p.base},
            "head": {"ref": f"pr-{p.number}", "sha": p.head},
            "merge_commit_sha": p.merge,
            "labels": [],
        }
        for p in history.pulls
    ]


def write_json(path: Path, issues: list[Any], pulls: list[Any]) -> Path:
    path.write_text(json.dumps({"issues": issues, "pulls": pulls}, indent=1))
    return path


def write_jsonl(path: Path, issues: list[Any], pulls: list[Any]) -> Path:
    lines = [json.dumps({"kind": "issue", **i}) for i in issues]
    lines += [json.dumps({"kind": "pull", **p}) for p in pulls]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture()
def named(history: History) -> History:
    history.repo.git("remote", "add", "origin", "https://example.invalid/owner/calc.git")
    return history


def test_json_dump_gives_candidates_whose_patches_apply(named: History, tmp_path: Path) -> None:
    repo = named.repo
    dump = write_json(tmp_path / "dump.json", named.issues, pull_objects(named))
    report = StageReport(stage="source")
    found = list(read_local(repo.path, dump, report=report))
    assert [c.instance_id for c in found] == ["owner__calc-8", "owner__calc-7"]
    assert report.items_in == 5 and report.items_out == 2
    assert report.rejections == REJECTIONS
    by_number = {c.pull_number: c for c in found}
    # PR 7's head is in the repository: its base is where the branch left main.
    assert by_number[7].base_commit == named.pull(7).base
    # PR 8's head is gone: the squash commit's parent is the base it landed on.
    assert by_number[8].base_commit == repo.git("rev-parse", f"{named.pull(8).merge}^")
    assert by_number[8].issue_numbers == [5, 6]
    assert by_number[7].problem_statement == "add subtracts\nadd(2, 3) gives -1"
    for number, head in ((7, named.pull(7).head), (8, named.pull(8).merge)):
        cand = by_number[number]
        assert head is not None
        assert cand.source == "local" and cand.repo_path == str(repo.path.resolve())
        assert "tests/" not in cand.patch and cand.test_patch.startswith("diff --git a/tests/")
        tree = apply_in_worktree(
            repo, cand.base_commit, [cand.patch, cand.test_patch], tmp_path / f"wt{number}"
        )
        for path in repo.git("diff", "--name-only", cand.base_commit, head).splitlines():
            assert (tree / path).read_text() == repo.show(head, path), path


def test_jsonl_dump_gives_the_same_candidates(named: History, tmp_path: Path) -> None:
    pulls = pull_objects(named)
    from_json = list(
        read_local(named.repo.path, write_json(tmp_path / "d.json", named.issues, pulls))
    )
    jsonl = write_jsonl(tmp_path / "d.jsonl", named.issues, pulls)
    assert list(read_local(named.repo.path, jsonl)) == from_json


def test_merge_commit_alone_diffs_against_its_first_parent(named: History, tmp_path: Path) -> None:
    pulls = [p for p in pull_objects(named) if p["number"] == 7]
    del pulls[0]["head"]
    [cand] = read_local(named.repo.path, write_json(tmp_path / "d.json", named.issues, pulls))
    # The merge's first parent already has main's README commit, so the diff leaves it out.
    assert cand.base_commit == named.unrelated_main_commit
    assert "README.md" not in cand.patch and "src/calc.py" in cand.patch


def test_bad_jsonl_lines_are_all_named_before_anything_is_read(
    named: History, tmp_path: Path
) -> None:
    good = write_jsonl(tmp_path / "good.jsonl", named.issues, pull_objects(named))
    lines = good.read_text().splitlines()
    lines[2] = '{"kind": "issue", "number": 4, "title": "tru'  # cut short
    lines[4] = json.dumps({"kind": "comment", "number": 99})
    broken = json.loads(lines[6])
    del broken["base"]
    lines[6] = json.dumps(broken)
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join(lines) + "\n")
    with pytest.raises(DumpFormatError) as caught:
        read_local(named.repo.path, bad)  # raises on the call, before any iteration
    assert [where for where, _ in caught.value.problems] == ["line 3", "line 5", "line 7"]
    message = str(caught.value)
    assert "not JSON" in message and '"kind"' in message and "base: Field required" in message


def test_json_dump_names_the_bad_record(named: History, tmp_path: Path) -> None:
    pulls = pull_objects(named)
    pulls[1]["number"] = "seven"
    issues = [*named.issues, named.issues[0]]
    dump = write_json(tmp_path / "d.json", issues, pulls)
    with pytest.raises(DumpFormatError) as caught:
        read_local(named.repo.path, dump)
    problems = dict(caught.value.problems)
    assert set(problems) == {"pulls[1]", "issues[5]"}
    assert problems["pulls[1]"].startswith("invalid pull: number")
    assert problems["issues[5]"] == "issue #3 appears twice"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[1, 2]", "expected an object"),
        ('{"issues": {}, "pulls": []}', "expected a list"),
        ('{"issues": [], "pulls": [', "not JSON"),
    ],
)
def test_json_dump_of_the_wrong_shape(
    named: History, tmp_path: Path, text: str, expected: str
) -> None:
    dump = tmp_path / "d.json"
    dump.write_text(text)
    with pytest.raises(DumpFormatError, match=expected):
        read_local(named.repo.path, dump)


def test_repository_name_comes_from_origin_or_the_caller(history: History, tmp_path: Path) -> None:
    dump = write_json(tmp_path / "d.json", history.issues, pull_objects(history))
    with pytest.raises(CodeAgentError, match="repo_name"):
        read_local(history.repo.path, dump)
    found = list(read_local(history.repo.path, dump, repo_name="owner/calc"))
    assert [c.instance_id for c in found] == ["owner__calc-8", "owner__calc-7"]
    with pytest.raises(CodeAgentError, match="owner/name"):
        read_local(history.repo.path, dump, repo_name="not a name")


def test_prs_whose_commits_are_missing_are_counted(named: History, tmp_path: Path) -> None:
    pulls = pull_objects(named)
    for p in pulls:
        if p["number"] == 8:
            p["merge_commit_sha"] = "fedcba9876543210fedcba9876543210fedcba98"
    report = StageReport(stage="source")
    found = list(
        read_local(
            named.repo.path, write_json(tmp_path / "d.json", named.issues, pulls), report=report
        )
    )
    assert [c.pull_number for c in found] == [7]
    assert report.rejections["commits missing from the repository"] == 1


def test_limit_stops_after_that_many_candidates(named: History, tmp_path: Path) -> None:
    dump = write_json(tmp_path / "d.json", named.issues, pull_objects(named))
    assert [c.pull_number for c in read_local(named.repo.path, dump, limit=1)] == [8]


def test_a_folder_that_is_not_a_repository_is_refused(tmp_path: Path, named: History) -> None:
    dump = write_json(tmp_path / "d.json", [], [])
    inside = named.repo.path / "src"  # inside a repository, but not its top
    for where in (tmp_path / "empty", inside):
        where.mkdir(exist_ok=True)
        with pytest.raises(CodeAgentError, match="not a git repository"):
            read_local(where, dump)


def test_a_bare_clone_works_as_well(named: History, tmp_path: Path) -> None:
    bare = tmp_path / "calc.git"
    GitRepo(bare, bare=True)
    named.repo.git("push", "-q", str(bare), "main", "fix-add")
    dump = write_json(tmp_path / "d.json", named.issues, pull_objects(named))
    found = list(read_local(bare, dump, repo_name="owner/calc"))
    assert [c.pull_number for c in found] == [8, 7]
    assert found[1].patch == list(read_local(named.repo.path, dump))[1].patch


@pytest.mark.parametrize(
    "url",
    [
        "https://example.invalid/owner/calc.git",
        "https://example.invalid/owner/calc/",
        "git@example.invalid:owner/calc.git",
        "ssh://git@example.invalid:2222/owner/calc",
    ],
)
def test_repository_name_from_each_remote_url_form(
    history: History, tmp_path: Path, url: str
) -> None:
    history.repo.git("remote", "add", "origin", url)
    dump = write_json(tmp_path / "d.json", history.issues, pull_objects(history))
    assert {c.repo for c in read_local(history.repo.path, dump)} == {"owner/calc"}
