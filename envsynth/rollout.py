"""Batched rollouts: run a Policy over many environments of any registered id (DESIGN §7).

Generic over Gymnasium ids: environments are made with `gymnasium.make`, histories are
rebuilt from observations exactly as an RL user would, and every active episode's next
turn is asked of the policy in one batch, so model backends see full batches and HTTP
backends overlap their requests. The pass@k filter of the pipelines and `envsynth audit`
both sample through `estimate_difficulty`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from envsynth.ids import content_hash
from envsynth.passk import pass_at_k
from envsynth.plugins import make_env
from envsynth.policy.base import Policy, PolicyRequest
from envsynth.schema import (
    Difficulty,
    Message,
    SamplingParams,
    StepRecord,
    Task,
    ToolSpec,
    Trajectory,
    Verdict,
)


@dataclass(frozen=True)
class EpisodeSpec:
    """One episode to run: keyword arguments of the environment and the reset seed."""

    env_kwargs: dict[str, Any]
    seed: int
    sample: int = 0


@dataclass
class _Live:
    job: EpisodeSpec
    env: Any
    task_id: str
    task: Task | None
    tools: list[Any]
    history: list[Message]
    steps: list[StepRecord] = field(default_factory=list)
    verdict: Verdict | None = None
    terminated: bool = False
    truncated: bool = False


def _messages(obs: str) -> list[Message]:
    return [Message.model_validate(m) for m in orjson.loads(obs)]


async def arollout(
    env_id: str,
    policy: Policy,
    episodes: Sequence[EpisodeSpec],
    *,
    sampling: SamplingParams | None = None,
    concurrency: int = 64,
    on_done: Callable[[Trajectory], None] | None = None,
) -> list[Trajectory]:
    """Run `episodes` with at most `concurrency` environments alive at once.

    Returns:
        One Trajectory per episode, in the order given.
    """
    sampling = sampling or SamplingParams()
    results: list[Trajectory | None] = [None] * len(episodes)
    pending = list(enumerate(episodes))[::-1]
    live: dict[int, _Live] = {}
    while pending or live:
        while pending and len(live) < concurrency:
            i, job = pending.pop()
            env = make_env(env_id, **job.env_kwargs)
            obs, info = env.reset(seed=job.seed)
            tools = [
                ToolSpec(
                    name=t["function"]["name"],
                    description=t["function"]["description"],
                    parameters=t["function"]["parameters"],
                )
                for t in info["tools"]
            ]
            # The task is handed to privileged policies (`reference`) only; model backends
            # never read it. Environments outside envsynth may have none.
            task = getattr(env.unwrapped, "task", None)
            live[i] = _Live(job, env, info.get("task_id", env_id), task, tools, _messages(obs))
        order = list(live)
        requests = [
            PolicyRequest(
                messages=live[i].history,
                tools=live[i].tools,
                sampling=sampling.model_copy(
                    update={
                        "seed": (sampling.seed or 0) * 1_000_003
                        + live[i].job.seed * 1009
                        + live[i].job.sample
                    }
                ),
                task=live[i].task,
            )
            for i in order
        ]
        outputs = await policy.agenerate(requests)
        for i, out in zip(order, outputs, strict=True):
            ep = live[i]
            ep.history.append(out.message)
            ep.steps.append(out.step)
            action = out.raw_text if out.raw_text is not None else out.message
            obs, _reward, terminated, truncated, info = ep.env.step(action)
            ep.history.extend(_messages(obs))
            if terminated or truncated:
                ep.verdict = Verdict.model_validate(info["verdict"])
                ep.terminated, ep.truncated = terminated, truncated
                ep.env.close()
                traj = _trajectory(env_id, policy, sampling, ep)
                results[i] = traj
                if on_done is not None:
                    on_done(traj)
                del live[i]
    return [t for t in results if t is not None]


def rollout(
    env_id: str, policy: Policy, episodes: Sequence[EpisodeSpec], **kwargs: Any
) -> list[Trajectory]:
    """Synchronous `arollout`."""
    return asyncio.run(arollout(env_id, policy, episodes, **kwargs))


def _trajectory(env_id: str, policy: Policy, sampling: SamplingParams, ep: _Live) -> Trajectory:
    key = [ep.task_id, policy.info.model_dump(), sampling.model_dump(), ep.job.seed, ep.job.sample]
    return Trajectory(
        id="tr-" + content_hash(key)[:24],
        task_id=ep.task_id,
        env_id=env_id,
        policy=policy.info.model_copy(update={"sampling": sampling}),
        messages=ep.history,
        steps=ep.steps,
        verdict=ep.verdict,
        seed=ep.job.seed,
        terminated=ep.terminated,
        truncated=ep.truncated,
    )


ENV_IDS = {
    "general": "envsynth/General-v0",
    "code": "envsynth/CodeAgent-v0",
    "search": "envsynth/Search-v0",
    "interpreter": "envsynth/Interpreter-v0",
}


def estimate_difficulty(
    policy: Policy,
    tasks: Sequence[Task],
    samples: int,
    ks: Sequence[int],
    *,
    sampling: SamplingParams | None = None,
    concurrency: int = 64,
    max_turns: int | None = None,
    on_trajectory: Callable[[Trajectory], None] | None = None,
) -> dict[str, Difficulty]:
    """Sample `samples` episodes per task and estimate pass@k for each k in `ks` (k ≤ samples).

    Infrastructure failures are not counted as samples. `max_turns` None keeps each
    environment's own default budget.
    """
    ks = sorted({k for k in ks if 1 <= k <= samples})
    by_kind: dict[str, list[Task]] = {}
    for t in tasks:
        by_kind.setdefault(t.kind, []).append(t)
    successes: dict[str, int] = {t.id: 0 for t in tasks}
    counted: dict[str, int] = {t.id: 0 for t in tasks}

    def record(traj: Trajectory) -> None:
        if traj.verdict is None or traj.verdict.infra_error:
            return
        counted[traj.task_id] += 1
        successes[traj.task_id] += traj.verdict.passed
        if on_trajectory is not None:
            on_trajectory(traj)

    for kind, group in by_kind.items():
        kwargs = {"max_turns": max_turns} if max_turns else {}
        episodes = [
            EpisodeSpec({"task": t, **kwargs}, seed=s, sample=s)
            for t in group
            for s in range(samples)
        ]
        rollout(
            ENV_IDS[kind],
            policy,
            episodes,
            sampling=sampling,
            concurrency=concurrency,
            on_done=record,
        )
    out = {}
    for t in tasks:
        n, c = counted[t.id], successes[t.id]
        out[t.id] = Difficulty(
            policy=f"{policy.info.name}:{policy.info.version}",
            samples=n,
            successes=c,
            pass_at={k: pass_at_k(n, c, k) for k in ks if k <= n},
        )
    return out
