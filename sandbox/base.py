"""The `Sandbox` protocol every backend implements (DESIGN §8)."""

from __future__ import annotations

import abc
from types import TracebackType
from typing import Self

from envsynth.errors import EnvsynthError
from envsynth.registry import Registry
from sandbox.spec import ExecResult, SandboxSpec


class SandboxError(EnvsynthError):
    """The sandbox itself failed (could not start, died, lost its daemon): an infra error."""


class Sandbox(abc.ABC):
    """Where untrusted commands run. Use as a context manager; `close()` is idempotent."""

    spec: SandboxSpec

    @abc.abstractmethod
    def run(self, cmd: str, timeout: float | None = None) -> ExecResult:
        """Run `cmd` (a shell command; a Python cell for `KernelSandbox`) to completion.

        Args:
            cmd: what to run.
            timeout: seconds; `spec.wall_time_s` when None. On timeout the whole process
                tree the command started is killed.
        """

    @abc.abstractmethod
    def put_file(self, path: str, data: bytes) -> None:
        """Write `data` to `path` (relative paths are under the work directory)."""

    @abc.abstractmethod
    def get_file(self, path: str) -> bytes:
        """Read a file; raise `FileNotFoundError` if it does not exist."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release everything the sandbox holds; nothing of it may outlive this call."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


BACKENDS: Registry[type[Sandbox]] = Registry("sandbox backend")
