"""`ToolEnv`: the Gymnasium face of every task kind (DESIGN §7).

An action is one assistant message: text in the chat template, an OpenAI-format dict, or a
`Message`. The observation is the JSON list of only the new messages since the last step
(tool results in the `tool` role), so trainers never re-tokenize the history. Tool schemas
and the system prompt come in the reset `info`. Reward comes at the end from the task's
verifier, which runs outside the agent's reach; components and `infra_error` go in `info`.

Subclasses set `source` (where their tasks come from) and say how to start a task and how to
run its tools; this class owns the loop.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import orjson
from pydantic import ValidationError

from envsynth.chat_template import ChatFormatError, parse_assistant
from envsynth.errors import ConfigError, ToolError
from envsynth.schema import Message, Task, ToolCall, Verdict
from gyms.spaces import UnicodeText
from gyms.task_source import TaskSource

log = logging.getLogger(__name__)
Action = str | dict[str, Any] | Message


def parse_action(action: Action, turn: int) -> Message:
    """Any accepted action form → an assistant Message; `ChatFormatError` if it is malformed."""
    if isinstance(action, Message):
        return action
    if isinstance(action, str):
        return parse_assistant(action, turn=turn)
    if isinstance(action, dict):
        calls = []
        for i, c in enumerate(action.get("tool_calls") or []):
            fn = c.get("function", c) if isinstance(c, dict) else None
            if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
                raise ChatFormatError(f"tool call {i + 1} has no function name")
            args = fn.get("arguments", "{}")
            calls.append(
                ToolCall(
                    id=str(c.get("id") or f"call_{turn}_{i}"),
                    name=fn["name"],
                    arguments=args if isinstance(args, str) else orjson.dumps(args).decode(),
                )
            )
        try:
            return Message(
                role="assistant",
                content=action.get("content") or "",
                reasoning=action.get("reasoning") or action.get("reasoning_content"),
                tool_calls=calls or None,
            )
        except ValidationError as e:
            raise ChatFormatError(f"not an assistant message: {e.errors()[0]['msg']}") from None
    raise ChatFormatError(
        f"an action must be text, a dict or a Message, not {type(action).__name__}"
    )


def _dump(messages: Sequence[Message]) -> str:
    return orjson.dumps([m.model_dump(exclude_none=True) for m in messages]).decode()


class ToolEnv(gym.Env[str, Action]):
    """Base environment: one task per episode, tools as actions, the verifier as reward.

    Args:
        max_turns: assistant turns before the episode is truncated.
        render_mode: None or "ansi" (the transcript as text).
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 4}
    source: TaskSource  # set by each subclass: where its tasks come from

    def __init__(self, max_turns: int = 30, render_mode: str | None = None):
        if render_mode not in (None, "ansi"):
            raise ConfigError(f"render_mode must be None or 'ansi', not {render_mode!r}")
        if max_turns < 1:
            raise ConfigError("max_turns must be at least 1")
        self.max_turns, self.render_mode = max_turns, render_mode
        self.observation_space = UnicodeText()
        self.action_space = UnicodeText()
        self.task: Task | None = None
        self.messages: list[Message] = []
        self.turns = 0
        self.done = True

    # ---- for subclasses ---------------------------------------------------------------
    def _select_task(self, seed: int | None, options: dict[str, Any]) -> Task:
        """The episode's task: from the subclass's `source` (see `TaskSource.select`)."""
        return self.source.select(seed, self.np_random, options)

    def _start(self, task: Task) -> None:
        """Set up the episode's private state for `task`."""
        raise NotImplementedError

    def _call_tool(self, name: str, arguments: str) -> str:
        """Run one call and return its text result; raise `ToolError` for the agent's mistakes."""
        raise NotImplementedError

    def _finished(self) -> bool:
        """Whether the agent has submitted (after the last tool call)."""
        raise NotImplementedError

    def _grade(self) -> Verdict:
        raise NotImplementedError

    # ---- the loop ---------------------------------------------------------------------
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[str, dict[str, Any]]:
        super().reset(seed=seed)
        task = self._select_task(seed, options or {})
        self.task = task
        self._start(task)
        self.messages = [
            Message(role="system", content=task.system_prompt),
            Message(role="user", content=task.instruction),
        ]
        self.turns, self.done = 0, False
        info = {
            "task_id": task.id,
            "env_id": task.env_id,
            "kind": task.kind,
            "family": task.family,
            "system_prompt": task.system_prompt,
            "tools": [t.openai_schema() for t in task.tools],
        }
        return _dump(self.messages), info

    def step(self, action: Action) -> tuple[str, float, bool, bool, dict[str, Any]]:
        if self.done or self.task is None:
            raise gym.error.ResetNeeded(
                "call reset() before step(), and again after an episode ends"
            )
        self.turns += 1
        try:
            message = parse_action(action, self.turns)
        except ChatFormatError as e:
            new = [Message(role="tool", name="error", content=f"Error: {e}. Answer again.")]
            return self._after(new, submitted=False, ended=False, format_error=True)
        self.messages.append(message)
        new = [self._tool_message(call) for call in message.tool_calls or ()]
        ended = not message.tool_calls
        return self._after(new, submitted=self._finished(), ended=ended, format_error=False)

    def _tool_message(self, call: ToolCall) -> Message:
        try:
            content = self._call_tool(call.name, call.arguments)
        except ToolError as e:
            content = f"Error: {e}"
        return Message(role="tool", content=content, tool_call_id=call.id, name=call.name)

    def _after(
        self, new: list[Message], *, submitted: bool, ended: bool, format_error: bool
    ) -> tuple[str, float, bool, bool, dict[str, Any]]:
        self.messages.extend(new)
        terminated = submitted or ended
        truncated = not terminated and self.turns >= self.max_turns
        info: dict[str, Any] = {"turn": self.turns, "format_error": format_error}
        reward = 0.0
        if terminated or truncated:
            self.done = True
            verdict = self._safe_grade()
            reward = verdict.reward
            info.update(
                verdict=verdict.model_dump(),
                reward_components=verdict.components,
                infra_error=verdict.infra_error,
            )
        return _dump(new), reward, terminated, truncated, info

    def _safe_grade(self) -> Verdict:
        # A verifier crash is an infrastructure failure, not the agent's: flag it so trainers
        # mask the sample instead of scoring it 0.
        try:
            return self._grade()
        except Exception as e:  # noqa: BLE001
            log.exception("verifier failed on task %s", self.task.id if self.task else "?")
            return Verdict(
                reward=0.0, reason=f"verifier error: {type(e).__name__}: {e}", infra_error=True
            )

    def render(self) -> str | None:
        if self.render_mode != "ansi":
            return None
        return "\n".join(
            f"[{m.role}] {m.content}"
            + "".join(f"\n  -> {c.name}({c.arguments})" for c in m.tool_calls or ())
            for m in self.messages
        )
