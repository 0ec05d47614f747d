"""A kernel in Linux namespaces, for machines without Docker, reached over ZMQ ipc sockets.

The jail (see `sandbox.kernel_jail_init` for its process tree) has user, pid, mount, net
(only `lo`), ipc and uts namespaces and a private tmpfs root that holds the host's system
directories and this Python's prefix read-only, and the socket directory: no other host
file is there to read. The kernel runs without capabilities; as root, its root is mapped to
a uid of its own (as `LocalSandbox` does), which owns no host file. Limits: a cgroup v1
memory/pids/cpu group where writable (`sandbox.cgroups`), else RLIMIT_AS and RLIMIT_NPROC;
always RLIMIT_NOFILE, RLIMIT_FSIZE and RLIMIT_CORE; `disk_mb` sizes the work dir's tmpfs.

The kernel runs on the Python envsynth runs on (it has ipykernel), unless told otherwise.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import secrets
import select
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

from envsynth.errors import ConfigError
from sandbox import namespaces
from sandbox.base import SandboxError
from sandbox.cgroups import PREFIX, CgroupLimits, stale_groups
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

INIT_SCRIPT = Path(__file__).with_name("kernel_jail_init.py")
INSIDE = "/run/envsynth-kernel"
MARKER = "ENVSYNTH_KERNEL_JAIL"
GROUP_TAG = "-kernel-"
# As root, the jail's root is one of these host uids: next to `LocalSandbox`'s range, not in
# it, for its reaper kills whatever runs in its range outside a live LocalSandbox.
UID_BASE, UID_SPAN = 0x5F000000, 1 << 24
NOFILE = 1024
# Without a memory cgroup the limit is on address space, which an idle kernel already
# spends hundreds of MB of on thread stacks and malloc arenas.
ADDRESS_SPACE_SLACK_MB = 1024
START_TIMEOUT_S = 30.0


def _owner() -> str:
    """This process, as the marker its jails carry: pid and start time (pids are reused)."""
    return f"{os.getpid()}:{_start_time(os.getpid())}"


def _start_time(pid: int) -> str:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat[stat.rindex(")") + 2 :].split()[19]


class JailKernel(KernelProcess):
    """Start a kernel in a new jail; ready to use when the constructor returns.

    Args:
        spec: the limits (`image` is ignored: the jail sees the host's system).
        python: the interpreter to run the kernel with; this process's by default.
        ready_timeout: seconds the kernel may take to start.
    """

    def __init__(
        self, spec: SandboxSpec, python: str | None = None, ready_timeout: float = START_TIMEOUT_S
    ):
        _check_workdir(spec.workdir)
        self.spec = spec
        self.python = python or sys.executable
        self.holder: subprocess.Popen[bytes] | None = None
        self.cgroup: CgroupLimits | None = None
        self.death_fd = self.init_fd = -1
        self.privileged = os.geteuid() == 0
        self.uid = UID_BASE + secrets.randbelow(UID_SPAN) if self.privileged else os.geteuid()
        self.dir = socket_dir()
        self.sock, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self.connection, _ = write_connection_file(self.dir, INSIDE)
            self._limit()
            self.holder = self._spawn(child)
            self._handshake(ready_timeout)
            holder = (self.holder.pid,) if self.holder is not None else ()
            self._watch(self.init_pid, ready_timeout, also_counted=holder)
            self._client = KernelClient(self.connection, self.death_fd, max_message_bytes(spec))
            self._client.wait_ready(ready_timeout)
            if self.privileged:
                os.chown(self.dir, 0, 0)  # the kernel may no longer swap its sockets
        except BaseException:
            self.destroy()
            raise
        finally:
            child.close()

    def _limit(self) -> None:
        _remove_stale_groups()
        if self.privileged:
            name = f"{PREFIX}{os.getpid()}{GROUP_TAG}{secrets.token_hex(6)}"
            # +2: the holder and init count too.
            self.cgroup = CgroupLimits.create(
                name, self.spec.memory_mb << 20, self.spec.pids + 2, self.spec.cpus
            )
            os.chown(self.dir, self.uid, self.uid)
            os.chown(self.dir / "conn.json", self.uid, self.uid)

    def _config(self) -> dict:
        spec = self.spec
        rlimits = {
            "RLIMIT_NOFILE": [NOFILE] * 2,
            "RLIMIT_FSIZE": [spec.disk_mb << 20] * 2,
            "RLIMIT_CORE": [0, 0],
        }
        if self.cgroup is None:
            address_space = (spec.memory_mb + ADDRESS_SPACE_SLACK_MB) << 20
            rlimits["RLIMIT_AS"] = [address_space] * 2
        if self.cgroup is None or "pids" not in self.cgroup.dirs:
            rlimits["RLIMIT_NPROC"] = [spec.pids] * 2  # counted per user namespace (5.14+)
        prefixes = {sys.prefix, sys.base_prefix, str(Path(self.python).resolve().parents[1])}
        return {
            "workdir": spec.workdir,
            "disk_mb": spec.disk_mb,
            "network": spec.network,
            "setgroups": self.privileged,
            "python_dirs": sorted(prefixes),
            "socket_dir": str(self.dir),
            "rlimits": rlimits,
            "command": boot_command(self.python, spec.output_bytes, "-", f"{INSIDE}/conn.json"),
            "env": {
                "PATH": f"{Path(self.python).parent}:/usr/local/bin:/usr/bin:/bin",
                "HOME": spec.workdir,
                "LANG": "C.UTF-8",
                "TMPDIR": "/tmp",
                "IPYTHONDIR": "/tmp/.ipython",
                "MPLBACKEND": "Agg",
                "PYTHONDONTWRITEBYTECODE": "1",
                "MALLOC_ARENA_MAX": "2",
                MARKER: _owner(),
            },
        }

    def _spawn(self, child: socket.socket) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [
                sys.executable,
                "-I",
                "-S",
                "-B",
                str(INIT_SCRIPT),
                str(child.fileno()),
                json.dumps(self._config()),
            ],
            pass_fds=[child.fileno()],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env={MARKER: _owner(), "LANG": "C.UTF-8"},
            start_new_session=True,  # a terminal's ^C is the controller's to handle
        )

    def _handshake(self, timeout: float) -> None:
        header = self._message(timeout)
        if header["op"] != "userns":
            raise SandboxError(f"the kernel jail did not start: {header.get('message', header)}")
        holder = self.holder.pid if self.holder is not None else 0
        self._map_ids(holder)
        if self.cgroup is not None:
            self.cgroup.attach(holder)
        namespaces.send_msg(self.sock, {"op": "mapped"})
        while (header := self._message(timeout))["op"] != "ready":
            if header["op"] == "init":
                self.init_pid = header["pid"]
                self.init_fd = os.pidfd_open(self.init_pid)
            else:
                raise SandboxError(
                    f"the kernel jail did not start: {header.get('message', header)}"
                )

    def _message(self, timeout: float) -> dict:
        ready, _, _ = select.select([self.sock], [], [], timeout)
        msg = namespaces.recv_msg(self.sock) if ready else None
        if msg is None:
            err = b""
            if self.holder is not None and self.holder.stderr is not None:
                self.holder.kill()
                err = self.holder.stderr.read()
            why = "timed out" if not ready else "its process exited"
            raise SandboxError(
                f"the kernel jail did not start ({why}): {err.decode(errors='replace')[-2000:]}"
            )
        return msg[0]

    def _map_ids(self, holder: int) -> None:
        """Root inside is `self.uid` outside; unprivileged callers may map only themselves."""
        proc = Path(f"/proc/{holder}")
        gid = self.uid if self.privileged else os.getegid()
        if not self.privileged:
            (proc / "setgroups").write_text("deny")
        (proc / "uid_map").write_text(f"0 {self.uid} 1\n")
        (proc / "gid_map").write_text(f"0 {gid} 1\n")

    def death(self) -> Death:
        code = None
        if self.holder is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                code = self.holder.wait(5)
        with contextlib.suppress(OSError):
            if self.cgroup is not None and self.cgroup.oom_kills() > 0:
                return Death(True, f"the kernel ran out of memory ({self.spec.memory_mb} MB)")
        if code is None:
            return Death(False, "the kernel died")
        if code > 128:
            return Death(False, f"the kernel was killed by signal {code - 128}")
        return Death(False, f"the kernel exited with status {code}")

    def destroy(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        if self.init_fd >= 0:
            with contextlib.suppress(OSError):
                signal.pidfd_send_signal(self.init_fd, signal.SIGKILL)
        with contextlib.suppress(OSError):
            self.sock.close()  # the holder kills init when this closes
        if self.holder is not None:
            try:
                self.holder.wait(5)
            except subprocess.TimeoutExpired:
                self.holder.kill()
                self.holder.wait()
            if self.holder.stderr is not None:
                self.holder.stderr.close()
            self.holder = None
        if self.init_fd >= 0:
            # init's exit means everything in its pid namespace is gone.
            select.select([self.init_fd], [], [], 5)
            os.close(self.init_fd)
            self.init_fd = -1
        if self.cgroup is not None:
            self.cgroup.remove()
            self.cgroup = None
        self._close_fd()
        shutil.rmtree(self.dir, ignore_errors=True)


def _check_workdir(workdir: str) -> None:
    """The work dir becomes a tmpfs in the jail: it may not hide what the kernel runs on."""
    parts = workdir.strip("/").split("/")
    reserved = {"", "etc", "dev", "proc", "sys", "tmp", "run", *namespaces.SYSTEM_DIRS}
    under_python = any(
        p.startswith(workdir.rstrip("/") + "/") or p == workdir
        for p in {sys.prefix, sys.base_prefix}
    )
    if not workdir.startswith("/") or parts[0] in reserved or ".." in parts or under_python:
        raise ConfigError(
            f"workdir {workdir!r} would hide the system in a kernel jail; "
            "use a fresh absolute path such as /work"
        )


@functools.cache
def _remove_stale_groups() -> None:
    for path in stale_groups():
        if GROUP_TAG in os.path.basename(path):
            with contextlib.suppress(OSError):
                os.rmdir(path)


def leaked_jails() -> list[str]:
    """Processes of this process's kernel jails that are still alive."""
    needle = f"{MARKER}={_owner()}\0".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            environ = Path(f"/proc/{entry}/environ").read_bytes()
        except OSError:
            continue
        if needle in environ + b"\0":
            found.append(f"kernel jail process {entry}")
    return found


@functools.cache
def jail_unavailable_reason() -> str | None:
    """None when a kernel jail can run here, else why not (checked by starting one)."""
    if sys.platform != "linux":
        return "kernel jails need Linux namespaces"
    try:
        JailKernel(SandboxSpec(memory_mb=256, disk_mb=8)).destroy()
    except (SandboxError, OSError, TimeoutError) as exc:
        return str(exc)
    return None
