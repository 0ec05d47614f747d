"""Generated repositories with an issue–fix pair each, to measure the pipeline on.

`envsynth bench code` needs repositories it may build, time and throw away without reaching
any code host, and whose outcome it knows in advance. Each generated repository has two
commits made with real git: a base commit whose `clamp` (Python), `clamp` (JavaScript) or
`Clamp` (Go) ignores its upper bound, and a fix commit that corrects it and adds a test file.
The fix's diff is split by git pathspecs into the gold patch (source) and the test patch
(tests), so validation must find exactly one fail-to-pass test (`…clamp high…`) and every
other test pass-to-pass.

`DemoSize` scales the suite: `modules` source functions, each with `tests_per_module` tests
that each do `work` loop iterations, so a benchmark can ask for a suite of realistic length.
A `salt` is written into the README so that two benchmark runs never share an image layer.

`sdist_repository` makes a repository of a real package instead: its source distribution,
downloaded with pip and committed as one commit, for measuring the setup agent on code that
was not written for it.
"""

from __future__ import annotations

import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pipelines.code_agent.candidate import CodeAgentError, CodeCandidate
from pipelines.code_agent.sources.gitrepo import git as run_git

DEMO_OWNER = "envsynth-demo"
LANGUAGES = ("python", "javascript", "go")
_GIT_ENV = {
    "GIT_AUTHOR_NAME": "envsynth-demo",
    "GIT_AUTHOR_EMAIL": "demo@localhost",
    "GIT_COMMITTER_NAME": "envsynth-demo",
    "GIT_COMMITTER_EMAIL": "demo@localhost",
    "GIT_AUTHOR_DATE": "2024-01-01T00:00:00Z",
    "GIT_COMMITTER_DATE": "2024-01-01T00:00:00Z",
}
ISSUE = (
    "clamp(x, lo, hi) ignores its upper bound: clamp(15, 0, 10) returns 15 where 10 is "
    "expected. Values above `hi` should come back as `hi`, as the docstring says."
)


@dataclass(frozen=True)
class DemoSize:
    """How large a generated repository's suite is.

    Attributes:
        modules: source functions (and test files), one per module.
        tests_per_module: tests in each test file.
        work: loop iterations each test runs, to lengthen the suite without more tests.
    """

    modules: int = 4
    tests_per_module: int = 25
    work: int = 0

    @property
    def tests(self) -> int:
        """Tests at the fix commit: the generated ones and the fix's two clamp tests."""
        return self.modules * self.tests_per_module + 2


@dataclass(frozen=True)
class DemoRepo:
    """One generated repository and its issue–fix pair.

    Attributes:
        path: the git repository.
        repo: `owner/name`.
        language: python | javascript | go.
        base / fix: the two commits.
        patch / test_patch: the fix's diff without and with only the test files.
        fail_to_pass: the one test id (a substring of it) the fix makes pass.
    """

    path: Path
    repo: str
    language: str
    base: str
    fix: str
    patch: str
    test_patch: str
    fail_to_pass: str

    def candidate(self, instance_id: str | None = None) -> CodeCandidate:
        """The pair as the pipeline's sources would yield it."""
        return CodeCandidate(
            instance_id=instance_id or f"{self.repo.replace('/', '__')}-1",
            repo=self.repo,
            base_commit=self.base,
            patch=self.patch,
            test_patch=self.test_patch,
            problem_statement=ISSUE,
            created_at="2024-01-01T00:00:00Z",
            source="local",
            repo_path=str(self.path),
            pull_number=1,
            issue_numbers=[1],
        )


def git(repo: Path, *args: str) -> str:
    """Run git in `repo` with a fixed identity and date, so a demo repository's commit ids
    are the same on every machine; `CodeAgentError` (a `GitError`) when it fails."""
    return run_git(repo, "-c", "commit.gpgsign=false", *args, env=_GIT_ENV)


def commit_all(repo: Path, message: str) -> str:
    """Stage everything under `repo` (a git repository) and commit it; the commit id."""
    git(repo, "add", "-A", "-f", ".")
    git(repo, "commit", "-q", "--allow-empty", "-m", message)
    return git(repo, "rev-parse", "HEAD").strip()


def init_repository(path: Path, message: str = "import") -> str:
    """Make the directory `path` a one-commit git repository of its files; the commit id."""
    git(path, "init", "-q", "-b", "main")
    return commit_all(path, message)


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)


def _linear(k: int) -> tuple[int, int]:
    """Slope and offset of the k-th generated function, f_k(x) = a·x + b."""
    return k + 2, 3 * k + 1


@dataclass(frozen=True)
class _Files:
    """A repository's base files, what the fix commit writes, and the test it makes pass."""

    base: dict[str, str]
    fix: dict[str, str]
    fail_to_pass: str


def _cases(template: str, work: str, size: DemoSize, module: int) -> str:
    a, b = _linear(module)
    return "".join(
        template.format(k=module, j=j, want=a * j + b, work=work)
        for j in range(size.tests_per_module)
    )


PY_PYPROJECT = """\
[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "{pkg}"
version = "0.1.0"

[tool.setuptools]
packages = ["{pkg}"]
"""
PY_FUNC = "def f{k}(x):\n    return {a} * x + {b}\n\n\n"
PY_CLAMP = 'def clamp(x, lo, hi):\n    """x limited to [lo, hi]."""\n    return {body}\n'
PY_TEST = "def test_f{k}_{j}():\n{work}    assert f{k}({j}) == {want}\n\n\n"
PY_WORK = "    n = {n}\n    assert sum(i * i for i in range(n)) == (n - 1) * n * (2 * n - 1) // 6\n"
PY_CLAMP_TESTS = """\
from {pkg} import clamp


def test_clamp_high():
    assert clamp(15, 0, 10) == 10


def test_clamp_inside():
    assert clamp(5, 0, 10) == 5
"""


def _python(pkg: str, size: DemoSize) -> _Files:
    funcs = "".join(PY_FUNC.format(k=k, a=a, b=b) for k, (a, b) in _functions(size))
    work = PY_WORK.format(n=size.work) if size.work else ""
    base = {
        "pyproject.toml": PY_PYPROJECT.format(pkg=pkg),
        f"{pkg}/__init__.py": funcs + PY_CLAMP.format(body="max(lo, x)  # the bug: hi is ignored"),
    }
    for k in range(size.modules):
        body = _cases(PY_TEST, work, size, k)
        base[f"tests/test_f{k}.py"] = f"from {pkg} import f{k}\n\n\n{body}"
    fix = {
        f"{pkg}/__init__.py": funcs + PY_CLAMP.format(body="max(lo, min(x, hi))"),
        "tests/test_clamp.py": PY_CLAMP_TESTS.format(pkg=pkg),
    }
    return _Files(base, fix, "test_clamp_high")


JS_PACKAGE = """\
{{
  "name": "{pkg}",
  "version": "1.0.0",
  "private": true,
  "scripts": {{"test": "mocha"}},
  "devDependencies": {{"mocha": "^10.2.0"}}
}}
"""
JS_FUNC = "function f{k}(x) {{ return {a} * x + {b}; }}\n"
JS_CLAMP = "function clamp(x, lo, hi) {{\n  return {body};\n}}\nmodule.exports = {{ {names} }};\n"
JS_TEST = '  it("f{k} {j}", () => {{\n{work}    assert.strictEqual(f{k}({j}), {want});\n  }});\n'
JS_WORK = (
    "    let s = 0; const n = {n}; for (let i = 0; i < n; i++) s += i;\n"
    "    assert.strictEqual(s, (n * (n - 1)) / 2);\n"
)
JS_HEAD = 'const assert = require("assert");\nconst {{ {name} }} = require("../src/index");\n'
JS_CLAMP_TESTS = """\
describe("clamp", () => {
  it("clamp high", () => assert.strictEqual(clamp(15, 0, 10), 10));
  it("clamp inside", () => assert.strictEqual(clamp(5, 0, 10), 5));
});
"""


def _javascript(pkg: str, size: DemoSize) -> _Files:
    funcs = "".join(JS_FUNC.format(k=k, a=a, b=b) for k, (a, b) in _functions(size))
    names = ", ".join([*(f"f{k}" for k in range(size.modules)), "clamp"])
    work = JS_WORK.format(n=size.work) if size.work else ""
    buggy = "Math.max(lo, x)"  # the bug: hi is ignored
    base = {
        "package.json": JS_PACKAGE.format(pkg=pkg),
        ".gitignore": "node_modules/\n",
        "src/index.js": funcs + JS_CLAMP.format(body=buggy, names=names),
    }
    for k in range(size.modules):
        body = _cases(JS_TEST, work, size, k)
        head = JS_HEAD.format(name=f"f{k}")
        base[f"test/f{k}.test.js"] = f'{head}describe("f{k}", () => {{\n{body}}});\n'
    fix = {
        "src/index.js": funcs + JS_CLAMP.format(body="Math.max(lo, Math.min(x, hi))", names=names),
        "test/clamp.test.js": JS_HEAD.format(name="clamp") + JS_CLAMP_TESTS,
    }
    return _Files(base, fix, "clamp high")


GO_FUNC = "func F{k}(x int) int {{ return {a}*x + {b} }}\n\n"
GO_CLAMP = """\
// Clamp limits x to [lo, hi].
func Clamp(x, lo, hi int) int {{
\tif x < lo {{
\t\treturn lo
\t}}
{upper}\treturn x
}}
"""
GO_UPPER = "\tif x > hi {\n\t\treturn hi\n\t}\n"
GO_TEST = """\
func TestF{k}_{j}(t *testing.T) {{
{work}\tif F{k}({j}) != {want} {{
\t\tt.Fatal("F{k}({j})")
\t}}
}}

"""
GO_WORK = """\
\tn, s := {n}, 0
\tfor i := 0; i < n; i++ {{
\t\ts += i
\t}}
\tif s != n*(n-1)/2 {{
\t\tt.Fatal("sum")
\t}}
"""
GO_CLAMP_TESTS = """\
func TestClampHigh(t *testing.T) {
\tif Clamp(15, 0, 10) != 10 {
\t\tt.Fatal("high")
\t}
}

func TestClampInside(t *testing.T) {
\tif Clamp(5, 0, 10) != 5 {
\t\tt.Fatal("inside")
\t}
}
"""


def _go(pkg: str, size: DemoSize) -> _Files:
    head = f"package {pkg}\n\n"
    funcs = head + "".join(GO_FUNC.format(k=k, a=a, b=b) for k, (a, b) in _functions(size))
    work = GO_WORK.format(n=size.work) if size.work else ""
    tests_head = head + 'import "testing"\n\n'
    base = {
        "go.mod": f"module example.com/{pkg}\n\ngo 1.19\n",
        f"{pkg}/{pkg}.go": funcs + GO_CLAMP.format(upper=""),
    }
    for k in range(size.modules):
        base[f"{pkg}/f{k}_test.go"] = tests_head + _cases(GO_TEST, work, size, k)
    fix = {
        f"{pkg}/{pkg}.go": funcs + GO_CLAMP.format(upper=GO_UPPER),
        f"{pkg}/clamp_test.go": tests_head + GO_CLAMP_TESTS,
    }
    return _Files(base, fix, "TestClampHigh")


def _functions(size: DemoSize) -> list[tuple[int, tuple[int, int]]]:
    return [(k, _linear(k)) for k in range(size.modules)]


Builder = Callable[[str, DemoSize], _Files]
_BUILDERS: dict[str, tuple[Builder, str, str]] = {
    # language → (files builder, pathspec of the tests, pathspec of everything else)
    "python": (_python, "tests", ":(exclude)tests"),
    "javascript": (_javascript, "test", ":(exclude)test"),
    "go": (_go, ":(glob)**/*_test.go", ":(exclude,glob)**/*_test.go"),
}


def demo_repo(
    root: Path,
    language: str,
    index: int = 0,
    size: DemoSize | None = None,
    *,
    owner: str = DEMO_OWNER,
    salt: str = "",
) -> DemoRepo:
    """Write one repository under `root` (named `<owner>__<language>-<index>`) and commit it.

    Raises:
        CodeAgentError: the language is not one of `LANGUAGES`, or git failed.
    """
    if language not in _BUILDERS:
        raise CodeAgentError(f"no demo repository for {language!r}; use one of {LANGUAGES}")
    builder, tests, others = _BUILDERS[language]
    name = f"{language[:2]}{index}"
    pkg = f"demo{name}"
    files = builder(pkg, size or DemoSize())
    base, fix = files.base, files.fix
    base["README.md"] = f"# {pkg}\n\nA generated repository. Build {salt or 'unsalted'}.\n"
    repo = f"{owner}/{language}-{index}"
    path = root / repo.replace("/", "__")
    path.mkdir(parents=True)
    _write(path, base)
    base_commit = init_repository(path, "base")
    _write(path, fix)
    fix_commit = commit_all(path, "fix: clamp respects its upper bound")
    patch = git(path, "diff", base_commit, fix_commit, "--", ".", others)
    test_patch = git(path, "diff", base_commit, fix_commit, "--", tests)
    return DemoRepo(
        path, repo, language, base_commit, fix_commit, patch, test_patch, files.fail_to_pass
    )


def demo_repos(
    root: Path,
    count: int,
    language: str = "python",
    size: DemoSize | None = None,
    *,
    owner: str = DEMO_OWNER,
    salt: str = "",
) -> list[DemoRepo]:
    """`count` repositories of one language, indexed 0…count−1 (see `demo_repo`)."""
    return [demo_repo(root, language, i, size, owner=owner, salt=salt) for i in range(count)]


def sdist_repository(package: str, dest: Path) -> Path:
    """Download `package`'s source distribution with pip and make it a git repository.

    Returns:
        The unpacked source tree, a one-commit git repository.

    Raises:
        CodeAgentError: pip could not download it, or the archive has no single top directory.
    """
    dl = dest / "download"
    dl.mkdir(parents=True)
    cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:"]
    try:
        proc = subprocess.run(
            [*cmd, "-d", str(dl), package], capture_output=True, text=True, timeout=600
        )
    except subprocess.TimeoutExpired as e:
        raise CodeAgentError(f"pip download {package} took over {e.timeout:.0f} s") from e
    archives = sorted(dl.iterdir())
    if proc.returncode != 0 or not archives:
        why = proc.stderr.strip()[-1000:]
        raise CodeAgentError(
            f"pip download {package} failed (is the package index reachable?): {why}"
        )
    src = dest / "src"
    if archives[0].name.endswith(".zip"):
        with zipfile.ZipFile(archives[0]) as zf:
            zf.extractall(src)
    else:
        with tarfile.open(archives[0]) as tar:
            tar.extractall(src, filter="data")
    tops = list(src.iterdir())
    if len(tops) != 1 or not tops[0].is_dir():
        raise CodeAgentError(f"{archives[0].name} does not unpack to one directory")
    init_repository(tops[0], f"import {archives[0].name}")
    return tops[0]
