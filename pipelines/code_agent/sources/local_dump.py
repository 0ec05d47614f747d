"""A local git repository plus a dump of its issues and pull requests, as a source.

For repositories mined once and kept offline (or hosted where no API is reachable), the
issue and PR metadata come from a dump and the diffs from the repository itself.

Accepted dump shapes. The objects are a subset of GitHub's REST objects; any other field
(a real API dump carries dozens) is ignored:

- issue: `{"number": int, "title": str, "body": str | null, "created_at": str,
  "pull_request": {...}?}`. An issue with `pull_request` is GitHub's view of a PR as an
  issue and is never taken for the closed issue.
- pull: `{"number": int, "title": str, "body": str | null, "created_at": str,
  "merged_at": str | null, "base": {"sha": str}, "head": {"sha": str}?,
  "merge_commit_sha": str | null}`.

A `.json` file holds `{"issues": [...], "pulls": [...]}`; a `.jsonl` file holds one object
per line, each with `"kind": "issue"` or `"kind": "pull"` (blank lines are skipped).

A merged PR closing at least one issue of the dump (GitHub's closing keywords in its title or
body) becomes a candidate. Its diff is `git diff merge-base(base, head) head` when the head
commit is in the repository; otherwise `git diff M^1 M` for the merge commit M, whose first
parent is the base branch as the PR landed on it (a diff from `base.sha` to M would also
carry whatever else reached the base branch in between). `base_commit` is the diff's first
commit, so the patch always applies on it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from envsynth.errors import list_problems
from envsynth.schema import StageReport
from pipelines.code_agent.candidate import CodeAgentError, CodeCandidate
from pipelines.code_agent.sources.github import (
    IssueRecord,
    PullRecord,
    check_repo_name,
    closed_issues,
    pr_candidate,
)
from pipelines.code_agent.sources.gitrepo import (
    diff,
    first_parent,
    is_repository,
    merge_base,
    missing_commits,
    remote_repo_name,
)


class DumpFormatError(CodeAgentError):
    """A dump has invalid records; nothing was read from it.

    Attributes:
        problems: (where, message) for each bad record; where is `line N` or `pulls[i]`.
    """

    def __init__(self, path: Path, problems: list[tuple[str, str]]):
        self.problems = problems
        super().__init__(
            f"{path}: {len(problems)} invalid record(s); nothing was read. Fix them (the "
            "accepted shape is in pipelines/code_agent/sources/local_dump.py) and retry.\n"
            + list_problems(problems)
        )


def read_local(
    repo_dir: Path | str,
    dump_path: Path | str,
    repo_name: str | None = None,
    *,
    report: StageReport | None = None,
    limit: int | None = None,
) -> Iterator[CodeCandidate]:
    """Candidates from a local repository and a dump of its issues and pull requests.

    The repository and the whole dump are checked when this is called, before any candidate
    is made; diffs are computed lazily, one PR at a time.

    Args:
        repo_dir: the repository (bare or not) holding the PRs' commits.
        dump_path: the dump (see the module docstring for its shape).
        repo_name: `owner/name`; None reads it from the `origin` remote's URL.
        report: filled as it goes (PRs read, candidates made, reasons for the rest).
        limit: stop after this many candidates.

    Raises:
        CodeAgentError: not a git repository, or no repository name to be had.
        DumpFormatError: the dump is unreadable or has invalid records.
    """
    repo = Path(repo_dir)
    if not is_repository(repo):
        raise CodeAgentError(f"{repo} is not a git repository; pass the repository's top folder")
    name = repo_name or remote_repo_name(repo)
    if name is None:
        raise CodeAgentError(f"{repo} has no `origin` remote to name it; pass repo_name=owner/name")
    check_repo_name(name)
    issues, pulls = load_dump(Path(dump_path))
    report = report if report is not None else StageReport(stage="source")
    return _candidates(repo.resolve(), name, issues, pulls, report, limit)


def load_dump(path: Path) -> tuple[dict[int, IssueRecord], list[PullRecord]]:
    """Every issue (by number) and pull request of a dump, all validated.

    Raises:
        DumpFormatError: the file is unreadable, or any record is invalid.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise DumpFormatError(path, [("file", f"cannot be read: {e}")]) from e
    records = _jsonl_records(text) if _is_jsonl(path, text) else _json_records(text)
    problems: list[tuple[str, str]] = []
    issues: dict[int, IssueRecord] = {}
    pulls: dict[int, PullRecord] = {}
    for where, kind, obj in records:
        if kind is None:
            problems.append((where, str(obj)))
            continue
        try:
            record = (IssueRecord if kind == "issue" else PullRecord).model_validate(obj)
        except ValidationError as e:
            problems.append((where, f"invalid {kind}: {_describe(e)}"))
            continue
        seen: dict[int, Any] = issues if kind == "issue" else pulls
        if record.number in seen:
            problems.append((where, f"{kind} #{record.number} appears twice"))
        seen[record.number] = record
    if problems:
        raise DumpFormatError(path, problems)
    return issues, list(pulls.values())


_Record = tuple[str, str | None, Any]  # where, kind (None: a problem message), object


def _is_jsonl(path: Path, text: str) -> bool:
    if path.suffix in (".jsonl", ".ndjson"):
        return True
    if path.suffix == ".json":
        return False
    try:
        whole = json.loads(text)
    except ValueError:
        return True
    return not (isinstance(whole, dict) and ("issues" in whole or "pulls" in whole))


def _jsonl_records(text: str) -> list[_Record]:
    records: list[_Record] = []
    for number, line in enumerate(text.split("\n"), start=1):
        where = f"line {number}"
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError as e:
            records.append((where, None, f"not JSON ({e})"))
            continue
        kind = obj.get("kind") if isinstance(obj, dict) else None
        if kind not in ("issue", "pull"):
            records.append((where, None, 'expected an object with "kind": "issue" or "pull"'))
            continue
        records.append((where, kind, obj))
    return records


def _json_records(text: str) -> list[_Record]:
    try:
        whole = json.loads(text)
    except ValueError as e:
        return [(f"line {getattr(e, 'lineno', '?')}", None, f"not JSON ({e})")]
    if not isinstance(whole, dict) or not ({"issues", "pulls"} & whole.keys()):
        return [("file", None, 'expected an object {"issues": [...], "pulls": [...]}')]
    records: list[_Record] = []
    for key, kind in (("issues", "issue"), ("pulls", "pull")):
        items = whole.get(key, [])
        if not isinstance(items, list):
            records.append((key, None, "expected a list"))
            continue
        records.extend((f"{key}[{i}]", kind, obj) for i, obj in enumerate(items))
    return records


def _describe(error: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'object'}: {e['msg']}" for e in error.errors()
    )


def _candidates(
    repo: Path,
    name: str,
    issues: dict[int, IssueRecord],
    pulls: list[PullRecord],
    report: StageReport,
    limit: int | None,
) -> Iterator[CodeCandidate]:
    merged = [p for p in pulls if p.merged_at]
    shas = {s for p in merged for s in (p.base.sha, p.head and p.head.sha, p.merge_commit_sha)}
    missing = missing_commits(repo, (s for s in shas if s))
    found = 0
    for pull in pulls:
        if limit is not None and found >= limit:
            return
        report.items_in += 1
        candidate, reason = _pair(repo, name, pull, issues, missing)
        if candidate is None:
            report.reject(reason)
            continue
        report.items_out += 1
        found += 1
        yield candidate


def _pair(
    repo: Path, name: str, pull: PullRecord, issues: dict[int, IssueRecord], missing: set[str]
) -> tuple[CodeCandidate | None, str]:
    """The candidate one pull request makes, or None and the reason it makes none."""
    closed, reason = closed_issues(name, pull, issues.get)
    if not closed:
        return None, reason
    span = _span(repo, pull, missing)
    if span is None:
        return None, "commits missing from the repository"
    base, head = span
    text = diff(repo, base, head)
    return pr_candidate(name, pull, closed, base, text, source="local", repo_path=str(repo))


def _span(repo: Path, pull: PullRecord, missing: set[str]) -> tuple[str, str] | None:
    """(base, head) commits whose diff is the PR's change (see the module docstring)."""
    head = pull.head.sha if pull.head else None
    if head and head not in missing and pull.base.sha not in missing:
        start = merge_base(repo, pull.base.sha, head)
        if start is not None:
            return start, head
    merge = pull.merge_commit_sha
    if merge and merge not in missing:
        parent = first_parent(repo, merge)
        if parent is not None:
            return parent, merge
    return None
