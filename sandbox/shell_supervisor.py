"""The shell supervisor inside every Docker sandbox (sent to it as source, never imported there).

It runs as the sandbox user under `python3 -I -S` and uses only modules of Debian's
python3-minimal (no json, no ctypes), since that is all the base image is guaranteed to hold.
`BOOTSTRAP` reads this source from the exec's stdin, so no copy has to be put in the image. The
controller then speaks to it over the same stdin/stdout:

- controller -> supervisor: ``kind(1) nonce(8) length(4) payload`` frames:
  ``R`` run (payload: timeout as a double, output cap as u32, the command), ``P`` put a file
  (u32 path length, path, data), ``G`` get a file (path), ``K`` reset the sandbox.
- supervisor -> controller: the same header: ``O``/``E`` stdout/stderr bytes of the running
  command, ``X`` its end (``rc timed_out oom truncated`` then a note for stderr), ``F`` a file
  reply (``0`` + data, or ``E`` + ``errno message``), ``H`` hello (``pid keep-pids``).

Everything a command prints travels inside ``O``/``E`` payloads, so no output can forge a frame:
the exit status is reported out of band, after the command's output was drained. The persistent
shell is one bash process; each command is sourced from a here-document (so `declare`, `cd`,
functions and variables persist) and its status comes back on a private pipe with a per-command
token that never appears in any variable the command can read. On timeout the supervisor
interrupts the shell (a USR1 trap that returns from the sourced command, keeping its state) and
kills every other process in the container, including those that escaped with `setsid` and
background jobs of earlier commands; if the shell itself will not come back it is replaced, and
the command's stderr says so. A command that makes a fork fail on the pids limit (a fork bomb)
is stopped the same way, as the kernel's OOM killer stops one that exhausts memory, and exits
with 137. A shell that exits (`exit`, `kill -9 $$`) is replaced too; its exit status is the
command's.

Every process here runs as the same user, so a command that sets out to can still reach the
supervisor's pipes through /proc (python3-minimal has no ctypes for PR_SET_DUMPABLE): the
protocol keeps printed output from ever passing for a frame, not a determined process from
forging its own exit status. Graders should run in a fresh sandbox, not after the agent.
"""

from __future__ import annotations

import errno
import os
import select
import signal
import struct
import sys
import time

HEADER = struct.Struct(">c8sI")
RUN = struct.Struct(">dI")
PATH_LEN = struct.Struct(">I")
CHUNK = 1 << 16
# A command that does not return within this long after its shell was interrupted and every
# other process killed is taken to be looping inside the shell itself: the shell is replaced.
ABORT_GRACE_S = 1.5
KILL_DEADLINE_S = 5.0
OOM_FILES = ("/sys/fs/cgroup/memory/memory.oom_control", "/sys/fs/cgroup/memory.events")
PIDS_FILES = ("/sys/fs/cgroup/pids/pids.events", "/sys/fs/cgroup/pids.events")
# How often a running command's cgroup is checked for a reached pids limit.
POLL_S = 0.05
SHELL_INIT = b"trap 'return 124 2>/dev/null' USR1\n"
# How the shell runs one command: sourced from a here-document (so it runs in the shell itself
# and a USR1 trap's `return` can abort it), stdin empty, the status pipe (fd 3) closed to it.
# The status line's token appears only in this text, never in a variable the command can read.
WRAPPER = b". /dev/fd/9 9<<'%s' </dev/null 3>&-\n%s%s\nbuiltin printf '%s %%d\\n' \"$?\" >&3\n"
# `python3 -c BOOTSTRAP SIZE WORKDIR KEEP`: read SIZE bytes of source from stdin and run them.
BOOTSTRAP = """import os, sys
n, src = int(sys.argv[1]), b""
while len(src) < n:
    chunk = os.read(0, n - len(src))
    if not chunk:
        raise SystemExit("envsynth-supervisor: stdin closed before the source arrived")
    src += chunk
sys.argv = ["envsynth-supervisor"] + sys.argv[2:]
exec(compile(src, "envsynth-supervisor", "exec"), {"__name__": "__main__"})
"""


def send(kind: bytes, nonce: bytes, payload: bytes = b"") -> None:
    data = HEADER.pack(kind, nonce, len(payload)) + payload
    view = memoryview(data)
    while view:
        view = view[os.write(1, view) :]


def processes() -> list[int]:
    """Pids of live (non-zombie) processes visible in this pid namespace."""
    pids = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        if stat[stat.rfind(b")") + 2 : stat.rfind(b")") + 3] != b"Z":
            pids.append(int(name))
    return pids


def kill_all_but(keep: set[int], deadline_s: float = KILL_DEADLINE_S) -> list[int]:
    """SIGKILL every process outside `keep` until none is left; return any that survived.

    Rescanning until a scan comes back empty is what catches fork bombs and processes that
    daemonized (their parent is gone, so no process-group kill reaches them).
    """
    end = time.monotonic() + deadline_s
    while True:
        victims = [p for p in processes() if p not in keep]
        if not victims or time.monotonic() > end:
            return victims
        for pid in victims:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        time.sleep(0.002)


def cgroup_counter(paths: tuple[str, ...], key: str) -> int:
    """A counter of this container's cgroup (cgroup v1 or v2 layout), -1 if unreadable."""
    for path in paths:
        try:
            with open(path) as f:
                for line in f:
                    name, _, value = line.partition(" ")
                    if name == key:
                        return int(value)
        except OSError:
            continue
    return -1


def oom_kills() -> int:
    return cgroup_counter(OOM_FILES, "oom_kill")


def fork_refusals() -> int:
    """How often a fork failed because the container's pids limit was reached."""
    return cgroup_counter(PIDS_FILES, "max")


class Shell:
    """One bash process: commands on its stdin, output on two pipes, status on fd 3."""

    def __init__(self, workdir: str) -> None:
        pipes = [os.pipe() for _ in range(4)]
        (in_r, in_w), (out_r, out_w), (err_r, err_w), (st_r, st_w) = pipes
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child execs at once
            try:
                for fd, target in ((in_r, 0), (out_w, 1), (err_w, 2), (st_w, 3)):
                    os.dup2(fd, target)
                os.closerange(4, 1 << 16)
                signal.signal(signal.SIGPIPE, signal.SIG_DFL)
                # Commands, not the supervisor, should be what the OOM killer picks.
                with open("/proc/self/oom_score_adj", "w") as f:
                    f.write("500")
                os.chdir(workdir)
                os.execv("/bin/bash", ["bash", "--noprofile", "--norc"])
            finally:
                os._exit(127)
        for fd in (in_r, out_w, err_w, st_w):
            os.close(fd)
        for fd in (out_r, err_r, st_r):
            os.set_blocking(fd, False)
        self.pid, self.stdin, self.out, self.err, self.status = pid, in_w, out_r, err_r, st_r
        self.status_buf = b""
        self.at_eof: set[int] = set()  # pipes whose every writer is gone: no longer selected
        self.write(SHELL_INIT)

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self.stdin, view) :]

    def exit_status(self) -> int | None:
        """The shell's status as a shell reports it (128 + signal), or None while alive."""
        try:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:
            return 255
        if pid == 0:
            return None
        self.pid = -1
        return os.WEXITSTATUS(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)

    def kill(self) -> None:
        if self.pid > 0:
            try:
                os.kill(self.pid, signal.SIGKILL)
                os.waitpid(self.pid, 0)
            except OSError:
                pass
            self.pid = -1
        for fd in (self.stdin, self.out, self.err, self.status):
            try:
                os.close(fd)
            except OSError:
                pass


class Command:
    def __init__(self, nonce: bytes, timeout: float, cap: int) -> None:
        self.nonce, self.cap = nonce, cap
        self.deadline = time.monotonic() + timeout
        self.token = os.urandom(8).hex().encode()
        self.sent = {b"O": 0, b"E": 0}
        self.truncated = False
        self.oom_before = oom_kills()
        self.forks_refused = fork_refusals()


class Supervisor:
    def __init__(self, workdir: str, keep: set[int]) -> None:
        self.workdir = workdir
        me = os.getpid()
        if keep:
            # A supervisor restarted after its predecessor died: clear whatever that one left.
            self.keep = keep | {1, me}
            kill_all_but(self.keep)
        else:
            # First start in a fresh container: what runs now is init and the dead-man timer.
            self.keep = set(processes()) | {1, me}
        self.inbuf = bytearray()
        self.cmd: Command | None = None
        self.note = ""
        self.wake_r, wake_w = os.pipe()
        os.set_blocking(self.wake_r, False)
        os.set_blocking(wake_w, False)
        signal.set_wakeup_fd(wake_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        self.shell = Shell(workdir)
        keep_pids = ",".join(map(str, sorted(self.keep - {me})))
        send(b"H", bytes(8), f"{me} {keep_pids}".encode())

    # ---- the event loop ------------------------------------------------------------------
    def serve(self) -> None:
        while True:
            timeout = None
            if self.cmd is not None:
                timeout = min(POLL_S, max(0.0, self.cmd.deadline - time.monotonic()))
            fds = [0, self.wake_r, self.shell.out, self.shell.err, self.shell.status]
            fds = [fd for fd in fds if fd not in self.shell.at_eof]
            try:
                ready, _, _ = select.select(fds, [], [], timeout)
            except InterruptedError:
                continue
            if self.wake_r in ready:
                self.drain_wakeups()
            for fd in (self.shell.out, self.shell.err):
                if fd in ready:
                    self.pump(fd)
            if self.shell.status in ready:
                rc = self.read_status()
                if rc is not None:
                    self.finish(rc)
            if 0 in ready and not self.read_requests():
                return
            self.check_shell()
            if self.cmd is not None and time.monotonic() >= self.cmd.deadline:
                self.abort(timed_out=True)
            elif self.cmd is not None and fork_refusals() > self.cmd.forks_refused:
                # Like the OOM killer for memory: a command that exhausts the process table
                # (a fork bomb) is killed with everything it started, or the sandbox stays
                # unusable for every later command.
                self.abort(timed_out=False)

    def drain_wakeups(self) -> None:
        try:
            while os.read(self.wake_r, 512):
                pass
        except BlockingIOError:
            pass

    def pump(self, fd: int, limit: int = 1 << 20) -> None:
        """Move what the shell printed to the controller, within the cap; drop the rest.

        At most `limit` bytes per call, so that an endless flood still lets the loop see the
        deadline.
        """
        kind = b"O" if fd == self.shell.out else b"E"
        moved = 0
        while moved < limit:
            try:
                data = os.read(fd, CHUNK)
            except (BlockingIOError, OSError):
                return
            if not data:
                self.shell.at_eof.add(fd)
                return
            moved += len(data)
            cmd = self.cmd
            if cmd is None:
                continue  # printed by a background job between commands
            room = cmd.cap - cmd.sent[kind]
            if len(data) > room:
                cmd.truncated = True
                data = data[: max(room, 0)]
            if data:
                cmd.sent[kind] += len(data)
                send(kind, cmd.nonce, data)

    def read_status(self) -> int | None:
        """Read the shell's status pipe; the current command's exit code once it reported."""
        try:
            data = os.read(self.shell.status, 4096)
        except (BlockingIOError, OSError):
            return None
        if not data:
            self.shell.at_eof.add(self.shell.status)
        self.shell.status_buf += data
        rc = None
        while b"\n" in self.shell.status_buf:
            line, _, self.shell.status_buf = self.shell.status_buf.partition(b"\n")
            token, _, code = line.partition(b" ")
            if self.cmd is not None and token == self.cmd.token and code.lstrip(b"-").isdigit():
                rc = int(code)
        return rc

    def check_shell(self) -> None:
        status = self.shell.exit_status()
        if status is None:
            return
        # The shell is gone (`exit`, `kill -9 $$`, a fork bomb it could not survive): whatever
        # it left running dies with it, so that the new shell starts from a clean slate. What
        # it printed before it went is still in the pipes: `finish` drains them first.
        note = f"envsynth: the shell exited with status {status}; {self.fresh_shell_note()}"
        if self.cmd is not None:
            self.finish(status, note=note)
        else:
            self.note += note
        self.replace_shell()

    def fresh_shell_note(self) -> str:
        return (
            f"a new one was started in {self.workdir} (variables, functions and the working"
            " directory were reset)\n"
        )

    def replace_shell(self) -> None:
        self.shell.kill()
        survivors = kill_all_but(self.keep)
        self.shell = Shell(self.workdir)
        if survivors:
            self.note += f"envsynth: could not kill pids {survivors}\n"

    # ---- commands ------------------------------------------------------------------------
    def start(self, nonce: bytes, payload: bytes) -> None:
        timeout, cap = RUN.unpack_from(payload)
        cmd = payload[RUN.size :]
        self.check_shell()  # a shell that died while idle is replaced before it gets a command
        self.cmd = Command(nonce, timeout, cap)
        delim = b"__ENVSYNTH_EOF_" + os.urandom(8).hex().encode()
        if not cmd.endswith(b"\n"):
            cmd += b"\n"
        try:
            self.shell.write(WRAPPER % (delim, cmd, delim, self.cmd.token))
        except OSError:
            pass  # the shell died under us: `check_shell` reports it and starts a new one

    def finish(self, rc: int | None, timed_out: bool = False, note: str = "") -> None:
        cmd = self.cmd
        if cmd is None:
            return
        for fd in (self.shell.out, self.shell.err):
            self.pump(fd, limit=cmd.cap + CHUNK)
        oom = cmd.oom_before >= 0 and oom_kills() > cmd.oom_before
        code = "-" if rc is None else rc
        head = f"{code} {timed_out:d} {oom:d} {cmd.truncated:d}\n"
        send(b"X", cmd.nonce, (head + self.note + note).encode())
        self.cmd, self.note = None, ""

    def abort(self, timed_out: bool) -> None:
        """Stop the command (it timed out, or hit the pids limit) and everything it started.

        The shell is kept, with its state, when it comes back from the interrupt.
        """
        keep = self.keep | {self.shell.pid}
        end = time.monotonic() + ABORT_GRACE_S
        returned = False
        while not returned and time.monotonic() < end:
            try:
                os.kill(self.shell.pid, signal.SIGUSR1)
            except OSError:
                break
            kill_all_but(keep)
            # Keep draining: a shell blocked writing to a full pipe never reaches its trap.
            fds = [self.shell.status, self.shell.out, self.shell.err]
            ready, _, _ = select.select(fds, [], [], 0.05)
            for fd in (self.shell.out, self.shell.err):
                if fd in ready:
                    self.pump(fd)
            returned = self.shell.status in ready and self.read_status() is not None
            if self.shell.exit_status() is not None:
                break
        note = ""
        if not returned:
            self.replace_shell()
            note = (
                "envsynth: the shell did not return from the interrupt; " + self.fresh_shell_note()
            )
        survivors = [p for p in processes() if p not in self.keep | {self.shell.pid}]
        if survivors:
            note += f"envsynth: processes {survivors} survived being killed\n"
        if timed_out:
            self.finish(None, timed_out=True, note=note)
        else:
            note = (
                "envsynth: the command reached the sandbox's process limit; it and every"
                " process it started were killed\n" + note
            )
            self.finish(128 + signal.SIGKILL, note=note)

    # ---- requests ------------------------------------------------------------------------
    def read_requests(self) -> bool:
        data = os.read(0, CHUNK)
        if not data:
            return False
        self.inbuf += data
        while len(self.inbuf) >= HEADER.size:
            kind, nonce, length = HEADER.unpack_from(self.inbuf)
            if len(self.inbuf) < HEADER.size + length:
                break
            payload = bytes(self.inbuf[HEADER.size : HEADER.size + length])
            del self.inbuf[: HEADER.size + length]
            if kind == b"R":
                self.start(nonce, payload)
            else:
                send(b"F", nonce, self.file_request(kind, payload))
        return True

    def file_request(self, kind: bytes, payload: bytes) -> bytes:
        try:
            if kind == b"P":
                (n,) = PATH_LEN.unpack_from(payload)
                path = self.resolve(payload[PATH_LEN.size : PATH_LEN.size + n])
                parent = os.path.dirname(path)
                if parent:
                    os.makedirs(parent, exist_ok=True)
                with open(path, "wb") as f:
                    f.write(payload[PATH_LEN.size + n :])
                return b"0"
            if kind == b"G":
                with open(self.resolve(payload), "rb") as f:
                    return b"0" + f.read()
            if kind == b"K":
                return b"0" if self.reset() else b"E0 reset left something behind"
            return b"E%d unknown request %r" % (errno.EINVAL, kind)
        except OSError as e:
            return b"E%d %s" % (e.errno or 0, (e.strerror or str(e)).encode())

    def resolve(self, raw: bytes) -> str:
        path = os.fsdecode(raw)
        return path if path.startswith("/") else os.path.join(self.workdir, path)

    def reset(self) -> bool:
        """Back to a fresh sandbox: no processes, empty writable dirs, a new shell."""
        self.shell.kill()
        clean = not kill_all_but(self.keep)
        for top in (self.workdir, "/tmp", "/dev/shm"):
            clean = wipe(top) and clean
        self.shell, self.note = Shell(self.workdir), ""
        return clean


def wipe(top: str) -> bool:
    """Empty a directory tree the sandbox user may have made unreadable; True if it is empty."""
    if not os.path.isdir(top):
        return True
    for root, dirs, _files in os.walk(top):
        for d in dirs:
            try:
                os.chmod(os.path.join(root, d), 0o700, follow_symlinks=False)
            except OSError:
                pass
    for root, dirs, files in os.walk(top, topdown=False):
        for name in files + dirs:
            path = os.path.join(root, name)
            try:
                if name in dirs and not os.path.islink(path):
                    os.rmdir(path)
                else:
                    os.unlink(path)
            except OSError:
                pass
    try:
        return not os.listdir(top)
    except OSError:
        return False


def main() -> None:
    workdir, keep = sys.argv[1], sys.argv[2]
    Supervisor(workdir, {int(p) for p in keep.split(",") if p}).serve()
    # The controller is gone (its end of the exec closed): take the whole container down with
    # us, the dead-man timer included, so a controller killed with SIGKILL leaks nothing.
    kill_all_but({os.getpid(), 1})


if __name__ == "__main__":
    main()
