"""Sandbox backends under test. With CI=true a backend that cannot run fails the run."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from needs import require

from sandbox.base import Sandbox
from sandbox.spec import SandboxSpec

HOST_SECRET = Path("/etc/envsynth-host-secret")
Factory = Callable[[SandboxSpec], Sandbox]


def factory(backend: str) -> Factory:
    if backend == "local":
        from sandbox.local import LocalSandbox, unavailable_reason

        require("the local sandbox", unavailable_reason())
        return LocalSandbox
    if backend == "docker":
        from sandbox.docker_sandbox import DockerSandbox, unavailable_reason

        require("the docker sandbox", unavailable_reason())
        return DockerSandbox
    if backend == "kernel":
        from sandbox.kernel import KernelSandbox, unavailable_reason

        require("the kernel sandbox", unavailable_reason())
        return KernelSandbox
    raise ValueError(backend)


@pytest.fixture(scope="session", autouse=True)
def host_secret() -> Iterator[str]:
    """A file on the host that no sandbox may read."""
    HOST_SECRET.write_text("ENVSYNTH-HOST-SECRET\n")
    yield "ENVSYNTH-HOST-SECRET"
    HOST_SECRET.unlink(missing_ok=True)
