"""`AnswerEnv`: a tool environment whose episode ends with one `answer` call.

The interpreter and search environments share it: the agent works with its tools, then
calls `answer` once; the answer is graded as a short answer by the subclass.
"""

from __future__ import annotations

from typing import Any

from envsynth.errors import ToolError
from envsynth.schema import Verdict
from gyms.tool_env import ToolEnv


class AnswerEnv(ToolEnv):
    """Base of environments graded on a final `answer` (see the module doc)."""

    given: str | None = None

    def _record_answer(self, args: dict[str, Any]) -> str:
        """Keep the answer of an `answer` call (a number is taken as its text)."""
        value = args.get("answer")
        if isinstance(value, int | float) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str):
            raise ToolError('answer needs {"answer": "<the final answer>"}')
        self.given = value
        return "answer recorded"

    def _finished(self) -> bool:
        return self.given is not None

    def _grade(self) -> Verdict:
        if self.given is None:
            return Verdict(reward=0.0, reason="no answer was given")
        return self._grade_answer(self.given)

    def _grade_answer(self, given: str) -> Verdict:
        """The verdict on the agent's answer."""
        raise NotImplementedError
