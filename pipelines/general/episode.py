"""One live episode of a general task: the state, the tools bound to it, and the grading.

Both the integrity checks of the pipeline and `gyms.GeneralEnv` run tasks through this
class, so the code that accepted a task is the code that grades the agent.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from envsynth.errors import ConfigError, ToolError
from envsynth.schema import GeneralTask, Verdict
from pipelines.general.family import FAMILIES, Call, Family, copy_state, load_families
from pipelines.general.tools import Tool


class Episode:
    """Tools of one task bound to a private copy of its initial state."""

    def __init__(self, payload: GeneralTask):
        load_families()
        self.family: Family = FAMILIES.get(payload.family)
        if self.family.version != payload.family_version:
            raise ConfigError(
                f"task was made by {payload.family} v{payload.family_version}, but the installed "
                f"family is v{self.family.version}; regenerate the dataset"
            )
        variant = self.family.variant(payload.variant)
        self.tools: dict[str, Tool] = self.family.toolset(variant)
        self.goal = payload.goal
        self.state = copy_state(payload.state)
        self.answer: dict[str, Any] | None = None
        self.submitted = False

    def call(self, name: str, arguments: str | Mapping[str, Any]) -> Any:
        """Run one tool call. A `ToolError` is the agent's fault and is shown to it."""
        if self.submitted:
            raise ToolError("the task was already submitted; no more tool calls are accepted")
        tool = self.tools.get(name)
        if tool is None:
            known = ", ".join(self.tools)
            raise ToolError(f"unknown tool {name!r}; available tools: {known}")
        kwargs = tool.parse(arguments if isinstance(arguments, str) else dict(arguments))
        if name == "submit":
            self.submitted = True
            self.answer = kwargs
            return "submitted"
        return tool.fn(self.state, **kwargs)

    def verdict(self) -> Verdict:
        """The family's verifier on the current state and submitted answer."""
        return self.family.verify(self.state, self.answer, self.goal)


def run_calls(payload: GeneralTask, calls: Iterable[Call]) -> Verdict:
    """Replay scripted calls on a fresh episode and grade it; tool errors are part of the run."""
    episode = Episode(payload)
    for call in calls:
        try:
            episode.call(call.name, call.arguments)
        except ToolError:
            continue
    return episode.verdict()
