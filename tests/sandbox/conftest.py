"""Sandbox backends under test. With CI=true a backend that cannot run fails the run."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sandbox.base import Sandbox
from sandbox.spec import SandboxSpec

HOST_SECRET = Path("/etc/envsynth-host-secret")
Factory = Callable[[SandboxSpec], Sandbox]


def _require(backend: str, why: str | None) -> None:
    """Skip a backend that cannot run here, except in CI, where that is a failure."""
    if why is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"{backend} sandbox cannot run in CI: {why}")
    pytest.skip(f"{backend} sandbox unavailable: {why}")


def factory(backend: str) -> Factory:
    if backend == "local":
        from sandbox.local import LocalSandbox, unavailable_reason

        _require("local", unavailable_reason())
        return LocalSandbox
    if backend == "docker":
        from sandbox.docker_sandbox import DockerSandbox, unavailable_reason

        _require("docker", unavailable_reason())
        return DockerSandbox
    if backend == "kernel":
        from sandbox.kernel import KernelSandbox, unavailable_reason

        _require("kernel", unavailable_reason())
        return KernelSandbox
    raise ValueError(backend)


@pytest.fixture(scope="session", autouse=True)
def host_secret() -> Iterator[str]:
    """A file on the host that no sandbox may read."""
    HOST_SECRET.write_text("ENVSYNTH-HOST-SECRET\n")
    yield "ENVSYNTH-HOST-SECRET"
    HOST_SECRET.unlink(missing_ok=True)
