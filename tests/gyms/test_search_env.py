"""`envsynth/Search-v0`: search, open_page and answer over the task's own corpus; mistakes
are observations, the answer is graded with its aliases, and reading the evidence is
reported beside the reward."""

from __future__ import annotations

import gymnasium as gym
import orjson
import pytest
from actions import call, tool_text
from gymnasium.utils.env_checker import check_env

import gyms  # noqa: F401  (registers the ids, as an RL user's import would)
from envsynth.schema import SearchQA, Task
from envsynth.store import Store
from pipelines.search_qa.pipeline import SearchConfig, run_search


@pytest.fixture(scope="module")
def task(tmp_path_factory: pytest.TempPathFactory) -> Task:
    store = Store(tmp_path_factory.mktemp("search") / "s.db")
    run_search(SearchConfig(questions=6, seed=7, world_size=100), store)
    return next(store.iter_tasks("search"))


def test_search_open_and_answer(task: Task) -> None:
    assert isinstance(task.payload, SearchQA)
    evidence, links = task.payload.extra["evidence"], task.payload.extra["links"]
    env = gym.make("envsynth/Search-v0", task=task)
    try:
        _, info = env.reset(seed=0)
        assert [t["function"]["name"] for t in info["tools"]] == ["search", "open_page", "answer"]

        obs, *_ = env.step(call("search", query=links[0], k=3))
        hits = orjson.loads(tool_text(obs))
        assert evidence[0] in [h["doc_id"] for h in hits] and len(hits) <= 3
        obs, *_ = env.step(call("open_page", doc_id=evidence[0]))
        assert tool_text(obs).startswith(links[0])
        obs, _, terminated, *_ = env.step(call("open_page", doc_id="town/nope"))
        assert tool_text(obs).startswith("Error: no page") and not terminated
        obs, *_ = env.step(call("search", query=7))
        assert tool_text(obs).startswith("Error: search needs")
        obs, *_ = env.step(call("search", query="zzzzqqq"))
        assert tool_text(obs) == "no results"

        _, reward, terminated, _, info = env.step(call("answer", answer="Nowhere at all"))
        assert terminated and reward == 0.0
        assert info["reward_components"]["evidence_read"] == pytest.approx(1 / len(evidence))

        env.reset(seed=0)
        answer = f"  {task.payload.answer.upper()}. "
        _, reward, terminated, _, info = env.step(call("answer", answer=answer))
        assert terminated and reward == 1.0 and info["reward_components"]["evidence_read"] == 0
    finally:
        env.close()


def test_check_env_passes(task: Task) -> None:
    env = gym.make("envsynth/Search-v0", task=task)
    check_env(env.unwrapped, skip_render_check=True)
    env.close()
