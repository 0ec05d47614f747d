"""The processes of one kernel sandbox, read from the host's /proc.

The sandbox's init is the root of every process in it (orphans are re-parented to it), and
the kernel is init's child. After each cell everything else is killed: `ProcessTree.sweep`.
It runs on every cell's path, so it first asks the pids cgroup whether anything else exists
at all (two small reads), and only walks the tree when something does.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path


def read_proc(path: str) -> str:
    """A small /proc or /sys file, read without `open`'s layers (this is on every cell's path)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return os.read(fd, 1 << 16).decode()
    finally:
        os.close(fd)


def children(pid: int) -> list[int]:
    """The child processes of `pid` (of all its threads); [] once it is gone."""
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for task in tasks:
        try:
            listed = read_proc(f"/proc/{pid}/task/{task}/children")
        except OSError:
            continue
        found.extend(int(c) for c in listed.split())
    return found


def is_zombie(pid: int) -> bool:
    try:
        stat = read_proc(f"/proc/{pid}/stat")
    except OSError:
        return True
    return stat[stat.rindex(")") + 2] in "ZX"


def threads(pid: int) -> int:
    """How many threads process `pid` has (raises OSError once it is gone)."""
    stat = read_proc(f"/proc/{pid}/stat")
    return int(stat[stat.rindex(")") + 2 :].split()[17])


def pids_current_file(pid: int) -> str | None:
    """The `pids.current` of the pids cgroup process `pid` is in, if it can be found."""
    try:
        lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if "pids" in controllers.split(","):
            candidate = f"/sys/fs/cgroup/pids{path}/pids.current"  # cgroup v1
        elif controllers == "":
            candidate = f"/sys/fs/cgroup{path}/pids.current"  # cgroup v2
        else:
            continue
        if os.path.exists(candidate):
            return candidate
    return None


def inner_pid(pid: int) -> int:
    """Host pid `pid` as the sandbox's own pid namespace numbers it."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return pid
    for line in status.splitlines():
        if line.startswith("NSpid:"):
            return int(line.split()[-1])
    return pid


@dataclass(frozen=True)
class Sweep:
    """What killing a cell's leftover processes did.

    Attributes:
        clean: no process but init and the kernel is left running.
        killed: how many processes were killed.
        kernel_children: the killed children of the kernel, as the kernel numbers them:
            zombies until the kernel reaps them, which only the kernel can do.
    """

    clean: bool
    killed: int
    kernel_children: list[int]


class ProcessTree:
    """The processes under a sandbox's init, as host pids.

    Args:
        init_pid: the sandbox's init (pid 1 of its pid namespace).
        kernel_pid: the kernel, a child of init.
        also_counted: our own processes in the sandbox's pids cgroup besides those two.
    """

    def __init__(self, init_pid: int, kernel_pid: int, also_counted: tuple[int, ...] = ()):
        self.init_pid, self.kernel_pid = init_pid, kernel_pid
        self.ours = (*also_counted, init_pid, kernel_pid)
        self.pids_current = pids_current_file(init_pid)
        self.namespace = os.readlink(f"/proc/{kernel_pid}/ns/pid")

    def sweep(self, timeout: float = 2.0) -> Sweep:
        """Kill every process but init and the kernel, and see them die, within `timeout` s."""
        if self._nothing_else_runs():
            return Sweep(True, 0, [])
        killed: set[int] = set()
        orphans: set[int] = set()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            direct = [p for p in children(self.kernel_pid) if not is_zombie(p)]
            todo = direct + [p for p in children(self.init_pid) if p != self.kernel_pid]
            found = list(todo)
            while todo:  # the whole tree first, then kill: reparenting cannot hide anyone
                todo = [c for p in todo for c in children(p)]
                found.extend(todo)
            live = [p for p in found if not is_zombie(p)]
            if not live:
                return Sweep(True, len(killed), sorted(orphans))
            orphans.update(inner_pid(p) for p in direct)
            killed.update(p for p in live if self._kill(p))
            time.sleep(0.005)  # SIGKILL is delivered, but dying takes a moment
        return Sweep(False, len(killed), sorted(orphans))

    def _kill(self, pid: int) -> bool:
        """SIGKILL `pid` if it is still in the sandbox: a pidfd pins the process, so a pid
        reused by some host process since the scan is never hit."""
        try:
            fd = os.pidfd_open(pid)
        except OSError:
            return False
        try:
            if os.readlink(f"/proc/{pid}/ns/pid") != self.namespace:
                return False
            signal.pidfd_send_signal(fd, signal.SIGKILL)
            return True
        except OSError:
            return False
        finally:
            os.close(fd)

    def _nothing_else_runs(self) -> bool:
        """Whether the sandbox's pids cgroup counts only our own tasks (False when it
        cannot tell)."""
        if self.pids_current is None:
            return False
        with contextlib.suppress(OSError, ValueError):
            return int(read_proc(self.pids_current)) == sum(threads(p) for p in self.ours)
        return False
