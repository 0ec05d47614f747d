"""A kernel inside a hardened Docker container, reached over ZMQ ipc sockets.

The container has no network at all: the kernel binds Unix sockets in a host directory that
is bind-mounted into it, the only host path it can see. Root is read-only, the work dir and
/tmp are sized tmpfs, all capabilities are dropped, no new privileges, a non-root user, pids
/ memory (= memory + swap) / cpu / open-files limits, and docker's init as pid 1, so the
kernel can be killed from inside and the container ends when the kernel does.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import socket
from typing import Any

from docker.types import LogConfig, Ulimit

from sandbox import reaper
from sandbox.base import SandboxError
from sandbox.docker_sandbox import docker_client as new_docker_client
from sandbox.kernel_client import KernelClient
from sandbox.kernel_process import (
    Death,
    KernelProcess,
    boot_command,
    max_message_bytes,
    socket_dir,
    write_connection_file,
)
from sandbox.spec import SandboxSpec

BACKEND = "kernel"
INSIDE = "/run/envsynth-kernel"
DEFAULT_PYTHON = "/opt/py/bin/python"
NOBODY = 65534
# The reaper removes a kernel container this long after its start, should it still exist.
LIFETIME_S = 24 * 3600.0


@functools.cache
def docker_client() -> Any:
    """The docker SDK client this process shares among its kernels."""
    return new_docker_client()


def leaked_containers() -> list[str]:
    """This process's kernel containers that still exist."""
    if docker_unavailable_reason() is not None:
        return []
    return [
        f"container {c.name} ({c.status})"
        for c in reaper.owned_by_this_process(docker_client())
        if c.labels.get("envsynth.backend") == BACKEND
    ]


def docker_unavailable_reason() -> str | None:
    try:
        docker_client()
    except Exception as exc:  # noqa: BLE001 - any failure means the same: no usable daemon
        return str(exc)
    return None


class ContainerKernel(KernelProcess):
    """Start a kernel in a new container; ready to use when the constructor returns.

    Args:
        spec: the limits.
        image: an image with `python` and ipykernel in it.
        python: the interpreter inside the image.
        ready_timeout: seconds the kernel may take to start.
    """

    def __init__(
        self,
        spec: SandboxSpec,
        image: str,
        python: str = DEFAULT_PYTHON,
        ready_timeout: float = 60.0,
    ):
        self.spec = spec
        self.container: Any = None
        self.lifeline: socket.socket | None = None
        self.death_fd = -1
        self.dir = socket_dir()
        try:
            self.connection, _ = write_connection_file(self.dir, INSIDE)
            self.container = self._run_container(image, python)
            self._watch(self.container.attrs["State"]["Pid"], ready_timeout)
            self._client = KernelClient(self.connection, self.death_fd, max_message_bytes(spec))
            self._client.wait_ready(ready_timeout)
            self._lock_socket_dir()
        except SandboxError as exc:
            logs = self.logs()
            self.destroy()
            raise SandboxError(f"{exc}; its output:\n{logs[-2000:]}") from None
        except BaseException:
            self.destroy()
            raise

    def _run_container(self, image: str, python: str) -> Any:
        uid = NOBODY if os.geteuid() == 0 else os.geteuid()
        gid = NOBODY if os.geteuid() == 0 else os.getegid()
        os.chmod(self.dir, 0o700)
        if os.geteuid() == 0:
            os.chown(self.dir, uid, gid)
            os.chown(self.dir / "conn.json", uid, gid)
        spec, size = self.spec, f"size={self.spec.disk_mb}m,exec"
        # With a working dir, docker's copy of the image's dir decides the mode: own it instead.
        tmpfs = {spec.workdir: f"{size},uid={uid},gid={gid}", "/tmp": f"{size},mode=1777"}
        reaper.reap_once(docker_client())
        container = docker_client().containers.run(
            image,
            boot_command(python, spec.output_bytes, f"{INSIDE}/lifeline", f"{INSIDE}/conn.json"),
            detach=True,
            init=True,
            user=f"{uid}:{gid}",
            working_dir=spec.workdir,
            network_mode="bridge" if spec.network else "none",
            read_only=True,
            tmpfs=tmpfs,
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
            ipc_mode="private",
            mem_limit=f"{spec.memory_mb}m",
            memswap_limit=f"{spec.memory_mb}m",
            pids_limit=spec.pids,
            nano_cpus=int(spec.cpus * 1e9),
            ulimits=[Ulimit(name="nofile", soft=1024, hard=1024)],
            volumes={str(self.dir): {"bind": INSIDE, "mode": "rw"}},
            environment={
                "HOME": spec.workdir,
                "IPYTHONDIR": "/tmp/.ipython",
                "MPLBACKEND": "Agg",
                "PYTHONDONTWRITEBYTECODE": "1",
            },
            labels={**reaper.owner_labels(LIFETIME_S), "envsynth.backend": BACKEND},
            # The kernel's own stdout is not the cell's; keep only a little of it, for post
            # mortems, so that writing there cannot fill the host's disk.
            log_config=LogConfig(type="json-file", config={"max-size": "256k", "max-file": "1"}),
        )
        container.reload()
        return container

    def _lock_socket_dir(self) -> None:
        """Take the socket dir back from the kernel, then hold its lifeline."""
        if os.geteuid() == 0:
            # From now on the kernel cannot swap a socket for a link to some host socket.
            os.chown(self.dir, 0, 0)
        self.lifeline = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.lifeline.connect(str(self.dir / "lifeline"))

    def death(self) -> Death:
        try:
            self.container.wait(timeout=5)
            self.container.reload()
        except Exception:  # noqa: BLE001 - the daemon lost it: say what we know
            return Death(False, "the kernel's container vanished")
        state = self.container.attrs["State"]
        if state.get("OOMKilled"):
            return Death(True, f"the kernel ran out of memory ({self.spec.memory_mb} MB)")
        code = int(state.get("ExitCode", -1))
        if code > 128:
            return Death(False, f"the kernel was killed by signal {code - 128}")
        return Death(False, f"the kernel exited with status {code}")

    def logs(self) -> str:
        """The kernel process's own output (the last 256 KB at most), for post mortems."""
        with contextlib.suppress(Exception):
            return self.container.logs().decode("utf-8", "replace")
        return ""

    def destroy(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        if self.container is not None:
            with contextlib.suppress(Exception):
                self.container.remove(force=True)
            self.container = None
        if self.lifeline is not None:
            self.lifeline.close()
            self.lifeline = None
        self._close_fd()
        shutil.rmtree(self.dir, ignore_errors=True)
