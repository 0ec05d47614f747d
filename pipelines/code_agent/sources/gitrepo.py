"""The few git questions the sources ask of a local repository, over `git` in a subprocess.

Sources need to know whether commits exist, where two histories meet, and what changed
between two commits. The `git` binary answers all three exactly as a user's checkout would,
bare or not, so nothing here reimplements git.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path

from pipelines.code_agent.candidate import CodeAgentError


class GitError(CodeAgentError):
    """A git command failed; the message carries git's own words."""


def git(
    repo: Path | str, *args: str, stdin: str | None = None, env: Mapping[str, str] | None = None
) -> str:
    """Run `git -C repo ARGS` and return its stdout.

    Args:
        env: variables set on top of this process's environment (an identity, a date).

    Raises:
        GitError: git is missing or exited non-zero.
    """
    cmd = ["git", "-C", str(repo), "-c", "core.quotePath=false", *args]
    full_env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", **(env or {})}
    try:
        done = subprocess.run(
            cmd, input=stdin, capture_output=True, text=True, check=False, env=full_env
        )
    except FileNotFoundError as e:
        raise GitError("git is not installed or not on PATH; install git and retry.") from e
    if done.returncode != 0:
        raise GitError(f"`git {' '.join(args)}` in {repo} failed: {done.stderr.strip()}")
    return done.stdout


def is_repository(path: Path) -> bool:
    """Whether `path` is the top of a git repository, bare or with a work tree."""
    if not path.is_dir():
        return False
    try:
        bare = git(path, "rev-parse", "--is-bare-repository").strip() == "true"
        # A subdirectory of some other repository must not count as a mirror.
        top = git(path, "rev-parse", "--absolute-git-dir" if bare else "--show-toplevel")
    except GitError as e:
        if "dubious ownership" in str(e):
            raise  # a repository after all; git's message says how to trust it
        return False
    return Path(top.strip()).resolve() == path.resolve()


def missing_commits(repo: Path, shas: Iterable[str]) -> set[str]:
    """The revisions among `shas` that do not name a commit in `repo`.

    One `git cat-file --batch-check` answers for all of them, so checking thousands of
    instances of one repository costs one process.
    """
    wanted = sorted(set(shas))
    if not wanted:
        return set()
    out = git(repo, "cat-file", "--batch-check", stdin="".join(f"{s}^{{commit}}\n" for s in wanted))
    lines = out.splitlines()
    if len(lines) != len(wanted):
        raise GitError(f"git cat-file in {repo} answered {len(lines)} lines for {len(wanted)}")
    # A found object answers "<sha> commit <size>"; anything else ends in "missing" or
    # "ambiguous".
    found = [line.split()[1:2] == ["commit"] for line in lines]
    return {sha for sha, ok in zip(wanted, found, strict=True) if not ok}


def has_commit(repo: Path, sha: str) -> bool:
    """Whether `sha` names a commit in `repo`."""
    return not missing_commits(repo, [sha])


def merge_base(repo: Path, a: str, b: str) -> str | None:
    """The best common ancestor of two commits, or None when their histories never meet."""
    try:
        return git(repo, "merge-base", a, b).strip() or None
    except GitError:
        return None


def first_parent(repo: Path, sha: str) -> str | None:
    """The first parent of `sha`, or None for a root commit."""
    try:
        return git(repo, "rev-parse", "--verify", "--quiet", f"{sha}^1^{{commit}}").strip()
    except GitError:
        return None


def diff(repo: Path, base: str, head: str) -> str:
    """The unified diff from `base` to `head`, as `git apply` takes it on `base`.

    Binary changes come as git binary patches so that the diff applies completely; colour,
    external diff drivers and the user's diff settings are switched off.
    """
    return git(
        repo,
        "diff",
        "--no-color",
        "--no-ext-diff",
        "--binary",
        "--find-renames",
        "--src-prefix=a/",
        "--dst-prefix=b/",
        base,
        head,
        "--",
    )


def remote_repo_name(repo: Path) -> str | None:
    """`owner/name` read from the `origin` remote's URL, or None where there is none."""
    try:
        url = git(repo, "remote", "get-url", "origin").strip()
    except GitError:
        return None
    tail = url.rstrip("/").removesuffix(".git").replace(":", "/").split("/")
    if len(tail) < 2 or not tail[-1] or not tail[-2]:
        return None
    return f"{tail[-2]}/{tail[-1]}"
