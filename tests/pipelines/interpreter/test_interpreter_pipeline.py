"""The interpreter pipeline against real Jupyter kernels and a real SQLite store: every
family's reference checks out, bad references and guessable answers are refused with their
reason and kept, a rerun duplicates nothing, and answers are graded as numbers or text."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from needs import require
from typer.testing import CliRunner

from envsynth.cli import app
from envsynth.errors import UnknownIdError
from envsynth.policy.base import PolicyOutput, PolicyRequest, register_policy
from envsynth.schema import InterpreterProblem, Message, PolicyInfo, ToolCall
from envsynth.store import Store
from pipelines.answers import answer_of, check_answer
from pipelines.interpreter import problems
from pipelines.interpreter.pipeline import InterpreterConfig, run_interpreter
from pipelines.interpreter.problems import FAMILIES, Problem


@pytest.fixture(autouse=True)
def _kernels() -> None:
    from sandbox.kernel import unavailable_reason

    require("a Jupyter kernel", unavailable_reason())


@pytest.fixture()
def extra_families() -> Iterator[None]:
    """Families that misbehave on purpose, removed again after the test."""

    def broken(rng: random.Random) -> Problem:
        return Problem("broken", f"Case {rng.random()}", "print(1 / 0)\n", "7391")

    def wrong(rng: random.Random) -> Problem:
        return Problem("wrong", f"Case {rng.random()}", "print(5000)\n", "4999")

    def in_text(rng: random.Random) -> Problem:
        n = rng.randrange(10_000, 99_999)
        return Problem("in_text", f"Write down {n} again.", f"print({n})\n", str(n))

    def small(rng: random.Random) -> Problem:
        return Problem("small", f"Case {rng.random()}: what is 3 + 4?", "print(3 + 4)\n", "7")

    added = {"broken": broken, "wrong": wrong, "in_text": in_text, "small": small}
    problems.FAMILIES.update(added)
    yield
    for name in added:
        del problems.FAMILIES[name]


def _run_outside_the_kernel(task_payload: InterpreterProblem, tmp: Path) -> str:
    """An oracle independent of the kernel path: the reference in a plain interpreter."""
    for name, text in task_payload.extra["files"].items():
        (tmp / name).write_text(text)
    out = subprocess.run(
        [sys.executable, "-c", task_payload.reference_code],
        cwd=tmp,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return out.stdout.strip().splitlines()[-1]


def test_every_family_checks_out_in_a_real_kernel(tmp_path: Path) -> None:
    store = Store(tmp_path / "i.db")
    n = 2 * len(FAMILIES)
    run_id = run_interpreter(InterpreterConfig(problems=n, chunk_size=5), store)

    reports = {r.stage: r for r in store.run_reports(run_id)}
    assert reports["generate"].items_out == n
    assert reports["reference"].items_out == n, reports["reference"].rejections
    tasks = list(store.iter_tasks("interpreter", accepted=None))
    assert len(tasks) == n and {t.family for t in tasks} == set(FAMILIES)
    assert store.count_tasks("interpreter") == reports["needs_code"].items_out >= n - 2
    for i, task in enumerate(tasks):
        assert isinstance(task.payload, InterpreterProblem)
        scratch = tmp_path / f"t{i}"
        scratch.mkdir()
        got = _run_outside_the_kernel(task.payload, scratch)
        assert check_answer(got, task.payload.answer, task.payload.extra["tolerance"]).reward == 1
        assert [c.name for c in task.tools] == ["python", "answer"]


def test_a_rerun_duplicates_nothing_and_the_draw_is_a_function_of_the_seed(tmp_path: Path) -> None:
    store = Store(tmp_path / "i.db")
    config = InterpreterConfig(problems=4, chunk_size=2, families=["determinant", "prime_sum"])
    run_interpreter(config, store)
    first = store.task_ids("interpreter", accepted=None)
    run_interpreter(config, store)
    assert store.task_ids("interpreter", accepted=None) == first and len(first) == 4
    other = Store(tmp_path / "j.db")
    run_interpreter(config.model_copy(update={"seed": 1}), other)
    assert not set(first) & set(other.task_ids("interpreter", accepted=None))


def test_refused_problems_are_kept_with_their_reason(tmp_path: Path, extra_families: None) -> None:
    store = Store(tmp_path / "i.db")
    families = ["broken", "wrong", "in_text", "small", "determinant"]
    run_id = run_interpreter(InterpreterConfig(problems=10, families=families), store)

    assert store.rejections("interpreter") == {
        "reference_error": 2,
        "reference_mismatch": 2,
        "answer_in_text": 2,
        "guessable": 2,
    }
    accepted = list(store.iter_tasks("interpreter"))
    assert {t.family for t in accepted} == {"determinant"} and len(accepted) == 2
    assert len(store.task_ids("interpreter", accepted=None)) == 10  # nothing lost
    reports = {r.stage: r for r in store.run_reports(run_id)}
    assert (reports["reference"].items_in, reports["reference"].items_out) == (10, 6)
    assert (reports["needs_code"].items_in, reports["needs_code"].items_out) == (6, 2)


@register_policy("test-knows-the-answer")
class _Oracle:
    """Answers right without any tool: what a problem that needs no code lets a model do."""

    def __init__(self, wrong: bool = False) -> None:
        self.wrong = wrong
        self.info = PolicyInfo(name="test-knows-the-answer")

    async def agenerate(self, requests: list[PolicyRequest]) -> list[PolicyOutput]:
        outs = []
        for r in requests:
            assert [t.name for t in r.tools] == ["answer"], "no interpreter offered"
            assert r.task is not None and isinstance(r.task.payload, InterpreterProblem)
            value = r.task.payload.answer + ("1" if self.wrong else "")
            call = ToolCall(id="a", name="answer", arguments=f'{{"answer": "{value}"}}')
            outs.append(PolicyOutput(Message(role="assistant", content="", tool_calls=[call])))
        return outs


@pytest.mark.parametrize("wrong", [False, True])
def test_a_no_tool_policy_that_answers_right_refuses_the_problem(
    tmp_path: Path, wrong: bool
) -> None:
    store = Store(tmp_path / "i.db")
    config = InterpreterConfig(
        problems=3,
        families=["determinant"],
        no_tool_policy="test-knows-the-answer",
        no_tool_samples=2,
        policy_options={"wrong": wrong},
    )
    run_interpreter(config, store)
    expected = {} if wrong else {"solvable_without_code": 3}
    assert store.rejections("interpreter") == expected
    assert store.count_tasks("interpreter") == (3 if wrong else 0)


def test_an_unknown_family_fails_before_any_work(tmp_path: Path) -> None:
    store = Store(tmp_path / "i.db")
    with pytest.raises(UnknownIdError, match="prime_sum"):
        run_interpreter(InterpreterConfig(problems=2, families=["prime_sums"]), store)
    assert store.datasets() == []


@pytest.mark.parametrize(
    ("given", "expected", "tolerance", "reward"),
    [
        ("1,234", "1234", 0.0, 1.0),
        (" 1234. ", "1234", 0.0, 1.0),
        ("1234.0", "1234", 0.0, 1.0),
        ("1235", "1234", 0.0, 0.0),
        ("14256646867", "14256646866", 0.0, 0.0),
        ("219904.885", "219904.88", 0.005, 1.0),
        ("219904.89", "219904.88", 0.005, 0.0),
        ("about 1234", "1234", 0.0, 0.0),
        ("-9426758", "-9426758", 0.0, 1.0),
        ("North  Region", "north region", 0.0, 1.0),
        ("south", "north", 0.0, 0.0),
        ("nan", "1", 0.0, 0.0),
    ],
)
def test_answers_are_numbers_within_tolerance_or_normalized_text(
    given: str, expected: str, tolerance: float, reward: float
) -> None:
    verdict = check_answer(given, expected, tolerance)
    assert verdict.reward == reward, verdict.reason
    assert verdict.reason == "correct" if reward else verdict.reason != "correct"


def test_cli_generates_and_reports_its_stages(tmp_path: Path) -> None:
    db = tmp_path / "cli.db"
    result = CliRunner(env={"COLUMNS": "200"}).invoke(
        app,
        ["generate", "interpreter", "--db", str(db), "--problems", "3", "--families", "collatz"],
    )
    assert result.exit_code == 0, result.output
    assert "3 accepted of 3 problems" in result.output and "reference" in result.output
    assert os.path.getsize(db) > 0 and Store(db).count_tasks("interpreter") == 3
    card = tmp_path / "card.md"
    result = CliRunner().invoke(
        app, ["card", "--db", str(db), "--dataset", "interpreter", "--out", str(card)]
    )
    assert result.exit_code == 0, result.output
    # No environment rows here: each task's env_id counts, and all share one toolset.
    assert "3 accepted **interpreter** tasks over 3 environments with 1 distinct" in (
        card.read_text()
    )


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [('{"answer": "42"}', "42"), ('{"answer": 42}', "42"), ("{}", ""), ("{bad", ""), ("[1]", "")],
)
def test_the_answer_of_a_call_is_its_answer_argument_or_nothing(
    arguments: str, expected: str
) -> None:
    assert answer_of(arguments) == expected
