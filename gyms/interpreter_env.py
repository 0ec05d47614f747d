"""`envsynth/Interpreter-v0`: answer a problem by running Python in a live Jupyter kernel.

The agent's `python` calls run in one kernel per episode, isolated (a hardened container
when Docker answers, else Linux namespaces) and holding the task's files; `answer` ends the
episode. The answer is graded by `pipelines.answers.check_answer`, the check
that accepted the task, against the answer the pipeline verified in a kernel (DESIGN §3).
"""

from __future__ import annotations

from typing import Any

from envsynth.errors import ConfigError, ToolError, tool_arguments
from envsynth.schema import InterpreterProblem, Task, Verdict
from gyms.answer_env import AnswerEnv
from gyms.task_source import TaskSource
from pipelines.answers import check_answer
from pipelines.interpreter.session import KernelSession, observation
from sandbox.kernel import Isolation

MAX_TURNS = 20


class InterpreterEnv(AnswerEnv):
    """An interpreter task: `python` runs cells in the episode's kernel, `answer` ends it.

    Args:
        task / task_id / dataset / db: which task to serve (see `TaskSource`).
        isolation: where the kernel runs: "docker", "local" or "auto".
        max_turns: assistant turns before truncation.
        render_mode: None or "ansi".
    """

    def __init__(
        self,
        task: Task | dict[str, Any] | None = None,
        task_id: str | None = None,
        dataset: str | None = None,
        db: str | None = None,
        isolation: Isolation = "auto",
        max_turns: int = MAX_TURNS,
        render_mode: str | None = None,
    ):
        super().__init__(max_turns=max_turns, render_mode=render_mode)
        self.source = TaskSource("interpreter", task=task, task_id=task_id, dataset=dataset, db=db)
        self.isolation = isolation
        self.session: KernelSession | None = None

    def _start(self, task: Task) -> None:
        if not isinstance(task.payload, InterpreterProblem):
            raise ConfigError(f"task {task.id} has no interpreter payload")
        self._close_session()
        self.session = KernelSession(task.payload.extra.get("files"), isolation=self.isolation)
        self.given = None

    def _call_tool(self, name: str, arguments: str) -> str:
        assert self.session is not None  # reset() ran: ToolEnv.step guarantees it
        args = tool_arguments(arguments, name)
        if name == "python":
            code = args.get("code")
            if not isinstance(code, str):
                raise ToolError('python needs {"code": "<Python source>"}')
            return observation(self.session.run(code))
        if name == "answer":
            return self._record_answer(args)
        raise ToolError(f"unknown tool {name!r}; available tools: python, answer")

    def _grade(self) -> Verdict:
        self._close_session()  # the episode is over: its kernel goes now
        return super()._grade()

    def _grade_answer(self, given: str) -> Verdict:
        assert self.task is not None and isinstance(self.task.payload, InterpreterProblem)
        payload = self.task.payload
        return check_answer(given, payload.answer, payload.extra.get("tolerance", 0.0))

    def close(self) -> None:
        self._close_session()
        super().close()

    def _close_session(self) -> None:
        if self.session is not None:
            self.session.close()
            self.session = None
