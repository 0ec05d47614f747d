"""The code-agent pipeline end to end, in Docker, on repositories the tests build with git.

Each fixture drives `run_code` as a user would (candidates in, a SQLite store out) and the
tests read the stored tasks back. The oracles are how the repositories were made: which
commit fixes which function, which test the fix makes pass, what the test patch adds. With
CI=true a missing Docker daemon fails these tests instead of skipping them.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from code_repos import PY_BASE, Pair, git, go_pair, js_pair, python_pair, python_series
from needs import require

from envsynth.schema import CodeInstance, Task
from envsynth.store import Store
from pipelines.code_agent.candidate import CodeCandidate
from pipelines.code_agent.detect import detect
from pipelines.code_agent.environment import export_tree
from pipelines.code_agent.pipeline import CodeConfig, run_code
from pipelines.code_agent.recipes import install_plan, suite_command
from sandbox.docker_sandbox import DockerSandbox, leaked, unavailable_reason
from sandbox.spec import SandboxSpec

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

STATES = ("base", "tests", "gold")
RUNS = 3
COINS = 8  # tests that pass or fail at random once `add` is fixed

ADD_FIXED = """
    def add(a, b):
        return a + b


    def sub(a, b):
        return a - b
    """
ADD_FIXED_SUB_BROKEN = """
    def add(a, b):
        return a + b


    def sub(a, b):
        return a + b  # the fix breaks sub
    """
ALREADY_PASSING_TEST = """
    from calc import sub


    def test_sub_negative():
        assert sub(3, 5) == -2
    """
FLAKY_TESTS = f"""
    import os
    import socket

    import pytest

    from calc import add


    def test_add():
        assert add(2, 3) == 5


    @pytest.mark.parametrize("i", range({COINS}))
    def test_coin(i):
        # Fails before the fix; after it, passes or fails at random: never a P2F.
        assert add(2, 3) == 5 and os.urandom(1)[0] < 128


    def test_network_is_off():
        assert [name for _, name in socket.if_nameindex()] == ["lo"]
    """
MISSING_PACKAGE = "envsynth-no-such-package-xyz"
UNINSTALLABLE = {  # the base's pyproject.toml, plus a dependency no index has
    "pyproject.toml": PY_BASE["pyproject.toml"] + f'dependencies = ["{MISSING_PACKAGE}==1.0"]\n'
}

ISSUES = {
    "add": "calc.add returns the difference of its arguments instead of their sum: add(2, 3) "
    "gives -1 where 5 is expected. Every caller that totals values gets wrong results.",
    "mul": "calc.mul adds its arguments instead of multiplying them, so mul(3, 4) returns 7. "
    "It should return the product, 12, like the documentation says.",
    "shout": "shout() should return its argument upper-cased with an exclamation mark, but it "
    'only appends the mark: shout("hey") returns "hey!" instead of "HEY!".',
    "max": "mathx.Max returns the smaller of its two arguments: Max(2, 7) is 2. It should "
    "return the larger one, 7, as its doc comment says.",
}


@dataclass
class Run:
    """One `run_code` call and what it stored, tasks by instance id."""

    store: Store
    dataset: str
    run_id: str
    seconds: float
    pairs: dict[str, Pair]
    tasks: dict[str, CodeInstance] = field(default_factory=dict)  # payloads
    accepted: set[str] = field(default_factory=set)

    def read(self) -> Run:
        accepted = set(self.store.task_ids(dataset=self.dataset, accepted=True))
        for task in self.store.iter_tasks(self.dataset, accepted=None):
            iid = code(task).extra["instance_id"]
            self.tasks[iid] = code(task)
            if task.id in accepted:
                self.accepted.add(iid)
        return self


def require_docker() -> None:
    require("the code pipeline in Docker", unavailable_reason())


def candidate(pair: Pair, instance_id: str, issue: str, **fields: str) -> CodeCandidate:
    return CodeCandidate(
        instance_id=instance_id,
        repo=pair.name,
        base_commit=pair.base,
        patch=fields.pop("patch", pair.patch),
        test_patch=pair.test_patch,
        problem_statement=ISSUES[issue],
        source="local",
        repo_path=str(pair.repo),
        **fields,
    )


def drive(store: Store, dataset: str, cands: list[CodeCandidate], pairs: dict[str, Pair]) -> Run:
    start = time.perf_counter()
    run_id = run_code(CodeConfig(dataset=dataset, runs=RUNS), cands, store)
    run = Run(store, dataset, run_id, time.perf_counter() - start, pairs)
    print(f"\n{dataset}: run_code took {run.seconds:.1f}s for {len(cands)} candidates")
    return run.read()


def code(task: Task) -> CodeInstance:
    assert isinstance(task.payload, CodeInstance)
    return task.payload


def by_instance(store: Store, dataset: str) -> dict[str, CodeInstance]:
    return {code(t).extra["instance_id"]: code(t) for t in store.iter_tasks(dataset)}


def passing(task: CodeInstance, state: str, test: str) -> list[bool]:
    return [row["results"].get(test) == "passed" for row in task.extra["runs"][state]]


def _damaged(patch: str) -> str:
    """The patch with its first hunk header claiming 7 more lines on each side than it has."""
    header = re.compile(r"^@@ -(\d+),(\d+) \+(\d+),(\d+) @@", re.MULTILINE)
    out, n = header.subn(
        lambda m: f"@@ -{m[1]},{int(m[2]) + 7} +{m[3]},{int(m[4]) + 7} @@", patch, count=1
    )
    assert n == 1
    return out


# --- Python: one environment shared by a positive case and every negative one -------------


@pytest.fixture(scope="module")
def py(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    require_docker()
    root = tmp_path_factory.mktemp("py")
    name = "pipetest/calc"
    pairs = {
        "positive": python_pair(root / "positive", name, later={"CHANGELOG.md": "add fixed\n"}),
        "no_f2p": python_pair(
            root / "no_f2p",
            name,
            fix_source={"calc/__init__.py": ADD_FIXED},
            new_test={"tests/test_sub_more.py": ALREADY_PASSING_TEST},
        ),
        "p2f": python_pair(
            root / "p2f", name, fix_source={"calc/__init__.py": ADD_FIXED_SUB_BROKEN}
        ),
        "flaky": python_pair(root / "flaky", name, new_test={"tests/test_add.py": FLAKY_TESTS}),
        "broken": python_pair(root / "broken", "pipetest/broken", base=UNINSTALLABLE),
    }
    # Same files, same dates: every variant of pipetest/calc has the same base commit.
    assert len({p.base for k, p in pairs.items() if k != "broken"}) == 1
    pos = pairs["positive"]
    full_diff = git(pos.repo, "diff", pos.base, pos.fix)
    malformed = _damaged(pos.patch)
    applies = subprocess.run(
        ["git", "-C", str(pos.repo), "apply", "--check", "-"],
        input=malformed,
        text=True,
        capture_output=True,
    )
    assert applies.returncode != 0, "the damaged patch must not apply"
    cands = [
        candidate(pos, "calc-positive", "add"),
        candidate(pairs["no_f2p"], "calc-no-f2p", "add"),
        candidate(pairs["p2f"], "calc-p2f", "add"),
        candidate(pairs["flaky"], "calc-flaky", "add"),
        candidate(pos, "calc-touches-tests", "add", patch=full_diff),
        candidate(pos, "calc-malformed", "add", patch=malformed),
        candidate(pairs["broken"], "broken-1", "add"),
    ]
    yield drive(Store(root / "db.sqlite"), "pipetest-py", cands, pairs)
    assert not leaked()


def test_python_positive_is_accepted_with_the_lists_its_repository_implies(py: Run) -> None:
    task = py.tasks["calc-positive"]
    assert "calc-positive" in py.accepted
    assert task.fail_to_pass == ["tests/test_add.py::test_add"]
    assert set(task.pass_to_pass) == {
        "tests/test_add.py::test_add_zero",
        "tests/test_sub.py::test_sub",
    }
    extra = task.extra
    assert extra["flaky"] == [] and extra["pass_to_fail"] == []
    # Before the test patch only test_sub exists; the three states ran RUNS times each.
    assert sorted(extra["runs"]) == sorted(STATES)
    for state in STATES:
        rows = extra["runs"][state]
        assert len(rows) == RUNS
        assert all(r["source"] == "junit" for r in rows)
    assert all(set(r["results"]) == {"tests/test_sub.py::test_sub"} for r in extra["runs"]["base"])
    assert passing(task, "tests", "tests/test_add.py::test_add") == [False] * RUNS
    assert passing(task, "gold", "tests/test_add.py::test_add") == [True] * RUNS


def test_python_logs_are_stored_by_hash_and_agree_with_the_reports(py: Run) -> None:
    extra = py.tasks["calc-positive"].extra
    for state in STATES:
        for row in extra["runs"][state]:
            log = py.store.get_blob(row["log_sha256"]).decode()
            assert log.strip()
            # pytest's own -rA summary, read independently of the JUnit report.
            if state == "gold":
                assert "PASSED tests/test_add.py::test_add" in log
            if state == "tests":
                assert "FAILED tests/test_add.py::test_add" in log


def test_python_recipe_comes_from_the_generic_install_plan(py: Run, tmp_path: Path) -> None:
    pair = py.pairs["positive"]
    extra = py.tasks["calc-positive"].extra
    recipe = extra["recipe"]
    profile = detect(export_tree(pair.repo, pair.base, tmp_path / "tree").path)
    plan = install_plan(profile, tmp_path / "tree")
    # Every kept command is one of the plan's alternatives, in the plan's order.
    position = [
        next(i for i, step in enumerate(plan) if cmd in step.alternatives)
        for cmd in recipe["install"]
    ]
    assert position == sorted(position) and len(set(position)) == len(position)
    assert recipe["test_command"] == suite_command(profile)
    assert (recipe["language"], recipe["test_framework"]) == ("python", "pytest")
    # Nothing in the commands names this repository.
    commands = " ".join([*recipe["install"], recipe["test_command"]])
    assert "calc" not in commands and "pipetest" not in commands
    assert extra["image"].startswith("envsynth/inst-") and extra["env_image"].startswith(
        "envsynth/env-pipetest__calc:"
    )


def test_no_fail_to_pass_is_refused(py: Run) -> None:
    task = py.tasks["calc-no-f2p"]
    assert "calc-no-f2p" not in py.accepted
    assert task.fail_to_pass == []  # a refused task exports no lists
    extra = task.extra
    new = "tests/test_sub_more.py::test_sub_negative"
    assert passing(task, "tests", new) == [True] * RUNS
    assert passing(task, "gold", new) == [True] * RUNS
    assert extra["pass_to_fail"] == [] and extra["flaky"] == []
    assert py.store.rejections(py.dataset)["validate:no_fail_to_pass"] == 1


def test_pass_to_fail_is_refused(py: Run) -> None:
    task = py.tasks["calc-p2f"]
    assert "calc-p2f" not in py.accepted
    assert task.extra["pass_to_fail"] == ["tests/test_sub.py::test_sub"]
    assert task.fail_to_pass == []  # a refused task exports no lists
    assert py.store.rejections(py.dataset)["validate:pass_to_fail"] == 1


def test_flaky_tests_are_recorded_and_kept_out_of_the_lists(py: Run) -> None:
    task = py.tasks["calc-flaky"]
    extra = task.extra
    coins = [f"tests/test_add.py::test_coin[{i}]" for i in range(COINS)]
    mixed = {t for t in coins if any(len(set(passing(task, s, t))) > 1 for s in ("tests", "gold"))}
    always = {t for t in coins if passing(task, "gold", t) == [True] * RUNS}
    assert all(passing(task, "tests", t) == [False] * RUNS for t in coins)
    assert mixed, "8 coins that all came out the same 3 times: chance 4**-8"
    assert set(extra["flaky"]) == mixed
    assert "calc-flaky" in py.accepted
    f2p, p2p = set(task.fail_to_pass), set(task.pass_to_pass)
    assert not mixed & (f2p | p2p)
    assert f2p == {"tests/test_add.py::test_add"} | always
    # Every run had no network interface but loopback.
    assert p2p == {"tests/test_sub.py::test_sub", "tests/test_add.py::test_network_is_off"}


def test_patches_refused_by_the_filters_build_nothing(py: Run) -> None:
    rejections = py.store.rejections(py.dataset)
    assert rejections["patch:touches_tests"] == 1
    assert rejections["patch:malformed"] == 1
    for iid in ("calc-touches-tests", "calc-malformed"):
        extra = py.tasks[iid].extra
        assert iid not in py.accepted
        assert "runs" not in extra and "image" not in extra and "recipe" not in extra
    assert "tests/test_add.py" in py.tasks["calc-touches-tests"].extra["rejection_detail"]


def test_an_uninstallable_repository_fails_setup(py: Run) -> None:
    extra = py.tasks["broken-1"].extra
    assert "broken-1" not in py.accepted
    assert py.store.rejections(py.dataset)["setup:step_failed:package"] == 1
    attempts = extra["setup"]["attempts"]
    assert attempts and {a["step"] for a in attempts} == {"package"}
    assert not any(a["ok"] for a in attempts)
    assert MISSING_PACKAGE in extra["rejection_detail"]


def test_python_stage_reports_show_the_yield_of_every_stage(py: Run) -> None:
    reports = {r.stage: r for r in py.store.run_reports(py.run_id)}
    assert py.store.rejections(py.dataset) == {
        "validate:no_fail_to_pass": 1,
        "validate:pass_to_fail": 1,
        "patch:touches_tests": 1,
        "patch:malformed": 1,
        "setup:step_failed:package": 1,
    }
    assert py.accepted == {"calc-positive", "calc-flaky"}
    assert (reports["source"].items_in, reports["source"].items_out) == (7, 7)
    assert (reports["filter"].items_in, reports["filter"].items_out) == (7, 5)
    assert (reports["setup"].items_in, reports["setup"].items_out) == (5, 4)
    assert (reports["validate"].items_in, reports["validate"].items_out) == (4, 2)


def test_the_instance_image_holds_the_base_commit_and_no_later_history(py: Run) -> None:
    pair = py.pairs["positive"]
    image = py.tasks["calc-positive"].extra["image"]
    later = git(pair.repo, "rev-parse", "HEAD").strip()
    assert later != pair.fix
    with DockerSandbox(SandboxSpec(image=image, workdir_from_image=True)) as sb:
        assert sb.run("cd /work/repo && git log --oneline | wc -l").stdout.strip() == "1"
        for sha in (pair.fix, later, pair.base):
            assert sb.run(f"cd /work/repo && git cat-file -e {sha}").exit_code != 0
        assert sb.run("cd /work/repo && git status --porcelain").stdout.strip() == ""
        source = sb.run("cat /work/repo/calc/__init__.py").stdout
        assert "return a - b  # the bug of the issue" in source
        assert sb.run("test -e /work/repo/tests/test_add.py").exit_code != 0
        assert sb.run("test -e /work/repo/CHANGELOG.md").exit_code != 0
    assert PY_BASE["calc/__init__.py"].count("a - b") == 2  # the oracle's premise


# --- JavaScript (mocha) and Go ---------------------------------------------------------


@pytest.fixture(scope="module")
def polyglot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    require_docker()
    root = tmp_path_factory.mktemp("polyglot")
    pairs = {
        "js": js_pair(root, "pipetest/strings"),
        "go": go_pair(root, "pipetest/mathx"),
    }
    cands = [
        candidate(pairs["js"], "strings-1", "shout"),
        candidate(pairs["go"], "mathx-1", "max"),
    ]
    yield drive(Store(root / "db.sqlite"), "pipetest-polyglot", cands, pairs)
    assert not leaked()


def test_javascript_mocha_positive(polyglot: Run) -> None:
    task = polyglot.tasks["strings-1"]
    assert "strings-1" in polyglot.accepted
    # mocha-junit-reporter: classname = the test's title, name = its full title.
    assert task.fail_to_pass == ["upper-cases::shout upper-cases"]
    assert task.pass_to_pass == ["lowers::whisper lowers"]
    recipe = task.extra["recipe"]
    assert (recipe["build_system"], recipe["test_framework"]) == ("npm", "mocha")
    assert all(len(task.extra["runs"][s]) == RUNS for s in STATES)


def test_go_positive(polyglot: Run) -> None:
    task = polyglot.tasks["mathx-1"]
    assert "mathx-1" in polyglot.accepted
    assert task.fail_to_pass == ["example.com/mathx/mathx::TestMax"]
    assert task.pass_to_pass == ["example.com/mathx/mathx::TestAbs"]
    assert task.extra["recipe"]["test_framework"] == "go"
    assert all(len(task.extra["runs"][s]) == RUNS for s in STATES)


# --- Sharing and resume ------------------------------------------------------------------


class Interrupted(Exception):
    """Stands for a run killed after its first candidate was written."""


def test_instances_share_an_environment_and_a_killed_run_resumes(tmp_path: Path, py: Run) -> None:
    require_docker()
    first, second = python_series(tmp_path / "repos", "pipetest/calc-series")
    assert second.base == first.fix  # base commits one apart
    env = {"environment_setup_commit": first.base}
    cands = [
        candidate(first, "series-1", "add", created_at="2024-01-01T00:00:00Z", **env),
        candidate(second, "series-2", "mul", created_at="2024-01-02T00:00:00Z", **env),
    ]
    store, config, dataset = Store(tmp_path / "db.sqlite"), CodeConfig(runs=RUNS), "code"

    def kill(_stage: str, done: int, _total: int) -> None:
        raise Interrupted(done)

    with pytest.raises(Interrupted):
        run_code(config, cands, store, progress=kill)
    [written] = store.iter_tasks(dataset, accepted=None)
    assert code(written).extra["instance_id"] == "series-1"

    lines: list[str] = []
    run_id = run_code(config, cands, store, log=lines.append)
    assert [ln for ln in lines if ln.startswith("series-")] == ["series-2: accepted"]
    tasks = by_instance(store, dataset)
    assert sorted(tasks) == ["series-1", "series-2"]
    one, two = tasks["series-1"], tasks["series-2"]
    assert one.fail_to_pass == ["tests/test_add.py::test_add"]
    assert two.fail_to_pass == ["tests/test_mul.py::test_mul"]
    assert set(two.pass_to_pass) == {
        "tests/test_add.py::test_add",
        "tests/test_add.py::test_add_zero",
        "tests/test_sub.py::test_sub",
    }
    # One environment for both; the second found it built (in the killed run).
    assert one.extra["recipe"] == two.extra["recipe"]
    assert one.extra["env_image"] == two.extra["env_image"]
    assert one.extra["image"] != two.extra["image"]
    assert two.extra["setup"]["cached"] is True
    # A different repository with the same layout gets the same commands: nothing per repo.
    py_recipe = py.tasks["calc-positive"].extra["recipe"]
    assert one.extra["recipe"]["install"] == py_recipe["install"]
    assert one.extra["recipe"]["test_command"] == py_recipe["test_command"]
    with DockerSandbox(SandboxSpec(image=two.extra["image"], workdir_from_image=True)) as sb:
        # The instance holds its own base (add fixed, mul not) and no file of another commit.
        source = sb.run("cat /work/repo/calc/__init__.py").stdout
        assert "return a + b\n" in source and "the bug of the second issue" in source
        assert sb.run("test -e /work/repo/tests/test_add.py").exit_code == 0
        assert sb.run("test -e /work/repo/tests/test_mul.py").exit_code != 0

    # A third run has nothing left to do: same id, nothing new written, no Docker work.
    reports = store.run_reports(run_id)
    stored = list(store.iter_tasks(dataset, accepted=None))
    blobs = sorted(p.name for p in store.blob_dir.rglob("*") if p.is_file())
    lines.clear()
    start = time.perf_counter()
    assert run_code(config, cands, store, log=lines.append) == run_id
    assert time.perf_counter() - start < 5
    assert lines == []
    assert store.run_reports(run_id) == reports
    assert sorted(p.name for p in store.blob_dir.rglob("*") if p.is_file()) == blobs
    assert list(store.iter_tasks(dataset, accepted=None)) == stored
    assert not leaked()
