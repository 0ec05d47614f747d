"""Real git repositories with a small pull-request history, built by the tests themselves.

A plain module rather than conftest.py: test modules import its classes by name, and a
`from conftest import …` would find whichever conftest pytest loaded last.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path


class GitRepo:
    """A throwaway repository; commits get increasing, fixed dates so tests can compare them."""

    def __init__(self, path: Path, *, bare: bool = False):
        self.path = path
        self._tick = 0
        path.mkdir(parents=True, exist_ok=True)
        self.git("init", "-q", "-b", "main", *(["--bare"] if bare else []))
        self.git("config", "user.name", "Test")
        self.git("config", "user.email", "test@example.invalid")
        self.git("config", "commit.gpgsign", "false")

    def git(self, *args: str) -> str:
        env = {**os.environ, "GIT_AUTHOR_DATE": self.date, "GIT_COMMITTER_DATE": self.date}
        done = subprocess.run(
            ["git", "-C", str(self.path), *args], capture_output=True, text=True, env=env
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    @property
    def date(self) -> str:
        return f"2024-01-01T{self._tick // 60:02d}:{self._tick % 60:02d}:00+00:00"

    def commit(self, message: str, files: dict[str, str | None]) -> str:
        """Write (or, for None, delete) files and commit them; return the commit's sha."""
        self._tick += 1
        for name, text in files.items():
            target = self.path / name
            if text is None:
                target.unlink()
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
        self.git("add", "-A")
        self.git("commit", "-q", "-m", message)
        return self.git("rev-parse", "HEAD")

    def show(self, sha: str, path: str) -> str:
        return self.git("show", f"{sha}:{path}") + "\n"

    def diff(self, base: str, head: str) -> str:
        done = subprocess.run(
            ["git", "-C", str(self.path), "diff", "--binary", base, head],
            capture_output=True,
            text=True,
            check=True,
        )
        return done.stdout


@dataclass
class PullSpec:
    """A pull request of the built history, with what GitHub would say about it."""

    number: int
    title: str
    body: str
    base: str
    head: str
    merge: str | None
    created_at: str
    head_in_repo: bool = True


@dataclass
class History:
    """A repository with five pull requests and the issues they mention.

    PR 7 (merge commit) fixes issue 3; PR 8 (squash-merged, head gone) resolves issues 5
    and 6; PR 9 is merged but closes nothing; PR 10 was never merged; PR 11 "fixes" #12,
    which is itself a pull request.
    """

    repo: GitRepo
    pulls: list[PullSpec]
    issues: list[dict[str, object]]
    unrelated_main_commit: str
    first_commit_of: dict[int, str] = field(default_factory=dict)

    def pull(self, number: int) -> PullSpec:
        return next(p for p in self.pulls if p.number == number)


# Why each of the history's five PRs but 7 and 8 makes no candidate (see `History`).
REJECTIONS = {"not merged": 1, "closes no issue": 1, "closed issues missing or pull requests": 1}

CALC_BUGGY = "def add(a, b):\n    return a - b\n\n\ndef mul(a, b):\n    return a * b\n"
CALC_FIXED = CALC_BUGGY.replace("a - b", "a + b")
TEST_MUL = "from src.calc import mul\n\n\ndef test_mul():\n    assert mul(2, 3) == 6\n"
TEST_ADD = TEST_MUL + "\n\ndef test_add():\n    assert mul(1, 1) + 2 == 3\n"


def build_history(path: Path) -> History:
    repo = GitRepo(path)
    c0 = repo.commit(
        "initial",
        {"README.md": "calc\n", "src/calc.py": CALC_BUGGY, "tests/test_calc.py": TEST_MUL},
    )
    repo.git("checkout", "-q", "-b", "fix-add")
    c1 = repo.commit("fix add", {"src/calc.py": CALC_FIXED, "tests/test_calc.py": TEST_ADD})
    repo.git("checkout", "-q", "main")
    c2 = repo.commit("docs", {"README.md": "calc: a calculator\n"})
    repo._tick += 1
    repo.git("merge", "-q", "--no-ff", "-m", "Merge pull request #7", "fix-add")
    m1 = repo.git("rev-parse", "HEAD")
    s1 = repo.commit(
        "Add sub (#8)",
        {
            "src/calc.py": CALC_FIXED + "\n\ndef sub(a, b):\n    return a - b\n",
            "tests/test_sub.py": "from src.calc import sub\n\n\ndef test_sub():\n"
            "    assert sub(5, 3) == 2\n",
            "docs/sub.md": "sub subtracts\n",
        },
    )
    r1 = repo.commit("Refactor (#9)", {"src/util.py": "X = 1\n"})
    gone = "0123456789abcdef0123456789abcdef01234567"
    pulls = [
        PullSpec(11, "Follow-up", "fixes #12", r1, r1, r1, "2024-02-05T00:00:00Z"),
        PullSpec(10, "Try fix", "Fixes #4", r1, r1, None, "2024-02-04T00:00:00Z"),
        PullSpec(9, "Refactor", "tidy up, see #3", s1, r1, r1, "2024-02-03T00:00:00Z"),
        PullSpec(
            8,
            "Add sub",
            "Resolves #5.\nAlso closes: owner/calc#6 and fixes other/repo#3.",
            m1,
            gone,
            s1,
            "2024-02-02T00:00:00Z",
            head_in_repo=False,
        ),
        PullSpec(7, "Fix add", "This fixes #3", c0, c1, m1, "2024-02-01T00:00:00Z"),
    ]
    issues: list[dict[str, object]] = [
        {"number": 3, "title": "add subtracts", "body": "add(2, 3) gives -1", "comments": 2},
        {"number": 4, "title": "flaky", "body": None, "comments": 0},
        {"number": 5, "title": "no sub", "body": "please add sub()", "comments": 0},
        {"number": 6, "title": "sub docs", "body": "document sub", "comments": 0},
        {"number": 12, "title": "a PR", "body": "", "pull_request": {"url": "x"}, "comments": 0},
    ]
    for issue in issues:
        issue["created_at"] = "2024-01-15T00:00:00Z"
    return History(repo, pulls, issues, c2, first_commit_of={7: c1, 8: s1})


def apply_in_worktree(repo: GitRepo, base: str, patches: list[str], where: Path) -> Path:
    """Check `base` out in a fresh worktree and `git apply` each patch there."""
    repo.git("worktree", "add", "-q", "--detach", str(where), base)
    for number, patch in enumerate(patches):
        if not patch:
            continue
        patch_file = where.parent / f"{where.name}-{number}.diff"
        patch_file.write_text(patch)
        done = subprocess.run(
            ["git", "-C", str(where), "apply", str(patch_file)], capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
    return where
