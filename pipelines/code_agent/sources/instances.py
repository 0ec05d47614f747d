"""SWE-bench-style instance files, paired with local mirrors of their repositories.

An instance file already names the base commit and splits the PR's diff into `patch` and
`test_patch`; what it lacks is the code. Each instance's repository is found under a
folder of mirrors, as `DIR/<owner>__<name>` or `DIR/<owner>/<name>` (either may end in
`.git`; bare or not), and its base commit must be in it.

Formats: JSONL (one instance per line), a JSON array of instances, or Parquet. Required
fields: instance_id, repo, base_commit, patch, test_patch, problem_statement. Optional:
created_at, version, environment_setup_commit, hints_text, FAIL_TO_PASS, PASS_TO_PASS (the
last two as lists or JSON-encoded lists, as SWE-bench's releases differ). Other fields are
ignored. The whole file is checked before anything is returned: one bad instance and none is.
"""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from envsynth.errors import list_problems
from pipelines.code_agent.candidate import CodeAgentError, CodeCandidate
from pipelines.code_agent.sources.gitrepo import is_repository, missing_commits


class InstanceFileError(CodeAgentError):
    """An instance file has invalid instances; none was read.

    Attributes:
        problems: (where, message) per problem; where is `line N` (`row N` in Parquet, `item
            N` in a JSON array), with the instance id once it is known.
    """

    def __init__(self, path: Path, problems: list[tuple[str, str]]):
        self.problems = problems
        super().__init__(
            f"{path}: {len(problems)} problem(s); no instance was read. Fix them and retry.\n"
            + list_problems(problems)
        )


class _Instance(BaseModel):
    """One instance as SWE-bench's files write it (unknown fields are ignored)."""

    model_config = ConfigDict(extra="ignore")

    instance_id: str = Field(min_length=1)
    repo: str = Field(pattern=r"^[\w.-]+/[\w.-]+$")
    base_commit: str = Field(pattern=r"^[0-9a-fA-F]{4,64}$")
    patch: str
    test_patch: str
    problem_statement: str
    created_at: str = ""
    version: str = ""
    environment_setup_commit: str = ""
    hints_text: str = ""
    FAIL_TO_PASS: list[str] = Field(default_factory=list)
    PASS_TO_PASS: list[str] = Field(default_factory=list)

    @field_validator(
        "created_at", "version", "environment_setup_commit", "hints_text", mode="before"
    )
    @classmethod
    def _text(cls, value: Any) -> Any:
        if value is None:
            return ""
        if isinstance(value, datetime):
            return value.isoformat()
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)  # some files write `version` as a number (e.g. 3.0)
        return value

    @field_validator("FAIL_TO_PASS", "PASS_TO_PASS", mode="before")
    @classmethod
    def _test_list(cls, value: Any) -> Any:
        if value is None or value == "":
            return []
        if isinstance(value, str):
            try:
                return json.loads(value)
            except ValueError as e:
                raise ValueError(f"not a JSON-encoded list of test names ({e})") from e
        return value


def read_instances(path: Path | str, repos_dir: Path | str) -> list[CodeCandidate]:
    """Every instance of a SWE-bench-style file, each with its local repository mirror.

    Args:
        path: a `.jsonl`, `.json` or `.parquet` instance file.
        repos_dir: the folder of mirrors (see the module docstring).

    Raises:
        InstanceFileError: any line is garbage or misses a field, an instance id repeats, a
            repository has no mirror, or a base commit is not in its mirror. Every problem
            of the file is listed, and nothing is returned.
    """
    path, repos_dir = Path(path), Path(repos_dir)
    if not path.is_file():
        raise CodeAgentError(f"{path}: no such instance file")
    if not repos_dir.is_dir():
        raise CodeAgentError(f"{repos_dir}: no such folder of repository mirrors")
    problems: list[tuple[str, str]] = []
    instances: list[tuple[str, _Instance]] = []
    first_seen: dict[str, str] = {}
    for where, obj, garbage in _rows(path):
        if garbage is not None:
            problems.append((where, garbage))
            continue
        if not isinstance(obj, dict):
            problems.append((where, f"not an instance object: {str(obj)[:80]}"))
            continue
        try:
            instance = _Instance.model_validate(obj)
        except ValidationError as e:
            label = f"{where} ({obj['instance_id']})" if "instance_id" in obj else where
            problems.append((label, _describe(e)))
            continue
        where = f"{where} ({instance.instance_id})"
        if instance.instance_id in first_seen:
            problems.append((where, f"instance id repeats {first_seen[instance.instance_id]}"))
            continue
        first_seen[instance.instance_id] = where
        instances.append((where, instance))
    mirrors = _check_mirrors(repos_dir, instances, problems)
    if problems:
        raise InstanceFileError(path, problems)
    return [_candidate(i, mirrors[i.repo]) for _, i in instances]


def find_mirror(repos_dir: Path, repo: str) -> Path | None:
    """The mirror of `owner/name` under `repos_dir`, or None where there is none."""
    owner, name = repo.split("/", 1)
    for candidate in (f"{owner}__{name}", f"{owner}/{name}"):
        for suffix in ("", ".git"):
            path = repos_dir / f"{candidate}{suffix}"
            if is_repository(path):
                return path.resolve()
    return None


def _check_mirrors(
    repos_dir: Path, instances: list[tuple[str, _Instance]], problems: list[tuple[str, str]]
) -> dict[str, Path]:
    """Each repository's mirror; a problem for each instance whose mirror or commit lacks."""
    by_repo: dict[str, list[tuple[str, _Instance]]] = defaultdict(list)
    for where, instance in instances:
        by_repo[instance.repo].append((where, instance))
    mirrors: dict[str, Path] = {}
    for repo, members in by_repo.items():
        mirror = find_mirror(repos_dir, repo)
        if mirror is None:
            flat = repos_dir / repo.replace("/", "__")
            problems.extend(
                (
                    where,
                    f"no git mirror of {repo} in {repos_dir} (looked for {flat} and "
                    f"{repos_dir / repo}); clone the repository there",
                )
                for where, _ in members
            )
            continue
        mirrors[repo] = mirror
        missing = missing_commits(mirror, (i.base_commit for _, i in members))
        problems.extend(
            (
                where,
                f"base commit {i.base_commit} is not in {mirror}; fetch it (`git -C {mirror} "
                "fetch origin`) or refresh the mirror",
            )
            for where, i in members
            if i.base_commit in missing
        )
    return mirrors


_Row = tuple[str, Any, str | None]  # where, object, why the line is garbage (None: it is not)


def _rows(path: Path) -> list[_Row]:
    """(where, object, error) for each instance of the file."""
    if path.suffix == ".parquet":
        return _parquet_rows(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise InstanceFileError(path, [("file", f"cannot be read as UTF-8 text: {e}")]) from e
    if text.lstrip().startswith("["):
        try:
            items = json.loads(text)
        except ValueError as e:
            raise InstanceFileError(path, [("file", f"not a JSON array ({e})")]) from e
        return [(f"item {i}", obj, None) for i, obj in enumerate(items)]
    rows: list[_Row] = []
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            rows.append((f"line {number}", json.loads(line), None))
        except ValueError as e:
            rows.append((f"line {number}", None, f"not JSON ({e}); fix or remove the line"))
    return rows


def _parquet_rows(path: Path) -> list[_Row]:
    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as e:
        raise InstanceFileError(path, [("file", f"not a readable Parquet file ({e})")]) from e
    return [(f"row {i}", obj, None) for i, obj in enumerate(table.to_pylist())]


def _describe(error: ValidationError) -> str:
    parts = []
    for e in error.errors():
        field = ".".join(str(p) for p in e["loc"]) or "instance"
        missing = e["type"] == "missing"
        parts.append(f"missing field {field!r}" if missing else f"{field}: {e['msg']}")
    return "; ".join(parts)


def _candidate(instance: _Instance, mirror: Path) -> CodeCandidate:
    return CodeCandidate(
        instance_id=instance.instance_id,
        repo=instance.repo,
        base_commit=instance.base_commit,
        patch=instance.patch,
        test_patch=instance.test_patch,
        problem_statement=instance.problem_statement,
        created_at=instance.created_at,
        version=instance.version,
        environment_setup_commit=instance.environment_setup_commit,
        hints_text=instance.hints_text,
        source="swebench",
        repo_path=str(mirror),
        upstream_fail_to_pass=instance.FAIL_TO_PASS,
        upstream_pass_to_pass=instance.PASS_TO_PASS,
    )
