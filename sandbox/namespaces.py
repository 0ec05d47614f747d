"""The inside of a `LocalSandbox`: fresh Linux namespaces, a private root, and one init.

`sandbox.local` starts this file as a script (`python -I -S namespaces.py FD PARENT`), so
it imports nothing but the standard library, and it imports all of that before it leaves
the host's filesystem: after `pivot_root` the interpreter can load no further module.

Process tree, host view::

    controller ── holder (user ns; host pid ns; waits)        PR_SET_PDEATHSIG on both
                    └─ agent (pid 1 of the sandbox pid ns; mount/net/ipc/uts ns; serves)
                         ├─ sandbox-init (pid 1 of this command's pid + mount ns)
                         │    └─ sh -c CMD (no capabilities, rlimits) └─ …
                         └─ sandbox-init (the next command's, forked and waiting)

The holder exists because `unshare(CLONE_NEWPID)` only moves the caller's future children.
A command gets its own pid namespace so that ending it is one `kill` of its init: the
kernel then kills and reaps everything in that namespace, however it daemonized, before
the agent can reap the init (`zap_pid_ns_processes`). The agent's own pid namespace does
the same for the whole sandbox when the agent dies, and the agent dies with the holder,
which dies with the controller. A command's init is non-dumpable and its parent namespace
is out of the command's sight, so the command can neither signal, trace nor impersonate
what reports its exit status.

The controller talks to the agent over a SOCK_SEQPACKET socket: one JSON header line and
an optional payload per message, file descriptors as SCM_RIGHTS. Commands write straight
into pipes the controller owns, so no output passes through (or can wedge) the agent.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import glob
import json
import os
import platform
import resource
import select
import signal
import socket
import stat
import struct
import sys
import traceback

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 0x1, 0x2, 0x4, 0x8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 0x20, 0x1000, 0x4000, 0x40000
MNT_DETACH = 0x2

PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_SET_NAME, PR_CAPBSET_DROP = 1, 4, 15, 24
PR_SET_NO_NEW_PRIVS, PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL = 38, 47, 4

RESOLVE_NO_MAGICLINKS, RESOLVE_BENEATH = 0x02, 0x08
SYS_OPENAT2 = 437  # the same number on every architecture (added after the syscall table merge)
SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "riscv64": 41, "ppc64le": 203, "s390x": 217}

MAX_MESSAGE = 256 * 1024
MAX_COMMAND = 128 * 1024 - 1  # MAX_ARG_STRLEN: the kernel's cap on one argv string
RUN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# Host directories the sandbox sees, read-only; everything else of the host stays out.
SYSTEM_DIRS = ("usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32")
# /etc entries that are configuration, not secrets, and that programs fail without; the
# second list only matters, and so is only there, with the network on.
SHARED_ETC = (
    "alternatives",
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "localtime",
    "mime.types",
    "nsswitch.conf",
    "protocols",
    "services",
    "os-release",
    "debian_version",
    "python3*",
    "java-*",
    "mtab",
)
NETWORK_ETC = ("resolv.conf", "gai.conf", "host.conf", "ssl", "ca-certificates*")
DEVICES = ("null", "zero", "full", "random", "urandom", "tty")


# ---------------------------------------------------------------------------- messages


def send_msg(sock: socket.socket, header: dict, payload: bytes = b"", fds: tuple = ()) -> None:
    """Send one message: a JSON header line, a raw payload, and file descriptors."""
    data = json.dumps(header).encode() + b"\n" + payload
    anc = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, struct.pack(f"{len(fds)}i", *fds))]
    sock.sendmsg([data], anc if fds else [])


def recv_msg(sock: socket.socket) -> tuple[dict, bytes, list[int]] | None:
    """Receive one message; None when the peer has closed its end.

    Received descriptors are close-on-exec, so no other child of the receiver inherits them.
    """
    data, anc, flags, _ = sock.recvmsg(
        MAX_MESSAGE, socket.CMSG_SPACE(8 * 4), socket.MSG_CMSG_CLOEXEC
    )
    fds: list[int] = []
    for level, kind, raw in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.extend(struct.unpack(f"{len(raw) // 4}i", raw[: len(raw) - len(raw) % 4]))
    if not data and not fds:
        return None
    if flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC):
        for fd in fds:
            os.close(fd)
        raise OSError("sandbox message truncated")
    head, _, payload = data.partition(b"\n")
    return json.loads(head), payload, fds


# ---------------------------------------------------------------------------- syscalls

_LIBC: ctypes.CDLL | None = None


def _libc() -> ctypes.CDLL:
    global _LIBC
    if _LIBC is None:
        _LIBC = ctypes.CDLL(None, use_errno=True)
    return _LIBC


def _check(result: int, what: str) -> int:
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return result


def unshare(flags: int) -> None:
    _check(_libc().unshare(ctypes.c_int(flags)), f"unshare({flags:#x})")


def prctl(option: int, arg: int = 0) -> None:
    c = ctypes.c_ulong
    _check(_libc().prctl(ctypes.c_int(option), c(arg), c(0), c(0), c(0)), f"prctl({option})")


def _bytes(text: str | None) -> bytes | None:
    return None if text is None else text.encode()


def mount(src: str | None, dst: str, fstype: str | None, flags: int, data: str = "") -> None:
    _check(
        _libc().mount(
            _bytes(src), dst.encode(), _bytes(fstype), ctypes.c_ulong(flags), _bytes(data or None)
        ),
        f"mount {src} on {dst}",
    )


def umount(path: str, flags: int = 0) -> None:
    _check(_libc().umount2(path.encode(), ctypes.c_int(flags)), f"umount {path}")


def setns(fd: int, nstype: int) -> None:
    _check(_libc().setns(ctypes.c_int(fd), ctypes.c_int(nstype)), "setns")


def pivot_root(new: str, old: str) -> None:
    nr = SYS_PIVOT_ROOT[platform.machine()]
    _check(_libc().syscall(ctypes.c_long(nr), new.encode(), old.encode()), "pivot_root")


def openat2(dirfd: int, path: str, flags: int, mode: int = 0) -> int:
    """`openat2(2)` confined beneath `dirfd`: '..' and symlinks may not leave it (EXDEV)."""
    how = struct.pack("QQQ", flags, mode, RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)
    libc = _libc()
    fd = libc.syscall(
        ctypes.c_long(SYS_OPENAT2),
        ctypes.c_int(dirfd),
        path.encode(),
        ctypes.c_char_p(how),
        ctypes.c_size_t(len(how)),
    )
    if fd < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), path)
    return fd


def drop_capabilities(last_cap: int) -> None:
    """Leave no capability, now or after exec (root inside the user namespace included)."""
    for cap in range(last_cap + 1):
        prctl(PR_CAPBSET_DROP, cap)
    _check(_libc().prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0), "ambient caps")
    prctl(PR_SET_NO_NEW_PRIVS, 1)
    header = struct.pack("Ii", 0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, this thread
    data = bytes(24)  # two empty {effective, permitted, inheritable} sets
    _check(_libc().capset(ctypes.c_char_p(header), ctypes.c_char_p(data)), "capset")


def loopback_up() -> None:
    """`ip link set lo up` without iproute2: SIOCGIFFLAGS / SIOCSIFFLAGS on 'lo'."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        req = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(s.fileno(), 0x8913, req))[1]
        fcntl.ioctl(s.fileno(), 0x8914, struct.pack("16sH14x", b"lo", flags | 0x1))


# ---------------------------------------------------------------------------- the root


def _bind_ro(src: str, dst: str) -> None:
    if os.path.isdir(src):
        os.makedirs(dst, exist_ok=True)
    else:
        open(dst, "a").close()
    mount(src, dst, None, MS_BIND | MS_REC)
    mount(None, dst, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)


def _copy_entry(src: str, dst: str) -> None:
    if os.path.islink(src):
        os.symlink(os.readlink(src), dst)
    elif os.path.isdir(src):
        _bind_ro(src, dst)
    elif os.path.isfile(src):
        with open(src, "rb") as f, open(dst, "wb") as g:
            g.write(f.read())


def _write(path: str, text: str, mode: int = 0o644) -> None:
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)


def _populate_etc(etc: str, cfg: dict) -> None:
    os.mkdir(etc, 0o755)
    _write(
        f"{etc}/passwd",
        f"root:x:0:0:root:{cfg['workdir']}:/bin/sh\n"
        "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
    )
    _write(f"{etc}/group", "root:x:0:\nnogroup:x:65534:\n")
    _write(f"{etc}/hostname", cfg["hostname"] + "\n")
    _write(f"{etc}/hosts", f"127.0.0.1\tlocalhost {cfg['hostname']}\n::1\tlocalhost\n")
    shared = SHARED_ETC + (NETWORK_ETC if cfg["network"] else ())
    for pattern in shared:
        for src in sorted(glob.glob(f"/etc/{pattern}")):
            _copy_entry(src, f"{etc}/{os.path.basename(src)}")


def _populate_dev(dev: str) -> None:
    os.mkdir(dev, 0o755)
    mount("tmpfs", dev, "tmpfs", MS_NOSUID | MS_NOEXEC, "size=64k,mode=0755")
    for name in DEVICES:
        if os.path.exists(f"/dev/{name}"):
            open(f"{dev}/{name}", "a").close()
            mount(f"/dev/{name}", f"{dev}/{name}", None, MS_BIND)
    for name, target in (
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ):
        os.symlink(target, f"{dev}/{name}")


def build_root(cfg: dict) -> None:
    """Make a tmpfs the root: system dirs read-only, a minimal /etc, devices, fresh /proc.

    The work dir, /tmp and /dev/shm share one tmpfs of `disk_mb`, so the sandbox's whole
    writable space is that size. The host's root is detached at the end: no path leads back.
    """
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    new = "/tmp"  # any existing directory serves as the mount point in this mount namespace
    mount("tmpfs", new, "tmpfs", MS_NOSUID | MS_NODEV, "size=16m,mode=0755")
    for name in SYSTEM_DIRS:
        if os.path.lexists(f"/{name}"):
            _copy_entry(f"/{name}", f"{new}/{name}")
    _populate_etc(f"{new}/etc", cfg)
    _populate_dev(f"{new}/dev")
    os.mkdir(f"{new}/proc", 0o555)
    mount("proc", f"{new}/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)

    store = f"{new}/.store"
    os.mkdir(store)
    mount("tmpfs", store, "tmpfs", MS_NOSUID | MS_NODEV, f"size={cfg['disk_mb']}m,mode=0755")
    for sub, mode, target in (
        ("work", 0o755, cfg["workdir"]),
        ("tmp", 0o1777, "/tmp"),
        ("shm", 0o1777, "/dev/shm"),
    ):
        os.mkdir(f"{store}/{sub}")
        os.chmod(f"{store}/{sub}", mode)
        os.makedirs(new + target, exist_ok=True)
        mount(f"{store}/{sub}", new + target, None, MS_BIND)
    umount(store, MNT_DETACH)
    os.rmdir(store)

    os.mkdir(f"{new}/.oldroot")
    pivot_root(new, f"{new}/.oldroot")
    os.chdir("/")
    umount("/.oldroot", MNT_DETACH)
    os.rmdir("/.oldroot")
    mount(None, "/", None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)
    mount(None, "/dev", None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NOEXEC)


# ---------------------------------------------------------------------------- commands


def _run_init(cfg: dict, sock: socket.socket) -> None:
    """Pid 1 of a command's namespace: await the command, run `sh -c CMD`, report, exit.

    It is forked and confined before its command arrives, so a command does not wait for
    a fork of the agent. It reports only once it is alone in its namespace; should it be
    killed instead, the kernel kills whatever the command left behind.
    """
    try:
        signal.signal(signal.SIGINT, signal.SIG_DFL)  # init ignores default-action signals
        name = ctypes.create_string_buffer(b"sandbox-init")
        prctl(PR_SET_NAME, ctypes.addressof(name))
        unshare(CLONE_NEWNS)
        mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
        _confine(cfg)
        msg = recv_msg(sock)
        if msg is None:
            return
        header, cmd, fds = msg
        cpu = int(header["timeout"] * max(1.0, cfg["cpus"])) + 1
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
        child = _spawn(cfg, cmd, fds)
        for fd in fds:
            os.close(fd)
        while True:
            pid, status = os.waitpid(-1, 0)
            if pid == child:
                break
        # Empty the namespace ourselves (kill(-1) reaches all in it but us) and reap it, so
        # that the status can go out before the namespace's own, slower, teardown.
        with contextlib.suppress(ProcessLookupError):
            os.kill(-1, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            while True:
                os.waitpid(-1, 0)
        send_msg(sock, {"status": status})
    except BaseException:
        with contextlib.suppress(OSError):
            send_msg(sock, {"error": traceback.format_exc()[-4000:]})
    finally:
        os._exit(0)


def _confine(cfg: dict) -> None:
    """Limits and no capabilities, set in the command's init so the command inherits them."""
    os.chdir(cfg["workdir"])
    os.umask(0o022)
    for name, (soft, hard) in cfg["rlimits"].items():
        resource.setrlimit(getattr(resource, name), (soft, hard))
    prctl(PR_SET_DUMPABLE, 1)  # our /proc files become ours to write...
    with open("/proc/self/oom_score_adj", "w") as f:
        f.write("500")  # the command, not the sandbox's own processes, is the OOM victim
    prctl(PR_SET_DUMPABLE, 0)  # ...and no command may ptrace its init to forge the status
    drop_capabilities(cfg["last_cap"])


def _spawn(cfg: dict, cmd: bytes, fds: list[int]) -> int:
    """Start `sh -c CMD` in a new session, stdin empty, stdout/stderr the controller's pipes.

    posix_spawn (a vfork) is a fraction of a Python fork's cost; only an address-space
    rlimit, which must not bind this interpreter, needs the fork.
    """
    argv = [b"sh", b"-c", cmd]
    env = {
        "PATH": RUN_PATH,
        "HOME": cfg["workdir"],
        "LANG": "C.UTF-8",
        "USER": "root",
        "PWD": cfg["workdir"],
        "TMPDIR": "/tmp",
    }
    defaults = [s for s in range(1, signal.NSIG) if s not in (signal.SIGKILL, signal.SIGSTOP)]
    if cfg["memory_rlimit"] is None:
        return os.posix_spawn(
            "/bin/sh",
            argv,
            env,
            setsid=True,
            setsigmask=[],
            setsigdef=defaults,
            file_actions=[
                (os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
                (os.POSIX_SPAWN_DUP2, fds[0], 1),
                (os.POSIX_SPAWN_DUP2, fds[1], 2),
            ],
        )
    pid = os.fork()
    if pid == 0:
        try:
            os.setsid()
            os.dup2(os.open("/dev/null", os.O_RDONLY), 0)
            os.dup2(fds[0], 1)
            os.dup2(fds[1], 2)
            limit = cfg["memory_rlimit"]
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
            for sig in defaults:
                with contextlib.suppress(OSError, ValueError):
                    signal.signal(sig, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_SETMASK, [])
            os.execve("/bin/sh", argv, env)
        finally:
            os._exit(127)
    return pid


class _Init:
    """A command's init: its pid and pidfd, and the socket its command and status go over."""

    def __init__(self, pid: int, pidfd: int, sock: socket.socket):
        self.pid, self.pidfd, self.sock = pid, pidfd, sock
        self.rid: int | None = None
        self.killed = False

    def reap(self) -> None:
        os.waitpid(self.pid, 0)
        os.close(self.pidfd)
        self.sock.close()


class Agent:
    """Pid 1 of the sandbox: serves run / kill / open requests until the socket closes."""

    def __init__(self, sock: socket.socket, cfg: dict):
        self.sock, self.cfg = sock, cfg
        self.workfd = os.open(cfg["workdir"], os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        self.pidns = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
        self.run: _Init | None = None
        self.spare: _Init | None = None  # the next command's init, forked while idle
        self.exiting: dict[int, _Init] = {}  # inits that reported, alone, and now exit

    def serve(self) -> None:
        with contextlib.suppress(OSError):  # no spare now: one is forked when it is needed
            self.spare = self._fork_init()
        while True:
            run = self.run
            waiting = [self.sock.fileno(), *self.exiting]
            if run:
                waiting += [run.sock.fileno(), run.pidfd]
            ready, _, _ = select.select(waiting, [], [])
            if run and run.sock.fileno() in ready:
                self._on_report(run)
            if run and run.pidfd in ready and self.run is run:
                self._on_death(run)
            for pidfd in set(ready) & set(self.exiting):
                self.exiting.pop(pidfd).reap()
            if self.sock.fileno() in ready:
                msg = recv_msg(self.sock)
                if msg is None:
                    return  # the controller closed or died: our exit ends the sandbox
                header, payload, fds = msg
                getattr(self, "_op_" + header["op"])(header, payload, fds)

    def _fork_init(self) -> _Init:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        unshare(CLONE_NEWPID)
        try:
            pid = os.fork()
            if pid == 0:
                _run_init(self.cfg, theirs)
        finally:
            # Our next child joins our own namespace again, so the next init can unshare.
            setns(self.pidns, CLONE_NEWPID)
        theirs.close()
        return _Init(pid, os.pidfd_open(pid), ours)

    def _op_run(self, header: dict, payload: bytes, fds: list[int]) -> None:
        try:
            init, self.spare = self.spare or self._fork_init(), None
        except OSError as e:
            for fd in fds:
                os.close(fd)
            send_msg(
                self.sock,
                {
                    "op": "exit",
                    "run": header["run"],
                    "status": None,
                    "killed": False,
                    "error": f"cannot start the command: {e}",
                },
            )
            return
        try:
            send_msg(init.sock, {"timeout": header["timeout"]}, payload, tuple(fds))
        except OSError:
            pass  # the init died setting up; the error it left on the socket is the report
        finally:
            for fd in fds:
                os.close(fd)
        init.rid = header["run"]
        self.run = init
        # The next command's init is forked while this one runs, off every command's path.
        try:
            self.spare = self._fork_init()
        except OSError:
            self.spare = None  # the pids limit is reached: fork when the next command comes

    def _op_kill(self, header: dict, payload: bytes, fds: list[int]) -> None:
        if self.run and self.run.rid == header["run"]:
            os.kill(self.run.pid, signal.SIGKILL)
            self.run.killed = True

    def _on_report(self, run: _Init) -> None:
        """The command's init says how it ended, alone in its namespace: tell the controller."""
        msg = recv_msg(run.sock)
        if msg is None:
            return  # it died without a word: its pidfd tells when all is gone
        self.run = None
        self.exiting[run.pidfd] = run
        self._report(run, msg[0])

    def _on_death(self, run: _Init) -> None:
        """The command's init died before reporting (killed): its namespace is gone with it."""
        self.run = None
        run.sock.setblocking(False)
        try:
            msg = recv_msg(run.sock)
        except BlockingIOError:
            msg = None
        run.reap()
        self._report(run, msg[0] if msg else {})

    def _report(self, run: _Init, report: dict) -> None:
        send_msg(
            self.sock,
            {
                "op": "exit",
                "run": run.rid,
                "status": report.get("status"),
                "killed": run.killed,
                "error": report.get("error"),
                "left": self._leftover(),
            },
        )

    def _leftover(self) -> list[int]:
        """Pids in the sandbox besides us and our inits: none, once a command has ended."""
        ours = {"1", *(str(i.pid) for i in (self.spare, *self.exiting.values()) if i)}
        left = [int(p) for p in os.listdir("/proc") if p.isdigit() and p not in ours]
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return left

    def _op_open(self, header: dict, payload: bytes, fds: list[int]) -> None:
        try:
            fd = self._open(header["path"], header["write"])
        except OSError as e:
            send_msg(self.sock, {"op": "opened", "errno": e.errno, "message": e.strerror})
            return
        try:
            send_msg(self.sock, {"op": "opened"}, fds=(fd,))
        finally:
            os.close(fd)

    def _open(self, path: str, write: bool) -> int:
        """Open a regular file under the work dir, never outside it, whatever the symlinks."""
        base = os.O_CLOEXEC | os.O_NOCTTY | os.O_NONBLOCK
        if write:
            parts = path.split("/")
            for i in range(1, len(parts)):
                try:
                    os.close(openat2(self.workfd, "/".join(parts[:i]), os.O_PATH | os.O_DIRECTORY))
                except FileNotFoundError:
                    parent = openat2(
                        self.workfd, "/".join(parts[: i - 1]) or ".", os.O_PATH | os.O_DIRECTORY
                    )
                    try:
                        os.mkdir(parts[i - 1], 0o755, dir_fd=parent)
                    finally:
                        os.close(parent)
            fd = openat2(self.workfd, path, base | os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        else:
            fd = openat2(self.workfd, path, base | os.O_RDONLY)
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            os.close(fd)  # a FIFO or device would block or stream forever in the controller
            err = errno.EISDIR if stat.S_ISDIR(mode) else errno.EINVAL
            raise OSError(err, "not a regular file", path)
        return fd


# ---------------------------------------------------------------------------- start-up


def _agent_main(sock: socket.socket, cfg: dict) -> None:
    prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            cfg["last_cap"] = int(f.read())
        build_root(cfg)
        # No user namespace below this one: a command could otherwise regain capabilities
        # in one, and mount tmpfs that no rlimit bounds.
        with open("/proc/sys/user/max_user_namespaces", "w") as f:
            f.write("0")
        socket.sethostname(cfg["hostname"])
        if not cfg["network"]:
            loopback_up()
        agent = Agent(sock, cfg)
        null = os.open("/dev/null", os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)  # nothing of the host's stays open in here
        os.close(null)
    except BaseException:
        send_msg(sock, {"op": "error", "message": traceback.format_exc()})
        os._exit(1)
    send_msg(sock, {"op": "ready"})
    try:
        agent.serve()
    except BaseException:
        send_msg(sock, {"op": "error", "message": traceback.format_exc()})
        os._exit(1)
    os._exit(0)


def main(argv: list[str]) -> None:
    """Holder: enter a user namespace, await the id maps, then fork the agent and wait.

    Args:
        argv: [script, control socket fd, controller pid]; the rest of the configuration
            comes over the socket, so that no command's `ps` shows it.
    """
    fd, parent = int(argv[1]), int(argv[2])
    os.set_inheritable(fd, False)
    sock = socket.socket(fileno=fd)
    prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:
        os._exit(1)  # the controller died before PR_SET_PDEATHSIG took hold
    try:
        unshare(CLONE_NEWUSER)
    except OSError as e:
        send_msg(sock, {"op": "error", "message": f"cannot create a user namespace: {e}"})
        os._exit(1)
    send_msg(sock, {"op": "userns"})
    msg = recv_msg(sock)
    if msg is None:
        os._exit(1)
    cfg = msg[0]["config"]
    try:
        os.setresgid(0, 0, 0)
        if cfg["setgroups"]:
            os.setgroups([])
        os.setresuid(0, 0, 0)
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # a change of uid has just cleared it
        if os.getppid() != parent:
            os._exit(1)
        unshare(
            CLONE_NEWNS
            | CLONE_NEWIPC
            | CLONE_NEWUTS
            | CLONE_NEWPID
            | (0 if cfg["network"] else CLONE_NEWNET)
        )
    except OSError as e:
        send_msg(sock, {"op": "error", "message": f"cannot create the namespaces: {e}"})
        os._exit(1)
    agent = os.fork()
    if agent == 0:
        _agent_main(sock, cfg)
    send_msg(sock, {"op": "agent", "pid": agent})
    sock.close()
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 1)
    os.dup2(null, 2)
    _, status = os.waitpid(agent, 0)
    os._exit(1 if status else 0)


if __name__ == "__main__":
    main(sys.argv)
