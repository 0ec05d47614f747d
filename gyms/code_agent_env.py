"""`envsynth/CodeAgent-v0`: fix an issue in a real repository, graded by its own tests.

The agent works in a sandbox holding the repository at the base commit, without the test
patch or the gold patch. On `submit` (or when the episode ends any other way) its diff is
graded by `pipelines.code_agent.grading` — the runner and JUnit reading that accepted the
task — in a fresh sandbox the agent never touched (DESIGN §3, §7).

`sandbox="docker"` (default) runs the agent in a hardened container of the task's instance
image, with the repository's dependencies; `sandbox="local"` copies the repository into a
`LocalSandbox` (the host's tools, no dependencies) — for replays on machines without the
image's toolchain; grading always runs in Docker.
"""

from __future__ import annotations

import io
import tarfile
from typing import Any

from envsynth.errors import ConfigError
from envsynth.schema import CodeInstance, Message, Task, Verdict
from gyms.task_source import TaskSource
from gyms.tool_env import ToolEnv
from pipelines.code_agent.grading import Grade, grade, task_recipe
from pipelines.code_agent.recipes import REPO_DIR
from pipelines.code_agent.workspace import Workspace
from sandbox.base import Sandbox
from sandbox.spec import SandboxSpec

MAX_TURNS = 50
BACKENDS = ("docker", "local")


class CodeAgentEnv(ToolEnv):
    """A code task: shell and file tools over the repository; reward from its tests.

    Args:
        task / task_id / dataset / db: which task to serve (see `TaskSource`).
        sandbox: "docker" or "local" (where the agent's tools run).
        max_turns: assistant turns before truncation.
        render_mode: None or "ansi".
    """

    def __init__(
        self,
        task: Task | dict[str, Any] | None = None,
        task_id: str | None = None,
        dataset: str | None = None,
        db: str | None = None,
        sandbox: str = "docker",
        max_turns: int = MAX_TURNS,
        render_mode: str | None = None,
    ):
        super().__init__(max_turns=max_turns, render_mode=render_mode)
        if sandbox not in BACKENDS:
            raise ConfigError(f"sandbox must be one of {', '.join(BACKENDS)}, not {sandbox!r}")
        self.source = TaskSource("code", task=task, task_id=task_id, dataset=dataset, db=db)
        self.backend = sandbox
        self.workspace: Workspace | None = None
        self.submitted = False
        self.last_grade: Grade | None = None

    def _start(self, task: Task) -> None:
        if not isinstance(task.payload, CodeInstance) or "image" not in task.payload.extra:
            raise ConfigError(f"task {task.id} is not an accepted code task (no instance image)")
        self._close_workspace()
        image, _ = task_recipe(task.payload)
        # LocalSandbox starts every command afresh in its work dir: no `cd` survives a call.
        self.workspace = Workspace(
            _agent_sandbox(self.backend, image), fresh_process=self.backend == "local"
        )
        self.submitted, self.last_grade = False, None

    def _call_tool(self, name: str, arguments: str) -> str:
        assert self.workspace is not None  # reset() ran: ToolEnv.step guarantees it
        result = self.workspace.call(name, arguments)
        if name == "submit":
            self.submitted = True
        return result

    def _finished(self) -> bool:
        return self.submitted

    def _grade(self) -> Verdict:
        assert self.workspace is not None and self.task is not None
        assert isinstance(self.task.payload, CodeInstance)
        diff = self.workspace.diff()
        self._close_workspace()
        self.last_grade = grade(self.task.payload, diff)
        return self.last_grade.verdict

    def _after(
        self, new: list[Message], *, submitted: bool, ended: bool, format_error: bool
    ) -> tuple[str, float, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = super()._after(
            new, submitted=submitted, ended=ended, format_error=format_error
        )
        if self.last_grade is not None and (terminated or truncated):
            info["tests"] = self.last_grade.tests
            info["dropped_test_edits"] = self.last_grade.dropped_test_edits
        return obs, reward, terminated, truncated, info

    def close(self) -> None:
        self._close_workspace()
        super().close()

    def _close_workspace(self) -> None:
        if self.workspace is not None:
            self.workspace.sandbox.close()
            self.workspace = None


def _agent_sandbox(backend: str, image: str) -> Sandbox:
    if backend == "docker":
        from sandbox.docker_sandbox import DockerSandbox

        return DockerSandbox(
            SandboxSpec(image=image, workdir_from_image=True, memory_mb=2048, pids=512, cpus=2.0)
        )
    from sandbox.docker_sandbox import docker_client
    from sandbox.local import LocalSandbox

    # The repository (with what the environment installed in it) comes out of the image.
    container = docker_client().containers.create(image, ["true"])
    try:
        stream, _ = container.get_archive(REPO_DIR)
        data = b"".join(stream)
    finally:
        container.remove(force=True, v=True)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        size_mb = sum(m.size for m in tar.getmembers()) // (1 << 20)
    sb = LocalSandbox(SandboxSpec(workdir="/work", disk_mb=max(256, 3 * size_mb + 64)))
    try:
        sb.put_file("/work/.repo.tar", data)  # files go in and out under the work dir only
        r = sb.run("tar -xf .repo.tar --no-same-owner -C /work && rm .repo.tar", 120)
        if r.exit_code != 0:
            raise ConfigError(f"could not unpack the repository locally: {r.stderr[-500:]}")
    except BaseException:
        sb.close()
        raise
    return sb
