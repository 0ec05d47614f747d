"""The sandbox contracts: the limits a sandbox runs under and the result of one command."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class SandboxSpec(BaseModel):
    """Limits of one sandbox. The defaults are what an agent's rollout gets.

    Attributes:
        cpus: CPU share (1.0 = one core).
        memory_mb: memory limit; for Docker also memory + swap, so there is no swap.
        pids: most processes and threads alive at once.
        disk_mb: size of the writable work directory (a tmpfs in Docker).
        wall_time_s: default timeout of one command.
        output_bytes: most bytes kept of stdout and of stderr, each; the rest is dropped.
        network: whether the sandbox can reach the network (only when building environments).
        image: container image (Docker backends only).
        workdir: working directory inside the sandbox.
        workdir_from_image: start the work dir with the image's own content at that path (a
            repository environment's checkout and dependencies) on a fresh volume that goes
            with the container, instead of an empty tmpfs. `disk_mb` then caps only /tmp.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    cpus: float = Field(1.0, gt=0, le=64)
    memory_mb: int = Field(512, ge=16)
    pids: int = Field(128, ge=8)
    disk_mb: int = Field(256, ge=1)
    wall_time_s: float = Field(30.0, gt=0)
    output_bytes: int = Field(1 << 20, ge=1024)
    network: bool = False
    image: str = "envsynth/base:bookworm"
    workdir: str = "/work"
    workdir_from_image: bool = False


class ExecResult(BaseModel):
    """What one command did. A status, never text to parse.

    `exit_code` is None when the command did not finish (timed out or the sandbox died).
    """

    model_config = ConfigDict(extra="forbid")

    exit_code: int | None
    stdout: str = ""
    stderr: str = ""
    timed_out: bool = False
    oom_killed: bool = False
    truncated: bool = False
    duration_s: float = 0.0

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out
