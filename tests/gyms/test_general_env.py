"""`envsynth/General-v0` through the public Gymnasium API."""

from __future__ import annotations

import json
from typing import Any

import gymnasium
import pytest
from gymnasium.utils.env_checker import check_env

import gyms  # noqa: F401  (registers the ids, as an RL user's import would)
from envsynth.errors import ConfigError
from envsynth.policy import make_policy
from envsynth.rollout import EpisodeSpec, rollout
from envsynth.store import Store
from pipelines.general.family import load_families
from pipelines.general.synthesize import EnvPlan, build_environment


def _task_of(family: str) -> Any:
    fam = load_families().get(family)
    for seed in range(10):
        built = build_environment(EnvPlan(0, family, fam.variants[0].name, seed), "d")
        for cand in built.candidates:
            if cand.rejection is None:
                return cand.task
    raise AssertionError(f"{family} produced no accepted task")


def _call(name: str, arguments: str | dict[str, Any] = "{}") -> dict[str, Any]:
    return {
        "content": "",
        "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": name, "arguments": arguments}}
        ],
    }


@pytest.mark.parametrize("family", list(load_families()))
def test_check_env_on_every_family(family: str) -> None:
    env = gymnasium.make("envsynth/General-v0", task=_task_of(family))
    check_env(env.unwrapped, skip_render_check=False)


def test_reference_scores_one_and_observations_are_only_new_messages() -> None:
    task = _task_of("retail_ops")
    env = gymnasium.make("envsynth/General-v0", task=task)
    obs, info = env.reset(seed=0)
    first = json.loads(obs)
    assert [m["role"] for m in first] == ["system", "user"]
    assert first[1]["content"] == task.instruction
    assert [t["function"]["name"] for t in info["tools"]][-1] == "submit"
    reward = 0.0
    for i, call in enumerate(task.payload.reference):
        obs, reward, terminated, truncated, info = env.step(
            {
                "content": "",
                "tool_calls": [
                    {"id": call.id, "function": {"name": call.name, "arguments": call.arguments}}
                ],
            }
        )
        new = json.loads(obs)
        assert [m["role"] for m in new] == ["tool"] and new[0]["tool_call_id"] == call.id
        last = i == len(task.payload.reference) - 1
        assert terminated == last and not truncated
        assert ("verdict" in info) == last  # no reward signal before the end
    assert reward == 1.0 and info["infra_error"] is False
    assert info["reward_components"] == {"state_match": 1.0}


@pytest.mark.parametrize(
    "action,fragment",
    [
        (_call("no_such_tool"), "unknown tool"),
        (_call("find_customer", "{bad json"), "not valid JSON"),
        (_call("find_customer", {"email": 42}), "invalid arguments"),
        (_call("find_customer", {"email": "x@y", "extra": 1}), "invalid arguments"),
        ('<tool_call>{"name": "find_customer", "arguments": {', "never closed"),
        ('<tool_call>{"name": "find_customer", "arguments": {</tool_call>', "not valid JSON"),
        (
            {"content": "", "tool_calls": [{"id": "c", "function": {"arguments": "{}"}}]},
            "no function name",
        ),
    ],
)
def test_invalid_calls_become_error_observations(action: Any, fragment: str) -> None:
    env = gymnasium.make("envsynth/General-v0", task=_task_of("retail_ops"))
    env.reset(seed=0)
    obs, reward, terminated, truncated, info = env.step(action)
    (message,) = json.loads(obs)
    assert message["role"] == "tool" and message["content"].startswith("Error")
    assert fragment in message["content"]
    assert reward == 0.0 and not terminated and not truncated


def test_text_actions_and_unicode() -> None:
    task = _task_of("retail_ops")
    env = gymnasium.make("envsynth/General-v0", task=task)
    env.reset(seed=0)
    text = (
        "思考 🙂</think>Looking up. "
        '<tool_call>{"name": "find_customer", "arguments": {"email": "ünï@cödé"}}</tool_call>'
    )
    obs, *_ = env.step(text)
    (message,) = json.loads(obs)
    assert "no customer with email 'ünï@cödé'" in message["content"]
    assert env.observation_space.contains(obs) and env.action_space.contains(text)


def test_turn_budget_truncates_and_grades() -> None:
    env = gymnasium.make("envsynth/General-v0", task=_task_of("retail_ops"), max_turns=2)
    env.reset(seed=0)
    env.step(_call("no_such_tool"))
    _obs, reward, terminated, truncated, info = env.step(_call("no_such_tool"))
    assert truncated and not terminated and reward == 0.0 and "verdict" in info
    with pytest.raises(gymnasium.error.ResetNeeded):
        env.step(_call("no_such_tool"))


def test_forged_success_gains_nothing() -> None:
    """Claiming success in text, or calling a grader that is not a tool, earns no reward."""
    env = gymnasium.make("envsynth/General-v0", task=_task_of("retail_ops"))
    env.reset(seed=0)
    obs, *_ = env.step(_call("verify"))
    assert "unknown tool" in obs
    _obs, reward, terminated, _t, info = env.step(
        {"content": "All done. reward=1.0 PASSED", "tool_calls": []}
    )
    assert terminated and reward == 0.0 and info["verdict"]["reward"] == 0.0


def test_dataset_and_seed_select_the_same_task(small_db: Any) -> None:
    env = gymnasium.make("envsynth/General-v0", dataset="general", db=str(small_db))
    ids = {json.dumps(env.reset(seed=s)[1]["task_id"]) for s in (5, 5, 5)}
    assert len(ids) == 1
    others = {env.reset(seed=s)[1]["task_id"] for s in range(30)}
    assert len(others) > 5
    with pytest.raises(ConfigError, match="exactly one"):
        gymnasium.make("envsynth/General-v0")


def test_rollout_stores_trajectories(small_db: Any) -> None:
    store = Store(small_db)
    specs = [EpisodeSpec({"dataset": "general", "db": str(small_db)}, seed=s) for s in range(12)]
    trajectories = rollout("envsynth/General-v0", make_policy("reference"), specs)
    assert len(trajectories) == 12
    assert all(t.verdict is not None and t.verdict.reward == 1.0 for t in trajectories)
    noop = rollout("envsynth/General-v0", make_policy("noop"), specs)
    assert all(t.verdict is not None and t.verdict.reward == 0.0 for t in noop)
    store.put_trajectories(trajectories)
    again = store.trajectory(trajectories[0].id)
    assert again == trajectories[0] and again.messages[0].role == "system"
