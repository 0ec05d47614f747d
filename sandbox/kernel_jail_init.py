"""The inside of a kernel jail: fresh namespaces, a private root, an init, and the kernel.

`sandbox.kernel_jail` starts this file as a script (`python -I -S -B kernel_jail_init.py
FD CONFIG`); it uses the standard library and the syscall wrappers of `sandbox.namespaces`
(also a plain script), nothing else of envsynth.

Process tree, host view::

    controller ── holder (user ns; host pid ns)       exits when the controller's socket closes
                    └─ init (pid 1 of a new pid ns; mount/net/ipc/uts ns)   PR_SET_PDEATHSIG
                         └─ kernel (no capabilities, rlimits)
                              └─ whatever the cells start

When the controller dies (even by SIGKILL) its end of the socket closes; the holder then
kills init, and with init the kernel kills everything in its pid namespace. When the kernel
exits, init exits with its status (128 + N for signal N), and so does the holder.

The root is a tmpfs holding the host's /usr, /bin, /lib… and the kernel's Python prefix
read-only, a minimal /etc, a few devices, and the controller's socket directory (the only
writable host path); the work dir, /tmp and /dev/shm share one tmpfs of `disk_mb`.
"""

from __future__ import annotations

import json
import os
import resource
import select
import signal
import socket
import sys
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import namespaces as ns  # noqa: E402  (a sibling script, not a package import)

SOCKETS = "/run/envsynth-kernel"
SHARED_ETC = (
    "ld.so.cache",
    "ld.so.conf",
    "localtime",
    "nsswitch.conf",
    "protocols",
    "services",
    "mime.types",
    "os-release",
    "debian_version",
)


def _bind(src_fd: int, dst: str, read_only: bool) -> None:
    """Bind the directory open as `src_fd` (an O_PATH fd: its host path may be hidden now)."""
    os.makedirs(dst, exist_ok=True)
    ns.mount(f"/proc/self/fd/{src_fd}", dst, None, ns.MS_BIND | ns.MS_REC)
    if read_only:
        ns.mount(
            None, dst, None, ns.MS_REMOUNT | ns.MS_BIND | ns.MS_RDONLY | ns.MS_NOSUID | ns.MS_NODEV
        )


def _populate_etc(etc: str, cfg: dict) -> None:
    os.mkdir(etc, 0o755)
    files = {
        "passwd": f"root:x:0:0:root:{cfg['workdir']}:/bin/sh\n"
        "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
        "group": "root:x:0:\nnogroup:x:65534:\n",
        "hostname": "sandbox\n",
        "hosts": "127.0.0.1\tlocalhost sandbox\n::1\tlocalhost\n",
    }
    for name, text in files.items():
        with open(f"{etc}/{name}", "w") as f:
            f.write(text)
    for name in SHARED_ETC:
        src = f"/etc/{name}"
        if os.path.islink(src):
            os.symlink(os.readlink(src), f"{etc}/{name}")
        elif os.path.isfile(src):
            with open(src, "rb") as f, open(f"{etc}/{name}", "wb") as g:
                g.write(f.read())


def _populate_dev(dev: str) -> None:
    os.mkdir(dev, 0o755)
    ns.mount("tmpfs", dev, "tmpfs", ns.MS_NOSUID | ns.MS_NOEXEC, "size=64k,mode=0755")
    for name in ("null", "zero", "full", "random", "urandom"):
        open(f"{dev}/{name}", "a").close()
        ns.mount(f"/dev/{name}", f"{dev}/{name}", None, ns.MS_BIND)
    for name, target in (
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ):
        os.symlink(target, f"{dev}/{name}")


def build_root(cfg: dict) -> None:
    """Make the jail's root and pivot into it; no path leads back to the host's."""
    keep, sockets = cfg["python_fds"], cfg["socket_fd"]
    ns.mount(None, "/", None, ns.MS_REC | ns.MS_PRIVATE)
    new = "/tmp"  # any existing directory serves as the mount point in this mount namespace
    ns.mount("tmpfs", new, "tmpfs", ns.MS_NOSUID | ns.MS_NODEV, "size=16m,mode=0755")
    for name in ns.SYSTEM_DIRS:
        src = f"/{name}"
        if os.path.islink(src):
            os.symlink(os.readlink(src), f"{new}/{name}")
        elif os.path.isdir(src):
            fd = os.open(src, os.O_PATH | os.O_DIRECTORY)
            _bind(fd, f"{new}/{name}", read_only=True)
            os.close(fd)
    for path, fd in keep.items():
        _bind(fd, new + path, read_only=True)
    _bind(sockets, new + SOCKETS, read_only=False)
    _populate_etc(f"{new}/etc", cfg)
    _populate_dev(f"{new}/dev")
    os.mkdir(f"{new}/proc", 0o555)
    ns.mount("proc", f"{new}/proc", "proc", ns.MS_NOSUID | ns.MS_NODEV | ns.MS_NOEXEC)
    store = f"{new}/.store"
    os.mkdir(store)
    ns.mount("tmpfs", store, "tmpfs", ns.MS_NOSUID | ns.MS_NODEV, f"size={cfg['disk_mb']}m")
    for sub, mode, target in (
        ("work", 0o755, cfg["workdir"]),
        ("tmp", 0o1777, "/tmp"),
        ("shm", 0o1777, "/dev/shm"),
    ):
        os.mkdir(f"{store}/{sub}", mode)
        os.chmod(f"{store}/{sub}", mode)
        os.makedirs(new + target, exist_ok=True)
        ns.mount(f"{store}/{sub}", new + target, None, ns.MS_BIND)
    ns.umount(store, ns.MNT_DETACH)
    os.rmdir(store)
    os.mkdir(f"{new}/.oldroot")
    ns.pivot_root(new, f"{new}/.oldroot")
    os.chdir("/")
    ns.umount("/.oldroot", ns.MNT_DETACH)
    os.rmdir("/.oldroot")
    ns.mount(
        None, "/", None, ns.MS_REMOUNT | ns.MS_BIND | ns.MS_RDONLY | ns.MS_NOSUID | ns.MS_NODEV
    )
    for fd in (*keep.values(), sockets):
        os.close(fd)


def exec_kernel(cfg: dict) -> None:
    """In the kernel's process: limits, no capabilities, then exec the kernel."""
    try:
        os.setsid()
        null = os.open("/dev/null", os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)  # the kernel's own output is not a cell's
        os.chdir(cfg["workdir"])
        for name, (soft, hard) in cfg["rlimits"].items():
            resource.setrlimit(getattr(resource, name), (soft, hard))
        ns.drop_capabilities(cfg["last_cap"])
        for sig in range(1, signal.NSIG):
            if sig not in (signal.SIGKILL, signal.SIGSTOP):
                try:
                    signal.signal(sig, signal.SIG_DFL)
                except (OSError, ValueError):
                    pass
        signal.pthread_sigmask(signal.SIG_SETMASK, [])
        os.closerange(3, 1 << 16)
        os.execve(cfg["command"][0], cfg["command"], cfg["env"])
    finally:
        os._exit(127)


def init_main(sock: socket.socket, cfg: dict) -> None:
    """Pid 1: build the root, start the kernel, reap; exit with the kernel's status."""
    ns.prctl(ns.PR_SET_PDEATHSIG, signal.SIGKILL)
    try:
        cfg["last_cap"] = int(open("/proc/sys/kernel/cap_last_cap").read())
        build_root(cfg)
        socket.sethostname("sandbox")
        ns.loopback_up()
        kernel = os.fork()
        if kernel == 0:
            sock.close()
            exec_kernel(cfg)
    except BaseException:
        ns.send_msg(sock, {"op": "error", "message": traceback.format_exc()})
        os._exit(1)
    ns.send_msg(sock, {"op": "ready"})
    sock.close()
    while True:
        pid, status = os.waitpid(-1, 0)
        if pid == kernel:
            code = os.waitstatus_to_exitcode(status)
            os._exit(128 - code if code < 0 else code)


def main(argv: list[str]) -> None:
    """Holder: enter a user namespace, await the id maps, fork init, wait on it and on us."""
    sock = socket.socket(fileno=int(argv[1]))
    cfg = json.loads(argv[2])
    try:
        ns.unshare(ns.CLONE_NEWUSER)
    except OSError as e:
        ns.send_msg(sock, {"op": "error", "message": f"cannot create a user namespace: {e}"})
        os._exit(1)
    ns.send_msg(sock, {"op": "userns"})
    if ns.recv_msg(sock) is None:
        os._exit(1)
    try:
        ns.unshare(
            ns.CLONE_NEWNS
            | ns.CLONE_NEWIPC
            | ns.CLONE_NEWUTS
            | ns.CLONE_NEWPID
            | (0 if cfg["network"] else ns.CLONE_NEWNET)
        )
        # Opened in the new mount namespace (a bind mount's source must be in it) while we
        # are still the controller's user: root inside is an unprivileged uid outside, which
        # may not pass through (say) /root to the Python prefix.
        cfg["python_fds"] = {p: os.open(p, os.O_PATH | os.O_DIRECTORY) for p in cfg["python_dirs"]}
        cfg["socket_fd"] = os.open(cfg["socket_dir"], os.O_PATH | os.O_DIRECTORY)
        os.setresgid(0, 0, 0)
        if cfg["setgroups"]:
            os.setgroups([])
        os.setresuid(0, 0, 0)
    except OSError as e:
        ns.send_msg(sock, {"op": "error", "message": f"cannot create the namespaces: {e}"})
        os._exit(1)
    init = os.fork()
    if init == 0:
        init_main(sock, cfg)
    ns.send_msg(sock, {"op": "init", "pid": init})
    init_fd = os.pidfd_open(init)
    # The controller's end closes when it dies, however it dies: then so does the jail.
    ready, _, _ = select.select([sock.fileno(), init_fd], [], [])
    if init_fd not in ready:
        os.kill(init, signal.SIGKILL)
    _, status = os.waitpid(init, 0)
    os._exit(os.waitstatus_to_exitcode(status) & 0xFF)


if __name__ == "__main__":
    main(sys.argv)
