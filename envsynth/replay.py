"""Replay a stored trajectory in a fresh environment and find where it diverges.

Generic over environment ids, like `envsynth.rollout`: the environment is made again with
the trajectory's task and seed, stepped with the recorded assistant messages, and each
new observation is compared with the recorded one. Environments that run code take a
`sandbox=` option, so the same trajectory can be replayed on another backend.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from envsynth.errors import ConfigError
from envsynth.plugins import make_env
from envsynth.schema import Message, Task, Trajectory, Verdict


@dataclass(frozen=True)
class Divergence:
    """The first message that came out differently.

    Attributes:
        index: position in the trajectory's message list.
        expected: the recorded message (None if the replay produced an extra one).
        actual: the replayed message (None if the replay produced fewer).
    """

    index: int
    expected: Message | None
    actual: Message | None


@dataclass(frozen=True)
class ReplayReport:
    trajectory_id: str
    messages: int
    divergence: Divergence | None
    recorded_verdict: Verdict | None
    replayed_verdict: Verdict | None

    @property
    def identical(self) -> bool:
        same_verdict = (
            self.recorded_verdict is None
            or self.replayed_verdict is None
            or self.recorded_verdict.reward == self.replayed_verdict.reward
        )
        return self.divergence is None and same_verdict


def _same(a: Message, b: Message) -> bool:
    return a.role == b.role and a.content == b.content and a.tool_call_id == b.tool_call_id


def _messages(obs: str) -> list[Message]:
    return [Message.model_validate(m) for m in orjson.loads(obs)]


def replay(trajectory: Trajectory, task: Task, **env_kwargs: Any) -> ReplayReport:
    """Step a fresh environment with the recorded assistant messages; compare everything else."""
    try:
        env = make_env(trajectory.env_id, task=task, **env_kwargs)
    except TypeError as e:
        raise ConfigError(f"{trajectory.env_id} does not take {sorted(env_kwargs)}: {e}") from None
    recorded = trajectory.messages
    obs, _ = env.reset(seed=trajectory.seed)
    produced = _messages(obs)
    verdict = None
    for message in recorded[len(produced) :]:
        if message.role != "assistant":
            continue
        produced.append(message)
        obs, _, terminated, truncated, info = env.step(message)
        produced.extend(_messages(obs))
        if terminated or truncated:
            verdict = Verdict.model_validate(info["verdict"])
            break
    env.close()
    divergence = None
    for i in range(max(len(recorded), len(produced))):
        exp = recorded[i] if i < len(recorded) else None
        act = produced[i] if i < len(produced) else None
        if exp is None or act is None or not _same(exp, act):
            divergence = Divergence(i, exp, act)
            break
    return ReplayReport(trajectory.id, len(recorded), divergence, trajectory.verdict, verdict)
