"""Rollouts step environments with a text backend's raw completion when it has one."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from envsynth.policy import PolicyOutput, PolicyRequest
from envsynth.rollout import EpisodeSpec, rollout
from envsynth.schema import Message, PolicyInfo


class BrokenTextPolicy:
    """Always emits a tool call whose JSON never closes, as a small model might."""

    info = PolicyInfo(name="broken-text")

    async def agenerate(self, requests: Sequence[PolicyRequest]) -> list[PolicyOutput]:
        raw = '</think><tool_call>{"name": "submit", "arguments": {</tool_call>'
        return [
            PolicyOutput(Message(role="assistant", content=raw), raw_text=raw) for _ in requests
        ]


def test_malformed_completion_is_an_error_observation(small_db: Path) -> None:
    spec = EpisodeSpec({"dataset": "general", "db": str(small_db), "max_turns": 3}, seed=0)
    (traj,) = rollout("envsynth/General-v0", BrokenTextPolicy(), [spec])
    errors = [m for m in traj.messages if m.role == "tool"]
    # Without raw_text the env would take the message as a final answer and end at once.
    assert traj.truncated and not traj.terminated
    assert len(errors) == 3 and all("not valid JSON" in m.content for m in errors)
    assert traj.verdict is not None and traj.verdict.reward == 0.0
