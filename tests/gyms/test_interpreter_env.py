"""`envsynth/Interpreter-v0` on real Jupyter kernels: the reference solves every task, the
kernel keeps state and holds the task's files, mistakes are observations, and the answer
is graded by the check that accepted the task."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import pytest
from actions import call, tool_text
from gymnasium.utils.env_checker import check_env
from needs import require

import gyms  # noqa: F401  (registers the ids, as an RL user's import would)
from envsynth.policy.baselines import ReferencePolicy
from envsynth.rollout import EpisodeSpec, rollout
from envsynth.schema import InterpreterProblem, Task
from envsynth.store import Store
from pipelines.interpreter.pipeline import InterpreterConfig, run_interpreter


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from sandbox.kernel import unavailable_reason

    require("a Jupyter kernel", unavailable_reason())
    path = tmp_path_factory.mktemp("interp") / "i.db"
    run_interpreter(
        InterpreterConfig(problems=4, families=["sales_csv", "determinant"]), Store(path)
    )
    return path


@pytest.fixture()
def task(db: Path) -> Task:
    return next(t for t in Store(db).iter_tasks("interpreter") if t.family == "sales_csv")


def test_the_reference_solves_every_stored_task(db: Path) -> None:
    specs = [EpisodeSpec({"dataset": "interpreter", "db": str(db)}, seed=i) for i in range(4)]
    trajectories = rollout("envsynth/Interpreter-v0", ReferencePolicy(), specs)
    assert len({t.task_id for t in trajectories}) >= 2
    for t in trajectories:
        assert t.verdict is not None and t.verdict.reward == 1.0, t.verdict


def test_an_episode_keeps_state_sees_files_and_grades_the_answer(task: Task) -> None:
    assert isinstance(task.payload, InterpreterProblem)
    env = gym.make("envsynth/Interpreter-v0", task=task)
    try:
        _, info = env.reset(seed=0)
        assert [t["function"]["name"] for t in info["tools"]] == ["python", "answer"]

        obs, reward, terminated, truncated, _ = env.step(call("python", code="x = 41"))
        assert tool_text(obs) == "[no output]" and not (terminated or truncated)
        obs, *_ = env.step(call("python", code="print(x + 1)"))
        assert tool_text(obs) == "42"
        obs, *_ = env.step(call("python", code="print(open('sales.csv').readline().strip())"))
        assert tool_text(obs) == "order_id,region,product,units,unit_price,status"

        obs, reward, terminated, *_ = env.step(call("python", code="1 / 0"))
        text = tool_text(obs)
        assert "ZeroDivisionError" in text and "raised an error" in text and not terminated

        obs, reward, terminated, *_ = env.step(call("python", cod="print(1)"))
        assert tool_text(obs).startswith("Error: python needs") and not terminated

        wrong = str(float(task.payload.answer) + 1)
        obs, reward, terminated, _, info = env.step(call("answer", answer=wrong))
        assert terminated and reward == 0.0
        assert "is not" in info["verdict"]["reason"]
    finally:
        env.close()


def test_a_numeric_answer_and_a_missed_answer(task: Task) -> None:
    assert isinstance(task.payload, InterpreterProblem)
    env = gym.make("envsynth/Interpreter-v0", task=task, max_turns=1)
    try:
        env.reset(seed=0)
        _, reward, terminated, _, _ = env.step(call("answer", answer=float(task.payload.answer)))
        assert terminated and reward == 1.0
        env.reset(seed=0)
        _, reward, terminated, truncated, info = env.step(call("python", code="2 + 2"))
        assert truncated and not terminated and reward == 0.0
        assert info["verdict"]["reason"] == "no answer was given"
    finally:
        env.close()


def test_check_env_passes(task: Task) -> None:
    env = gym.make("envsynth/Interpreter-v0", task=task)
    try:
        check_env(env.unwrapped, skip_render_check=True)
    finally:
        env.close()
