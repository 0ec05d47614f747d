"""`LocalSandbox`: Linux namespaces and cgroup or rlimit limits, no container runtime.

Each command runs as a fresh process in the sandbox's namespaces (see `sandbox.namespaces`
for the process tree), not in a persistent shell: state lives in the work dir, and every
command gets its own pid namespace, so ending it — done, timed out or daemonized — is one
kill that the kernel completes for the whole tree before we report. A persistent shell
would make that kill end the session too, and its exit-code framing would have to be
guarded against forgery; a fresh process costs a few milliseconds and needs neither.

Isolation: user, pid, mount, net (only `lo`), ipc and uts namespaces; a tmpfs root holding
the host's /usr, /bin, /lib… read-only and a minimal /etc, so no other host file is there
to read; the command runs without capabilities and with no_new_privs. As root, the
sandbox's root is mapped to a uid of its own (`UID_BASE`…), which owns no host file and
makes every one of its processes findable; otherwise to the caller's uid.

Limits: a cgroup v1 memory/pids/cpu group where writable (`sandbox.cgroups`): an OOM kill
is reported as `oom_killed`, and a command that the pids limit refuses a fork is killed
like a fork bomb (exit 137, a note on stderr), as `DockerSandbox` does. Without cgroups:
RLIMIT_AS and RLIMIT_NPROC (counted per user namespace), no CPU share. Always RLIMIT_FSIZE,
RLIMIT_NOFILE, RLIMIT_CPU and RLIMIT_CORE; `disk_mb` sizes the one tmpfs behind the work
dir, /tmp and /dev/shm.

Lifetime: the holder and the agent die with their parent (PR_SET_PDEATHSIG) and when the
control socket closes; the agent is the pid namespace's init, so its death kills all. The
holders are forked from one long-lived thread, since PR_SET_PDEATHSIG follows the thread
that forked, not the process.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import functools
import os
import queue
import secrets
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

from envsynth.errors import EnvsynthError
from sandbox import local_reaper, namespaces
from sandbox.base import BACKENDS, Sandbox, SandboxError
from sandbox.cgroups import PREFIX, CgroupLimits
from sandbox.local_exchange import KILL_GRACE_S, PIDS_NOTE, Exchange
from sandbox.local_reaper import MARKER, UID_BASE, UID_SPAN, leaked
from sandbox.spec import ExecResult, SandboxSpec

__all__ = [
    "OWN_PROCESSES",
    "UID_BASE",
    "LocalSandbox",
    "PathEscapeError",
    "leaked",
    "unavailable_reason",
]

T = TypeVar("T")
AGENT_SCRIPT = Path(namespaces.__file__)
START_TIMEOUT_S = 15.0
NOFILE = 1024
# Our own processes inside the limits, on top of `spec.pids`: holder, agent, the running
# command's init and the next command's init.
OWN_PROCESSES = 4
RESERVED = frozenset("usr bin sbin lib lib32 lib64 libx32 etc dev proc sys tmp".split())


class PathEscapeError(EnvsynthError, PermissionError):
    """A `put_file`/`get_file` path leads outside the work dir ('..', an absolute path
    elsewhere, or a symlink out). Pass a path inside `spec.workdir`."""


@BACKENDS.register("local")
class LocalSandbox(Sandbox):
    """A sandbox made of Linux namespaces on this machine. See the module docstring.

    Args:
        spec: the limits; `image` is ignored (the sandbox sees the host's /usr).
        cgroups: use a cgroup v1 group for memory/pids/cpu where writable; False forces
            rlimits only (RLIMIT_AS for memory, no CPU share).

    Raises:
        SandboxError: the namespaces could not be made here; `unavailable_reason()` says why.
    """

    def __init__(self, spec: SandboxSpec | None = None, *, cgroups: bool = True):
        self.spec = spec or SandboxSpec()
        _check_workdir(self.spec.workdir)
        local_reaper.reap()
        self.id = f"{os.getpid()}-{secrets.token_hex(6)}"
        self._lock, self._close_lock = threading.Lock(), threading.Lock()
        self._closed, self._runs = False, 0
        self._privileged = _privileged()
        self.uid = UID_BASE + secrets.randbelow(UID_SPAN) if self._privileged else os.geteuid()
        self._cgroup: CgroupLimits | None = None
        self._holder: subprocess.Popen[bytes] | None = None
        self._finalizer: weakref.finalize | None = None
        self._agent_fd: int | None = None
        self.agent_pid: int | None = None  # host pids, for tests and diagnostics
        self.holder_pid: int | None = None
        local_reaper.register(self.id, self)  # before its processes exist: not a leak
        self._sock, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            if cgroups and self._privileged:
                self._cgroup = CgroupLimits.create(
                    PREFIX + self.id,
                    self.spec.memory_mb << 20,
                    self.spec.pids + OWN_PROCESSES,
                    self.spec.cpus,
                )
            self._holder = holder = self._spawn(child)
            self.holder_pid = holder.pid
            self._finalizer = weakref.finalize(self, _kill, holder, self._sock, self._cgroup)
            self._handshake(holder)
        except BaseException:
            child.close()
            self.close()
            raise

    # ------------------------------------------------------------------ start-up

    def _spawn(self, child: socket.socket) -> subprocess.Popen[bytes]:
        argv = [sys.executable, "-I", "-S", "-B", str(AGENT_SCRIPT), str(child.fileno())]
        try:
            return _SPAWNER.call(
                lambda: subprocess.Popen(  # a fresh interpreter: a fork would copy all of ours
                    [*argv, str(os.getpid())],
                    pass_fds=[child.fileno()],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                    env={MARKER: local_reaper.marker(self.id), "LANG": "C.UTF-8"},
                    start_new_session=True,  # a terminal's ^C is the controller's to handle
                )
            )
        finally:
            child.close()

    def _config(self) -> dict:
        rlimits = {
            "RLIMIT_NOFILE": [NOFILE] * 2,
            "RLIMIT_FSIZE": [self.spec.disk_mb << 20] * 2,
            "RLIMIT_CORE": [0, 0],
        }
        if self._cgroup is None or "pids" not in self._cgroup.dirs:
            # Counted per user namespace (Linux >= 5.14). With a pids group it stays unset:
            # it would refuse forks first, and only the group counts the refusals.
            rlimits["RLIMIT_NPROC"] = [self.spec.pids + OWN_PROCESSES] * 2
        return {
            "workdir": self.spec.workdir,
            "disk_mb": self.spec.disk_mb,
            "cpus": self.spec.cpus,
            "network": self.spec.network,
            "hostname": "sandbox",
            "rlimits": rlimits,
            "memory_rlimit": None if self._cgroup else self.spec.memory_mb << 20,
            "setgroups": self._privileged,
        }

    def _handshake(self, holder: subprocess.Popen[bytes]) -> None:
        """Map the ids and join the cgroup while the holder waits in its new user namespace,
        then wait until the agent has built the sandbox."""
        deadline = time.monotonic() + START_TIMEOUT_S
        header = self._startup_message(holder, deadline)
        if header["op"] != "userns":
            raise SandboxError(f"local sandbox did not start: {header.get('message', header)}")
        self._map_ids(holder.pid)
        if self._cgroup is not None:
            self._cgroup.attach(holder.pid)
        namespaces.send_msg(self._sock, {"op": "mapped", "config": self._config()})
        ready = False
        while not ready or self.agent_pid is None:  # the holder's and the agent's, any order
            header = self._startup_message(holder, deadline)
            if header["op"] == "agent":
                self.agent_pid = header["pid"]
                with contextlib.suppress(ProcessLookupError):  # dead: its error message follows
                    self._agent_fd = os.pidfd_open(header["pid"])
            elif header["op"] == "ready":
                ready = True
            else:
                raise SandboxError(f"local sandbox did not start: {header.get('message', header)}")
        if self._agent_fd is None:
            raise SandboxError("local sandbox did not start: its agent exited")
        if holder.stderr is not None:
            holder.stderr.close()

    def _startup_message(self, holder: subprocess.Popen[bytes], deadline: float) -> dict:
        ready, _, _ = select.select([self._sock], [], [], max(0.0, deadline - time.monotonic()))
        msg = namespaces.recv_msg(self._sock) if ready else None
        if msg is None:
            holder.kill()
            err = holder.stderr.read().decode(errors="replace") if holder.stderr else ""
            why = "timed out" if not ready else "its process exited"
            raise SandboxError(f"local sandbox did not start ({why}): {err.strip()[-2000:]}")
        return msg[0]

    def _map_ids(self, pid: int) -> None:
        """Root inside is `self.uid` outside; unprivileged callers may map only themselves."""
        proc = f"/proc/{pid}"
        gid = self.uid if self._privileged else os.getegid()
        if not self._privileged:
            Path(f"{proc}/setgroups").write_text("deny")
        Path(f"{proc}/uid_map").write_text(f"0 {self.uid} 1\n")
        Path(f"{proc}/gid_map").write_text(f"0 {gid} 1\n")

    # ------------------------------------------------------------------ commands

    def run(self, cmd: str, timeout: float | None = None) -> ExecResult:
        """Run `cmd` with `sh -c` in the work dir; stdin is empty.

        Output beyond `spec.output_bytes` per stream is dropped (`truncated`); bytes that are
        not UTF-8 come back as surrogate escapes. A timeout kills every process the command
        started and returns `timed_out` with `exit_code` None. A death by signal N is exit
        code 128 + N; `oom_killed` is set when the memory cgroup's OOM killer struck.

        Raises:
            SandboxError: the sandbox is closed or died.
            ValueError: `cmd` is longer than the kernel takes for one argument (128 KiB);
                write long scripts with `put_file` and run those.
        """
        timeout = self.spec.wall_time_s if timeout is None else timeout
        payload = cmd.encode("utf-8", "surrogateescape")
        if len(payload) > namespaces.MAX_COMMAND or b"\0" in payload:
            raise ValueError(
                "a command must be under 128 KiB and hold no NUL byte; "
                "put a long script in a file with put_file and run that"
            )
        with self._lock:
            self._check_open()
            self._runs += 1
            try:
                return self._run(self._runs, payload, timeout)
            except BaseException:
                self.close()  # an unfinished exchange would desynchronize the next command
                raise

    def _run(self, rid: int, payload: bytes, timeout: float) -> ExecResult:
        cgroup = self._cgroup
        oom_before = cgroup.oom_kills() if cgroup else 0
        pipes = [os.pipe(), os.pipe()]
        for r, _ in pipes:
            with contextlib.suppress(OSError):
                fcntl.fcntl(r, fcntl.F_SETPIPE_SZ, 1 << 20)  # fewer wakeups under a flood
        exchange = Exchange(
            self._sock,
            rid,
            [r for r, _ in pipes],
            self.spec.output_bytes,
            timeout,
            cgroup.fork_refusals if cgroup and "pids" in cgroup.dirs else None,
        )
        try:
            namespaces.send_msg(
                self._sock,
                {"op": "run", "run": rid, "timeout": timeout},
                payload,
                fds=(pipes[0][1], pipes[1][1]),
            )
        finally:
            for _, w in pipes:
                os.close(w)
        try:
            msg = exchange.wait()
        finally:
            for r, _ in pipes:
                with contextlib.suppress(OSError):
                    os.close(r)
        if msg.get("error"):
            raise SandboxError(f"local sandbox could not run the command: {msg['error']}")
        if msg.get("left"):
            raise SandboxError(f"processes outlived their command's namespace: {msg['left']}")
        killed_for = exchange.kill_reason if msg["killed"] else None
        stdout, stderr = exchange.outputs[0].text(), exchange.outputs[1].text()
        if killed_for == "pids":
            code, stderr = 128 + signal.SIGKILL, stderr + PIDS_NOTE
        elif killed_for == "timeout" or msg["status"] is None:
            code = None
        else:
            code = os.waitstatus_to_exitcode(msg["status"])
            code = 128 - code if code < 0 else code  # killed by signal N: 128 + N, as shells say
        return ExecResult(
            exit_code=code,
            stdout=stdout,
            stderr=stderr,
            timed_out=killed_for == "timeout",
            oom_killed=bool(cgroup and cgroup.oom_kills() > oom_before),
            truncated=exchange.outputs[0].truncated or exchange.outputs[1].truncated,
            duration_s=time.monotonic() - exchange.start,
        )

    # ------------------------------------------------------------------ files

    def put_file(self, path: str, data: bytes) -> None:
        """Write `data` to `path` under the work dir, making parent directories.

        Raises:
            PathEscapeError: the path leads outside the work dir.
        """
        with os.fdopen(self._open(path, write=True), "wb") as f:
            f.write(data)

    def get_file(self, path: str) -> bytes:
        """Read a regular file under the work dir.

        Raises:
            FileNotFoundError: no such file.
            PathEscapeError: the path leads outside the work dir.
        """
        with os.fdopen(self._open(path, write=False), "rb") as f:
            return f.read()

    def _open(self, path: str, write: bool) -> int:
        """The agent opens the file (so it belongs to the sandbox's root) and hands it over."""
        rel = self._relative(path)
        with self._lock:
            self._check_open()
            namespaces.send_msg(self._sock, {"op": "open", "path": rel, "write": write})
            while True:
                msg = namespaces.recv_msg(self._sock)
                if msg is None:
                    self.close()
                    raise SandboxError("the local sandbox died")
                if msg[0]["op"] == "opened":
                    break
        header, _, fds = msg
        if fds:
            return fds[0]
        err = header["errno"]
        if err == errno.EXDEV:  # RESOLVE_BENEATH refused a way out
            raise PathEscapeError(f"{path!r} leads outside the work dir {self.spec.workdir}")
        raise OSError(err, header["message"], path)

    def _relative(self, path: str) -> str:
        workdir = self.spec.workdir.rstrip("/")
        if path.startswith("/"):
            if not path.startswith(workdir + "/"):
                raise PathEscapeError(f"{path!r} is not under the work dir {workdir}")
            path = path[len(workdir) + 1 :]
        if not path.strip("/") or "\0" in path:
            raise PathEscapeError(f"{path!r} does not name a file under {workdir}")
        return path

    # ------------------------------------------------------------------ end

    def close(self) -> None:
        """Kill everything in the sandbox and wait until it is gone; idempotent."""
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        if self._finalizer is not None:
            self._finalizer.detach()
        with contextlib.suppress(OSError):
            self._sock.close()
        if self._agent_fd is not None:
            with contextlib.suppress(OSError):
                signal.pidfd_send_signal(self._agent_fd, signal.SIGKILL)
        if self._holder is not None:
            _kill(self._holder, None, None, wait=True)
        if self._agent_fd is not None:
            # The agent is the sandbox's init: once it has exited, so has everything inside.
            select.select([self._agent_fd], [], [], KILL_GRACE_S)
            os.close(self._agent_fd)
        if self._cgroup is not None:
            self._cgroup.remove()
        local_reaper.unregister(self.id)

    def _check_open(self) -> None:
        if self._closed or self._holder is None or self._holder.poll() is not None:
            raise SandboxError("this local sandbox is closed or died; make a new one")


class _Spawner:
    """Forks every holder from one thread that lives as long as the process.

    PR_SET_PDEATHSIG fires when the thread that forked dies, not the process: a sandbox
    made in a short-lived thread (a pool's worker) would die with that thread otherwise.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: queue.SimpleQueue[tuple[Callable[[], Any], Future[Any]]] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def call(self, job: Callable[[], T]) -> T:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._serve, name="envsynth-local-spawner", daemon=True
                )
                self._thread.start()
        done: Future[T] = Future()
        self._jobs.put((job, done))
        return done.result()

    def _serve(self) -> None:
        while True:
            job, done = self._jobs.get()
            try:
                done.set_result(job())
            except BaseException as e:
                done.set_exception(e)


_SPAWNER = _Spawner()


def _kill(
    holder: subprocess.Popen[bytes],
    sock: socket.socket | None,
    cgroup: CgroupLimits | None,
    wait: bool = False,
) -> None:
    """End a sandbox by its holder (the agent follows by PR_SET_PDEATHSIG) and reap it."""
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.close()
    if holder.poll() is None:
        # The holder exits once the agent is dead; the kill covers a wedged start-up.
        try:
            holder.wait(KILL_GRACE_S if wait else 0)
        except subprocess.TimeoutExpired:
            holder.kill()
    holder.wait()
    if holder.stderr is not None:
        holder.stderr.close()
    if cgroup is not None:
        cgroup.remove()


def _check_workdir(workdir: str) -> None:
    parts = workdir.strip("/").split("/")
    if (
        not workdir.startswith("/")
        or workdir == "/"
        or parts[0] in RESERVED
        or ".." in parts
        or os.path.normpath(workdir) != workdir
    ):
        raise ValueError(
            f"workdir {workdir!r} must be a normalized absolute path outside "
            f"the system directories, e.g. /work"
        )


def _privileged() -> bool:
    """Root of the initial user namespace: may map the sandbox to a uid of its own."""
    if os.geteuid() != 0:
        return False
    with open("/proc/self/uid_map") as f:
        return f.read().split() == ["0", "0", "4294967295"]


@functools.cache
def unavailable_reason() -> str | None:
    """None when a LocalSandbox can run here, else why not (checked by starting one)."""
    if sys.platform != "linux":
        return "LocalSandbox needs Linux namespaces"
    try:
        with LocalSandbox(SandboxSpec(memory_mb=64, disk_mb=1)) as sb:
            sb.put_file("probe", b"ok")  # openat2 (Linux >= 5.6) confines file transfers
            result = sb.run("cat probe", timeout=10)
    except (SandboxError, OSError) as e:
        return str(e)
    if result.exit_code != 0 or result.stdout != "ok":
        return f"a trial command failed in the sandbox: {result}"
    return None
