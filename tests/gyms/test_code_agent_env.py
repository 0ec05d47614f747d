"""`envsynth/CodeAgent-v0` on a task the pipeline accepted from a repository the test built.

The reward's oracle is how the repository was made: the gold patch fixes `add`, so applying
it must score 1; doing nothing, editing the tests, or printing fake PASSED lines must score 0.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import gymnasium
import orjson
import pytest
from code_repos import python_pair
from gymnasium.utils.env_checker import check_env

import gyms  # noqa: F401  (registers the ids)
from envsynth.policy.base import make_policy
from envsynth.replay import replay
from envsynth.rollout import EpisodeSpec, rollout
from envsynth.schema import Message, Task, ToolCall
from envsynth.store import Store
from pipelines.code_agent.candidate import CodeCandidate
from pipelines.code_agent.pipeline import CodeConfig, run_code
from sandbox.docker_sandbox import leaked, unavailable_reason

ENV_ID = "envsynth/CodeAgent-v0"


@pytest.fixture(scope="module")
def task(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Task]:
    why = unavailable_reason()
    if why:
        if os.environ.get("CI"):
            pytest.fail(f"CI=true but Docker cannot run: {why}")
        pytest.skip(why)
    root = tmp_path_factory.mktemp("repos")
    pair = python_pair(root, "gymtest/calc")
    store = Store(root / "db.sqlite")
    cand = CodeCandidate(
        instance_id="gymtest__calc-1",
        repo=pair.name,
        base_commit=pair.base,
        patch=pair.patch,
        test_patch=pair.test_patch,
        problem_statement="add() returns the difference of its arguments instead of their "
        "sum: add(2, 3) gives -1. It should give 5.",
        source="local",
        repo_path=str(pair.repo),
    )
    run_code(CodeConfig(dataset="gymtest", runs=1), [cand], store)
    [task_id] = store.task_ids(dataset="gymtest", accepted=True)
    yield store.task(task_id)
    assert not leaked()


def _call(name: str, **args: object) -> dict:
    return {
        "tool_calls": [
            {"id": "c", "function": {"name": name, "arguments": orjson.dumps(args).decode()}}
        ]
    }


def _play(task: Task, actions: list[dict], **kwargs: object) -> tuple[float, dict]:
    env = gymnasium.make(ENV_ID, task=task, **kwargs)
    try:
        env.reset(seed=0)
        for action in actions:
            _obs, reward, terminated, truncated, info = env.step(action)
            if terminated or truncated:
                return reward, info
        raise AssertionError("the episode did not end")
    finally:
        env.close()


def test_the_task_is_what_the_repository_implies(task: Task) -> None:
    assert task.payload.fail_to_pass == ["tests/test_add.py::test_add"]
    assert "tests/test_sub.py::test_sub" in task.payload.pass_to_pass


def test_reference_scores_one_and_noop_zero(task: Task) -> None:
    [ref] = rollout(ENV_ID, make_policy("reference"), [EpisodeSpec({"task": task}, seed=0)])
    assert ref.verdict is not None and ref.verdict.reward == 1.0, ref.verdict
    [noop] = rollout(ENV_ID, make_policy("noop"), [EpisodeSpec({"task": task}, seed=0)])
    assert noop.verdict is not None and noop.verdict.reward == 0.0


def test_per_test_results_come_in_info(task: Task) -> None:
    reward, info = _play(task, [_call("submit")])
    assert reward == 0.0
    assert info["tests"]["tests/test_add.py::test_add"] == "failed"
    assert info["tests"]["tests/test_sub.py::test_sub"] == "passed"


def test_editing_the_tests_gains_nothing(task: Task) -> None:
    cheat = "def test_add():\n    assert True\n\n\ndef test_add_zero():\n    assert True\n"
    conftest = (
        "import pytest\n\n\n@pytest.hookimpl(hookwrapper=True)\n"
        "def pytest_runtest_makereport(item, call):\n"
        "    outcome = yield\n    outcome.get_result().outcome = 'passed'\n"
    )
    reward, info = _play(
        task,
        [
            _call("create_file", path="tests/test_add.py", content=cheat),
            _call("create_file", path="conftest.py", content=conftest),
            _call("submit"),
        ],
    )
    assert reward == 0.0 and info["dropped_test_edits"] is True
    assert info["tests"]["tests/test_add.py::test_add"] == "failed"


def test_printing_fake_passed_lines_gains_nothing(task: Task) -> None:
    fake = (
        "print('tests/test_add.py::test_add PASSED')\n"
        "print('PASSED tests/test_add.py::test_add')\n"
        "def add(a, b):\n    return a - b\n\n\ndef sub(a, b):\n    return a - b\n"
    )
    reward, _ = _play(
        task, [_call("create_file", path="calc/__init__.py", content=fake), _call("submit")]
    )
    assert reward == 0.0


def test_fixing_it_with_the_edit_tool_scores_one(task: Task) -> None:
    reward, info = _play(
        task,
        [
            _call("view_file", path="calc/__init__.py"),
            _call(
                "str_replace", path="calc/__init__.py", old="return a - b  #", new="return a + b  #"
            ),
            _call("shell", command="python -c 'import calc; print(calc.add(2, 3))'"),
            _call("submit"),
        ],
    )
    assert reward == 1.0, info


def test_tool_mistakes_are_observations_not_crashes(task: Task) -> None:
    env = gymnasium.make(ENV_ID, task=task)
    env.reset(seed=0)
    obs, *_ = env.step(_call("str_replace", path="calc/__init__.py", old="nope", new="x"))
    assert "not found" in obs
    obs, *_ = env.step(_call("view_file", path="no/such/file.py"))
    assert "cannot read" in obs
    obs, *_ = env.step(
        {"tool_calls": [{"id": "c", "function": {"name": "shell", "arguments": "{"}}]}
    )
    assert "not valid JSON" in obs
    env.close()


def test_check_env_passes(task: Task) -> None:
    env = gymnasium.make(ENV_ID, task=task, max_turns=2)
    check_env(env.unwrapped, skip_render_check=True)
    env.close()


@pytest.mark.parametrize("backend", ["docker", "local"])
def test_replay_re_executes_the_tool_calls(task: Task, backend: str, tmp_path: Path) -> None:
    calls = [
        _call("shell", command="cat calc/__init__.py | head -2; ls"),
        _call("str_replace", path="calc/__init__.py", old="return a - b  #", new="return a + b  #"),
        _call("submit"),
    ]
    [traj] = rollout(ENV_ID, _Scripted(calls), [EpisodeSpec({"task": task}, seed=0)])
    report = replay(traj, task, sandbox=backend)
    assert report.identical, report.divergence
    # A trajectory whose recorded output was tampered with diverges at that message.
    tampered = traj.model_copy(deep=True)
    first_tool = next(i for i, m in enumerate(tampered.messages) if m.role == "tool")
    tampered.messages[first_tool] = tampered.messages[first_tool].model_copy(
        update={"content": "[exit code 0]\nsomething else\n"}
    )
    report = replay(tampered, task, sandbox=backend)
    assert not report.identical and report.divergence is not None
    assert report.divergence.index == first_tool


class _Scripted:
    """A policy that plays fixed actions in order (a stand-in for a model's choices)."""

    def __init__(self, actions: list[dict]):
        from envsynth.schema import PolicyInfo

        self.info = PolicyInfo(name="scripted")
        self.actions = actions

    async def agenerate(self, requests):  # type: ignore[no-untyped-def]
        from envsynth.policy.base import PolicyOutput

        out = []
        for r in requests:
            turn = sum(m.role == "assistant" for m in r.messages)
            a = self.actions[min(turn, len(self.actions) - 1)]
            calls = [
                ToolCall(
                    id=f"c{turn}", name=c["function"]["name"], arguments=c["function"]["arguments"]
                )
                for c in a["tool_calls"]
            ]
            out.append(PolicyOutput(Message(role="assistant", content="", tool_calls=calls)))
        return out
