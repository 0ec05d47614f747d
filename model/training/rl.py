"""GRPO from the gyms: sample groups of episodes with the model, update it, repeat.

Each step draws `tasks` tasks of a stored dataset, plays `group` episodes of each through
their Gymnasium environment with the model's own policy (`ModelPolicy`, whose step records
hold the sampled ids, logprobs, kept sets and routes), and turns every assistant turn into
a `SampledSequence`: its prompt re-rendered from the history exactly as the policy rendered
it, its reward the episode's, its group the task. `grpo.grpo_loss` then updates the model,
and the prefix cache is dropped, since its keys and values were the old weights'.
"""

from __future__ import annotations

import copy
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field

from envsynth.errors import ConfigError
from envsynth.policy.base import PolicyRequest
from envsynth.rollout import ENV_IDS, EpisodeSpec, rollout
from envsynth.schema import SamplingParams, Task, Trajectory
from envsynth.store import Store
from model.agent import ModelPolicy
from model.training.grpo import GRPOConfig, SampledSequence, grpo_loss


class GRPORunConfig(BaseModel):
    """A GRPO run over a stored dataset.

    Attributes:
        dataset: the tasks' dataset.
        steps: optimizer steps (each on freshly sampled groups: on-policy).
        tasks: tasks per step.
        group: episodes per task (G).
        max_turns: turn budget of an episode.
        lr: AdamW learning rate.
        seed: which tasks each step draws, and the episodes' seeds.
        grpo: the objective's constants.
    """

    model_config = ConfigDict(extra="forbid")

    dataset: str = "general"
    steps: int = Field(4, ge=1)
    tasks: int = Field(2, ge=1)
    group: int = Field(4, ge=2)
    max_turns: int = Field(6, ge=1)
    lr: float = Field(1e-5, gt=0)
    seed: int = 0
    grpo: GRPOConfig = Field(default_factory=GRPOConfig)


def turn_sequences(
    trajectory: Trajectory, task: Task, policy: ModelPolicy
) -> list[SampledSequence]:
    """One sequence per assistant turn the policy sampled (a turn with no tokens is skipped).

    Raises:
        ConfigError: the trajectory has no step records (another policy played it).
    """
    turns = [j for j, m in enumerate(trajectory.messages) if m.role == "assistant"]
    if len(turns) != len(trajectory.steps):
        raise ConfigError(
            f"trajectory {trajectory.id} has {len(turns)} assistant turns but "
            f"{len(trajectory.steps)} step records; play it with the model's policy"
        )
    reward = trajectory.verdict.reward if trajectory.verdict else 0.0
    per_layer = policy.model.args.n_activated_experts
    out = []
    for j, step in zip(turns, trajectory.steps, strict=True):
        if not step.token_ids:
            continue
        if step.logprobs is None or step.sampling_mask is None or step.routing is None:
            raise ConfigError(f"trajectory {trajectory.id} has a turn without its sampling record")
        prompt = policy.prompt(PolicyRequest(messages=trajectory.messages[:j], tools=task.tools))
        routing = [
            [flat[k : k + per_layer] for k in range(0, len(flat), per_layer)]
            for flat in step.routing
        ]
        out.append(
            SampledSequence(
                prompt=prompt,
                tokens=step.token_ids,
                logprobs=step.logprobs,
                sampling_mask=step.sampling_mask,
                routing=routing,
                reward=reward,
                group=task.id,
            )
        )
    return out


def run_grpo(
    config: GRPORunConfig,
    policy: ModelPolicy,
    store: Store,
    on_step: Callable[[dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """Train `policy.model` in place; one log row per step.

    Raises:
        ConfigError: no accepted task in the dataset, or one of a kind with no gym.
    """
    tasks = list(store.iter_tasks(config.dataset))
    if not tasks:
        raise ConfigError(f"dataset {config.dataset!r} has no accepted tasks in {store.url}")
    by_id: Mapping[str, Task] = {t.id: t for t in tasks}
    kind = tasks[0].kind
    if kind not in ENV_IDS:
        raise ConfigError(f"no environment for tasks of kind {kind!r}")
    rng = random.Random(config.seed)
    model = policy.model
    # π_ref of the KL term: the model as the run found it.
    reference = copy.deepcopy(model).eval() if config.grpo.kl_weight > 0 else None
    # No weight decay: with every advantage 0 (no signal in any group) nothing may move.
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, betas=(0.9, 0.95), weight_decay=0.0)
    sampling = SamplingParams(temperature=config.grpo.temperature, seed=config.seed)
    logs = []
    for step in range(config.steps):
        t0 = time.perf_counter()
        chosen = rng.sample(tasks, min(config.tasks, len(tasks)))
        specs = [
            EpisodeSpec({"task": t, "max_turns": config.max_turns}, seed=step, sample=g)
            for t in chosen
            for g in range(config.group)
        ]
        model.eval()
        trajectories = rollout(ENV_IDS[kind], policy, specs, sampling=sampling)
        t1 = time.perf_counter()
        batch = sequences_of(trajectories, by_id, policy)
        model.train()
        loss, stats = grpo_loss(model, batch, config.grpo, reference=reference)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        model.eval()
        if policy.prefix_cache is not None:
            policy.prefix_cache.clear()  # its entries hold the old weights' keys and values
        rewards = [tr.verdict.reward if tr.verdict else 0.0 for tr in trajectories]
        row = {
            "step": step,
            "episodes": len(trajectories),
            "turns": len(batch),
            "mean_reward": sum(rewards) / len(rewards),
            **asdict(stats),
            "rollout_s": t1 - t0,
            "update_s": time.perf_counter() - t1,
        }
        logs.append(row)
        if on_step is not None:
            on_step(row)
    return logs


def sequences_of(
    trajectories: Sequence[Trajectory], tasks: Mapping[str, Task], policy: ModelPolicy
) -> list[SampledSequence]:
    """Every sampled turn of `trajectories` (see `turn_sequences`)."""
    return [s for t in trajectories for s in turn_sequences(t, tasks[t.task_id], policy)]
