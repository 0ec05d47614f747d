"""The hostile-code battery on every backend: every case contained, nothing leaked."""

from __future__ import annotations

import importlib
import time

import pytest
from battery import CASES, Case
from conftest import factory

from sandbox.spec import SandboxSpec

BACKENDS = ["local", "docker", "kernel"]
MODULES = {"local": "sandbox.local", "docker": "sandbox.docker_sandbox", "kernel": "sandbox.kernel"}
SPEC = SandboxSpec(memory_mb=256, pids=64, disk_mb=64, output_bytes=1 << 20, wall_time_s=10)


@pytest.fixture(scope="module", params=BACKENDS)
def session(request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    make = factory(request.param)
    with make(SPEC) as sb:
        yield request.param, sb
    leaked = importlib.import_module(MODULES[request.param]).leaked()
    assert not leaked, f"{request.param} left behind: {leaked}"


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_case_is_contained(session, case: Case) -> None:  # type: ignore[no-untyped-def]
    backend, sb = session
    cmd = case.python if backend == "kernel" else case.shell
    t0 = time.monotonic()
    result = sb.run(cmd, timeout=case.timeout)
    assert time.monotonic() - t0 < case.timeout + 20, "the controller was not responsive"
    case.check(result)
    alive = sb.run("print('alive')" if backend == "kernel" else "echo alive", timeout=10)
    assert alive.exit_code == 0 and alive.stdout.strip() == "alive", (case.name, alive)
