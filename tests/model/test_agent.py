"""`ModelPolicy` drives the General gym: well-formed messages, one record entry per token."""

from __future__ import annotations

import json

import gymnasium
import pytest
import torch

import gyms  # noqa: F401  (registers the ids)
from envsynth.errors import ConfigError
from envsynth.policy.base import Policy, PolicyRequest, generate
from envsynth.rollout import EpisodeSpec, rollout
from envsynth.schema import Message, SamplingParams, StepRecord, Task
from model import ModelArgs, Transformer
from model.agent import ModelPolicy
from model.generate import generate as generate_ids
from model.tokenizer import Tokenizer
from pipelines.general.family import load_families
from pipelines.general.synthesize import EnvPlan, build_environment

TOK = Tokenizer()


@pytest.fixture(scope="module")
def task() -> Task:
    # The shortest prompts of the families (~1.4K byte tokens with the tools block).
    fam = load_families().get("diet_planning")
    for seed in range(10):
        built = build_environment(EnvPlan(0, "diet_planning", fam.variants[0].name, seed), "d")
        for cand in built.candidates:
            if cand.rejection is None:
                return cand.task
    raise AssertionError("diet_planning produced no accepted task")


@pytest.fixture(scope="module")
def policy() -> ModelPolicy:
    torch.manual_seed(0)
    args = ModelArgs(n_layers=2, moe_layers=(1,), max_seq_len=4096, index_topk=32)
    return ModelPolicy(Transformer(args), name="tiny-random")


def _check_record(step: StepRecord, message: Message, n_moe: int = 1, k: int = 2) -> None:
    assert step.token_ids and step.logprobs and step.sampling_mask and step.routing
    n = len(step.token_ids)
    assert len(step.logprobs) == len(step.sampling_mask) == len(step.routing) == n
    assert all(len(r) == n_moe * k for r in step.routing)
    assert all(t in mask for t, mask in zip(step.token_ids, step.sampling_mask, strict=True))
    assert all(lp <= 0 for lp in step.logprobs)
    assert message.role == "assistant"


def test_it_is_a_policy_and_respects_max_tokens_and_the_seed(
    policy: ModelPolicy, task: Task
) -> None:
    assert isinstance(policy, Policy)
    history = [Message(role="system", content="Be brief."), Message(role="user", content="Hi")]
    sampling = SamplingParams(max_tokens=16, seed=3)
    requests = [PolicyRequest(history, sampling=sampling)] * 2
    requests.append(PolicyRequest(history, tools=task.tools, sampling=sampling))
    outs = generate(policy, requests)

    # Same history and seed: the same draw, batched or not. The second row reuses the first
    # row's cached prompt, so logprobs agree to float rounding rather than bit for bit.
    first, second = outs[0], outs[1]
    assert first.message == second.message
    assert first.step.token_ids == second.step.token_ids
    assert first.step.sampling_mask == second.step.sampling_mask
    assert first.step.routing == second.step.routing
    assert second.step.logprobs == pytest.approx(first.step.logprobs, rel=1e-5, abs=1e-5)
    for out in outs:
        _check_record(out.step, out.message)
        assert len(out.step.token_ids or []) <= 16


def test_it_drives_the_general_gym(policy: ModelPolicy, task: Task) -> None:
    env = gymnasium.make("envsynth/General-v0", task=task, max_turns=3)
    obs, info = env.reset(seed=0)
    history = [Message.model_validate(m) for m in json.loads(obs)]
    sampling = SamplingParams(max_tokens=24, seed=1)
    for _ in range(3):
        out = generate(policy, [PolicyRequest(history, tools=task.tools, sampling=sampling)])[0]
        _check_record(out.step, out.message)
        # As a text-action user would: the raw completion, which the gym parses itself
        # (a malformed one comes back as an error observation and the episode goes on).
        action = "<think>" + TOK.decode(out.step.token_ids or [])
        obs, reward, terminated, truncated, info = env.step(action)
        new = [Message.model_validate(m) for m in json.loads(obs)]
        history += [out.message, *new]
        if terminated or truncated:
            assert 0.0 <= float(reward) <= 1.0 and "verdict" in info
            break
    else:
        raise AssertionError("max_turns=3 should have ended the episode")


def test_rollout_records_one_step_record_per_turn(policy: ModelPolicy, task: Task) -> None:
    episodes = [EpisodeSpec({"task": task, "max_turns": 2}, seed=s) for s in (0, 1)]
    trajs = rollout("envsynth/General-v0", policy, episodes, sampling=SamplingParams(max_tokens=12))

    for traj in trajs:
        assert traj.policy.name == "tiny-random" and traj.verdict is not None
        assistant = [m for m in traj.messages if m.role == "assistant"]
        assert len(traj.steps) == len(assistant) >= 1
        for step, message in zip(traj.steps, assistant, strict=True):
            _check_record(step, message)


def test_a_context_window_shows_the_model_only_the_prompts_tail(
    policy: ModelPolicy, task: Task
) -> None:
    history = [
        Message(role="system", content=task.system_prompt),
        Message(role="user", content="go"),
    ]
    sampling = SamplingParams(max_tokens=12, seed=5)
    windowed = ModelPolicy(policy.model, name="w", context=64, prefix_cache=0)
    out = generate(windowed, [PolicyRequest(history, tools=task.tools, sampling=sampling)])[0]
    # The oracle: the model generating directly from the last 64 tokens of the prompt.
    tail = TOK.encode_chat(history, task.tools, thinking=True)[-64:]
    assert len(TOK.encode_chat(history, task.tools, thinking=True)) > 64
    direct = generate_ids(
        policy.model, [tail], max_tokens=12, stop_id=TOK.end_id, pad_id=TOK.pad_id, seeds=[5]
    )[0]
    assert out.step.token_ids == direct.token_ids
    with pytest.raises(ConfigError, match="context"):
        ModelPolicy(policy.model, context=0)
