"""A controller killed with SIGKILL leaks nothing for long: self-destruct and the reaper."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import docker
import pytest
from conftest import factory
from docker.errors import NotFound

from sandbox import reaper
from sandbox.docker_sandbox import docker_client

BASE = "envsynth/base:bookworm"
# A controller that starts a sandbox and then waits to be killed. With HANG, it is killed in
# the window between the container's start and its shell's: nothing inside will notice.
CONTROLLER = """
import sys, time
from sandbox.docker_sandbox import DockerSandbox
if sys.argv[1] == "hang":
    def hang(self, container, keep=""):
        print(container.id, flush=True)
        time.sleep(600)
    DockerSandbox._start_shell = hang
sb = DockerSandbox()
print(sb.container_id, flush=True)
time.sleep(600)
"""
NEXT_START = "from sandbox.docker_sandbox import DockerSandbox; DockerSandbox().close()"


@pytest.fixture(scope="module")
def client() -> docker.DockerClient:
    factory("docker")
    return docker_client()


def _killed_controller(mode: str) -> str:
    """Start a controller, SIGKILL it once its container runs; return the container's id."""
    proc = subprocess.Popen(
        [sys.executable, "-c", CONTROLLER, mode], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        container_id = proc.stdout.readline().strip()
        assert container_id, "the controller did not start a sandbox"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    return container_id


def _exists(client: docker.DockerClient, container_id: str) -> bool:
    try:
        client.containers.get(container_id)
    except NotFound:
        return False
    return True


def test_sigkilled_controller_leaves_no_container(client: docker.DockerClient) -> None:
    container_id = _killed_controller("run")
    deadline = time.monotonic() + 10
    while _exists(client, container_id):
        assert time.monotonic() < deadline, "the killed controller's container is still there"
        time.sleep(0.1)


def test_next_start_reaps_a_container_no_shell_watches(client: docker.DockerClient) -> None:
    container_id = _killed_controller("hang")
    time.sleep(1)
    assert client.containers.get(container_id).status == "running", "it must be a real leak"
    subprocess.run([sys.executable, "-c", NEXT_START], check=True, timeout=120)
    assert not _exists(client, container_id)


def test_reaper_removes_dead_owners_and_expired_only(client: docker.DockerClient) -> None:
    dead_owner = json.loads(
        subprocess.run(
            [
                sys.executable,
                "-c",
                "import json; from sandbox.reaper import owner_labels; "
                "print(json.dumps(owner_labels(600)))",
            ],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    )
    cases = {
        "dead": dead_owner,
        "expired": reaper.owner_labels(-1),
        "live": reaper.owner_labels(600),
    }
    made = {
        name: client.containers.run(
            BASE,
            ["sleep", "120"],
            labels=labels,
            detach=True,
            auto_remove=True,
            network_mode="none",
            user="65534",
        )
        for name, labels in cases.items()
    }
    try:
        removed = reaper.reap(client)
        assert made["dead"].name in removed and made["expired"].name in removed
        assert made["live"].name not in removed
        assert not _exists(client, made["dead"].id) and not _exists(client, made["expired"].id)
        assert _exists(client, made["live"].id)
    finally:
        made["live"].remove(force=True)


def test_orphan_reasons() -> None:
    me = reaper.owner_labels(600)
    assert reaper.orphaned(me) is None
    assert reaper.orphaned({**me, reaper.DEADLINE: "1"}) == "past its deadline"
    reused = {**me, reaper.OWNER_START: "1"}  # same pid, another process: the owner is gone
    assert "is gone" in (reaper.orphaned(reused) or "")
    elsewhere = {**me, reaper.OWNER_HOST: "another-host/boot", reaper.OWNER_PID: "1"}
    assert reaper.orphaned(elsewhere) is None
