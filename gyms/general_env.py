"""`envsynth/General-v0`: synthesized general-agent environments.

The tools and the verifier are the family's own, imported from `pipelines.general`, so the
code that accepted the task is the code that grades the agent.
"""

from __future__ import annotations

from typing import Any

import orjson

from envsynth.errors import ConfigError
from envsynth.schema import GeneralTask, Task, Verdict
from gyms.task_source import TaskSource
from gyms.tool_env import ToolEnv
from pipelines.general.episode import Episode
from pipelines.general.synthesize import MAX_TURNS


class GeneralEnv(ToolEnv):
    """A general-agent task: the environment's own tools over its own state.

    Args:
        task / task_id / dataset / db: which task to serve (see `TaskSource`).
        max_turns: assistant turns before truncation.
        render_mode: None or "ansi".
    """

    def __init__(
        self,
        task: Task | dict[str, Any] | None = None,
        task_id: str | None = None,
        dataset: str | None = None,
        db: str | None = None,
        max_turns: int = MAX_TURNS,
        render_mode: str | None = None,
    ):
        super().__init__(max_turns=max_turns, render_mode=render_mode)
        self.source = TaskSource("general", task=task, task_id=task_id, dataset=dataset, db=db)
        self.episode: Episode | None = None

    def _start(self, task: Task) -> None:
        if not isinstance(task.payload, GeneralTask):
            raise ConfigError(f"task {task.id} has no general payload")
        self.episode = Episode(task.payload)

    def _call_tool(self, name: str, arguments: str) -> str:
        assert self.episode is not None  # reset() ran: ToolEnv.step guarantees it
        result = self.episode.call(name, arguments)
        return result if isinstance(result, str) else orjson.dumps(result).decode()

    def _finished(self) -> bool:
        return self.episode is not None and self.episode.submitted

    def _grade(self) -> Verdict:
        assert self.episode is not None
        return self.episode.verdict()
