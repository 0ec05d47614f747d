"""A kernel process started somewhere isolated, as the controller holds it.

Both ways to isolate a kernel (a Docker container, Linux namespaces) end in the same shape:
an init process that is the root of the sandbox's process tree, the kernel as its child,
and ZMQ sockets in a host directory. This module holds that shape and what follows from it
alone: death noticed through a pidfd, interrupts, and killing whatever else is running in
the sandbox. Both init and kernel are host pids; the controller runs in the host's pid
namespace, as root or as the user who started them.
"""

from __future__ import annotations

import abc
import functools
import json
import os
import secrets
import select
import shutil
import signal
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sandbox.base import SandboxError
from sandbox.kernel_client import KernelClient
from sandbox.kernel_proctree import ProcessTree, Sweep, children, is_zombie
from sandbox.spec import SandboxSpec

# The kernel binds these "ports": with the ipc transport they are suffixes of socket paths.
PORTS = {"shell_port": 1, "iopub_port": 2, "stdin_port": 3, "control_port": 4, "hb_port": 5}
BOOT_SOURCE = Path(__file__).with_name("kernel_boot.py")
# Files move between controller and kernel in pieces of this size.
FILE_CHUNK = 1 << 20
DIR_PREFIX = "envsynth-kernel-"


def socket_dir() -> Path:
    """A new host dir for one kernel's sockets, named after this process.

    The first call of a process removes the dirs of processes that are gone (killed before
    they could clean up).
    """
    _remove_stale_socket_dirs()
    return Path(tempfile.mkdtemp(prefix=f"{DIR_PREFIX}{os.getpid()}-"))


@functools.cache
def _remove_stale_socket_dirs() -> None:
    for path in Path(tempfile.gettempdir()).glob(f"{DIR_PREFIX}*"):
        owner = path.name[len(DIR_PREFIX) :].split("-")[0]
        if owner.isdigit() and not Path(f"/proc/{owner}").exists():
            shutil.rmtree(path, ignore_errors=True)


def leaked_socket_dirs() -> list[str]:
    """This process's kernel socket dirs that still exist."""
    mine = Path(tempfile.gettempdir()).glob(f"{DIR_PREFIX}{os.getpid()}-*")
    return [f"socket dir {path}" for path in sorted(mine)]


def connection_info(ip: str, key: str) -> dict[str, Any]:
    """Connection info for a kernel whose sockets are `{ip}-{port}` (ipc transport)."""
    return {
        "transport": "ipc",
        "ip": ip,
        "key": key,
        "signature_scheme": "hmac-sha256",
        "kernel_name": "",
        **PORTS,
    }


def write_connection_file(directory: Path, inside: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Write `conn.json` for a kernel that sees `directory` as `inside`.

    Returns:
        (the host's connection info, the kernel's), which differ only in the socket paths.
    """
    key = secrets.token_hex(16)
    kernel_side = connection_info(f"{inside}/k", key)
    (directory / "conn.json").write_text(json.dumps(kernel_side))
    return connection_info(f"{directory}/k", key), kernel_side


def boot_command(python: str, output_chars: int, lifeline: str, connection_file: str) -> list[str]:
    """The command that starts the kernel under the sandbox's `python`."""
    return [
        python,
        "-c",
        BOOT_SOURCE.read_text(),
        str(output_chars),
        lifeline,
        "-f",
        connection_file,
        "--HistoryManager.enabled=False",
        "--Application.log_level=50",
        # Only text reaches the agent: computing the other nine formats costs a millisecond.
        "--DisplayFormatter.active_types=text/plain",
        # ipykernel sleeps this long after each cell "to let output flush"; ours waits for
        # the kernel's idle status instead.
        "--Kernel._execute_sleep=0",
    ]


def max_message_bytes(spec: SandboxSpec) -> int:
    """The largest message the controller accepts from a kernel.

    Output is capped at the source, so only a kernel that undid that cap, or a huge repr or
    traceback, comes near: those messages are dropped and the result is marked truncated.
    JSON may spell one character in six bytes; files move in chunks of `FILE_CHUNK` bytes.
    """
    return max(6 * spec.output_bytes, 2 * FILE_CHUNK) + (1 << 20)


@dataclass(frozen=True)
class Death:
    """How a kernel ended, as far as the controller can tell."""

    oom_killed: bool
    description: str


class KernelProcess(abc.ABC):
    """A started, ready kernel: its connection, its pids, and how to stop it.

    Attributes:
        connection: the host's connection info (socket paths as the controller sees them).
        init_pid: host pid of the sandbox's init, the root of every process in it.
        client: the controller's channels to the kernel.
        pid: host pid of the kernel.
        death_fd: a pidfd of the kernel; readable once the kernel has exited.
        tree: the sandbox's processes.
    """

    connection: dict[str, Any]
    _client: KernelClient | None = None
    init_pid: int
    pid: int
    death_fd: int
    tree: ProcessTree

    def _watch(self, init_pid: int, timeout: float, also_counted: tuple[int, ...] = ()) -> None:
        """Find the kernel under `init_pid` and open its pidfd.

        Args:
            init_pid: the sandbox's init.
            timeout: seconds the kernel may take to appear.
            also_counted: our own processes in the sandbox's pids cgroup besides init and
                the kernel.

        Raises:
            SandboxError: the kernel did not start (or died at once).
        """
        deadline = time.monotonic() + timeout
        while not (kids := [p for p in children(init_pid) if not is_zombie(p)]):
            if time.monotonic() > deadline or is_zombie(init_pid):
                raise SandboxError("the kernel's sandbox started but the kernel did not")
            time.sleep(0.005)
        self.init_pid, self.pid = init_pid, kids[0]
        self.death_fd = os.pidfd_open(self.pid)
        self.tree = ProcessTree(init_pid, self.pid, also_counted)

    def is_alive(self) -> bool:
        return not select.select([self.death_fd], [], [], 0)[0]

    @property
    def client(self) -> KernelClient:
        """The controller's channels to the kernel.

        Raises:
            SandboxError: the kernel was destroyed (or never became ready).
        """
        if self._client is None:
            raise SandboxError("the kernel has no connection: it was destroyed")
        return self._client

    def interrupt(self) -> None:
        """Send the kernel SIGINT: a KeyboardInterrupt in the running cell."""
        try:
            os.kill(self.pid, signal.SIGINT)
        except ProcessLookupError:
            pass

    def kill_strays(self) -> Sweep:
        """Kill every process in the sandbox but its init and the kernel (see `ProcessTree`)."""
        return self.tree.sweep()

    @abc.abstractmethod
    def death(self) -> Death:
        """Why the kernel, which has exited, ended."""

    @abc.abstractmethod
    def destroy(self) -> None:
        """Kill the kernel and everything in its sandbox, and remove the sandbox. Idempotent."""

    def _close_fd(self) -> None:
        if getattr(self, "death_fd", -1) >= 0:
            os.close(self.death_fd)
            self.death_fd = -1
