"""Small repositories that the code-agent tests build for themselves, with real git.

Each builder writes a base commit with a bug and a fix commit that changes the source and the
tests, as an issue's pull request would, and returns a `Pair`: the repository, the base
commit, and the fix's diff split into the gold patch and the test patch by git itself
(pathspecs), independently of the pipeline's own splitter.
"""

from __future__ import annotations

import subprocess
import textwrap
from dataclasses import dataclass
from pathlib import Path

GIT_ENV = {
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@localhost",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@localhost",
    "GIT_AUTHOR_DATE": "2024-01-01T00:00:00Z",
    "GIT_COMMITTER_DATE": "2024-01-01T00:00:00Z",
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "HOME": "/tmp",
}


@dataclass(frozen=True)
class Pair:
    repo: Path
    name: str  # owner/name
    base: str
    fix: str
    patch: str
    test_patch: str


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True, env=GIT_ENV
    ).stdout


def write(repo: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = repo / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"))


def commit(repo: Path, message: str) -> str:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD").strip()


def make_pair(
    root: Path,
    name: str,
    base_files: dict[str, str],
    fix_files: dict[str, str],
    test_paths: tuple[str, ...],
    later_files: dict[str, str] | None = None,
) -> Pair:
    """A repository with a base commit, a fix commit, and optionally a later commit."""
    repo = root / name.replace("/", "__")
    repo.mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main")
    write(repo, base_files)
    base = commit(repo, "base")
    write(repo, fix_files)
    fix = commit(repo, "fix")
    if later_files:
        write(repo, later_files)
        commit(repo, "later")
    tests = [f":(glob){p}" for p in test_paths]
    patch = git(repo, "diff", base, fix, "--", ".", *[f":(exclude,glob){p}" for p in test_paths])
    test_patch = git(repo, "diff", base, fix, "--", *tests)
    return Pair(repo, name, base, fix, patch, test_patch)


PY_BASE = {
    "pyproject.toml": """
        [build-system]
        requires = ["setuptools>=61"]
        build-backend = "setuptools.build_meta"

        [project]
        name = "calc"
        version = "0.1.0"
        """,
    "calc/__init__.py": """
        def add(a, b):
            return a - b  # the bug of the issue


        def sub(a, b):
            return a - b
        """,
    "tests/test_sub.py": """
        from calc import sub


        def test_sub():
            assert sub(5, 3) == 2
        """,
}
PY_FIX_SOURCE = {
    "calc/__init__.py": """
        def add(a, b):
            return a + b


        def sub(a, b):
            return a - b
        """,
}
PY_NEW_TEST = {
    "tests/test_add.py": """
        from calc import add


        def test_add():
            assert add(2, 3) == 5


        def test_add_zero():
            assert add(0, 0) == 0
        """,
}


def python_pair(root: Path, name: str = "acme/calc", **overrides: dict[str, str]) -> Pair:
    """The positive Python case: `add` subtracts; the fix and a new test file.

    F2P = tests/test_add.py::test_add; P2P = test_add_zero (passes either way) and test_sub.
    `overrides` replace parts: base, fix_source, new_test, later.
    """
    fix = {**overrides.get("fix_source", PY_FIX_SOURCE), **overrides.get("new_test", PY_NEW_TEST)}
    return make_pair(
        root,
        name,
        {**PY_BASE, **overrides.get("base", {})},
        fix,
        ("tests/**",),
        later_files=overrides.get("later"),
    )


JS_BASE = {
    "package.json": """
        {
          "name": "strings",
          "version": "1.0.0",
          "private": true,
          "scripts": {"test": "mocha"},
          "devDependencies": {"mocha": "^10.2.0"}
        }
        """,
    "src/strings.js": """
        function shout(s) {
          return s + "!";  // the bug: should upper-case
        }
        function whisper(s) {
          return s.toLowerCase();
        }
        module.exports = { shout, whisper };
        """,
    "test/whisper.test.js": """
        const assert = require("assert");
        const { whisper } = require("../src/strings");
        describe("whisper", () => {
          it("lowers", () => assert.strictEqual(whisper("HeY"), "hey"));
        });
        """,
    ".gitignore": "node_modules/\n",
}
JS_FIX = {
    "src/strings.js": """
        function shout(s) {
          return s.toUpperCase() + "!";
        }
        function whisper(s) {
          return s.toLowerCase();
        }
        module.exports = { shout, whisper };
        """,
    "test/shout.test.js": """
        const assert = require("assert");
        const { shout } = require("../src/strings");
        describe("shout", () => {
          it("upper-cases", () => assert.strictEqual(shout("hey"), "HEY!"));
        });
        """,
}


def js_pair(root: Path, name: str = "acme/strings") -> Pair:
    return make_pair(root, name, JS_BASE, JS_FIX, ("test/**",))


GO_BASE = {
    "go.mod": "module example.com/mathx\n\ngo 1.19\n",
    "mathx/mathx.go": """
        package mathx

        // Max returns the larger of a and b.
        func Max(a, b int) int {
        \tif a < b {
        \t\treturn a
        \t}
        \treturn b
        }

        // Abs returns |a|.
        func Abs(a int) int {
        \tif a < 0 {
        \t\treturn -a
        \t}
        \treturn a
        }
        """,
    "mathx/abs_test.go": """
        package mathx

        import "testing"

        func TestAbs(t *testing.T) {
        \tif Abs(-3) != 3 {
        \t\tt.Fatal("Abs(-3)")
        \t}
        }
        """,
}
GO_FIX = {
    "mathx/mathx.go": GO_BASE["mathx/mathx.go"].replace("if a < b {", "if a > b {"),
    "mathx/max_test.go": """
        package mathx

        import "testing"

        func TestMax(t *testing.T) {
        \tif Max(2, 7) != 7 {
        \t\tt.Fatal("Max(2, 7)")
        \t}
        }
        """,
}


def go_pair(root: Path, name: str = "acme/mathx") -> Pair:
    return make_pair(root, name, GO_BASE, GO_FIX, ("**/*_test.go",))


def make_series(
    root: Path,
    name: str,
    base_files: dict[str, str],
    fixes: list[dict[str, str]],
    test_paths: tuple[str, ...],
) -> list[Pair]:
    """A repository whose fixes land one after the other, as a project's issues do.

    Pair i is fix i on top of fix i-1 (pair 0 on the base): its `base` is the commit before
    its fix, so consecutive instances have base commits one apart.
    """
    repo = root / name.replace("/", "__")
    repo.mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main")
    write(repo, base_files)
    before = commit(repo, "base")
    pairs = []
    for i, files in enumerate(fixes, 1):
        write(repo, files)
        after = commit(repo, f"fix {i}")
        excluded = [f":(exclude,glob){p}" for p in test_paths]
        patch = git(repo, "diff", before, after, "--", ".", *excluded)
        test_patch = git(repo, "diff", before, after, "--", *[f":(glob){p}" for p in test_paths])
        pairs.append(Pair(repo, name, before, after, patch, test_patch))
        before = after
    return pairs


CALC_SERIES = """
    def add(a, b):
        return {add}


    def sub(a, b):
        return a - b


    def mul(a, b):
        return {mul}
    """
ADD_BUG, MUL_BUG = "a - b  # the bug of the first issue", "a + b  # the bug of the second issue"
PY_SERIES_BASE = {**PY_BASE, "calc/__init__.py": CALC_SERIES.format(add=ADD_BUG, mul=MUL_BUG)}
PY_SERIES_FIXES = [
    {
        "calc/__init__.py": CALC_SERIES.format(add="a + b", mul=MUL_BUG),
        "tests/test_add.py": PY_NEW_TEST["tests/test_add.py"],
    },
    {
        "calc/__init__.py": CALC_SERIES.format(add="a + b", mul="a * b"),
        "tests/test_mul.py": """
            from calc import mul


            def test_mul():
                assert mul(3, 4) == 12
            """,
    },
]


def python_series(root: Path, name: str = "acme/calc-series") -> list[Pair]:
    """Two Python issues in a row: `add` subtracts (fixed first), then `mul` adds.

    Pair 0: F2P = tests/test_add.py::test_add. Pair 1 (based on pair 0's fix):
    F2P = tests/test_mul.py::test_mul; P2P = test_add, test_add_zero and test_sub.
    """
    return make_series(root, name, PY_SERIES_BASE, PY_SERIES_FIXES, ("tests/**",))
