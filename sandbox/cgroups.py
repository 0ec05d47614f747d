"""Memory, pids and CPU limits for a `LocalSandbox` through cgroup v1, where we may write it.

A sandbox's group is made under the controller's own group in each hierarchy, so the
controller's limits still bound it. Where no v1 memory hierarchy is writable (cgroup v2,
or no privilege), `CgroupLimits.create` returns None and the sandbox falls back to rlimits.
cgroup v2 is left out on purpose: enabling its controllers needs a delegated subtree,
which a plain process on a v2 host does not have; rlimits serve there.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass

PREFIX = "envsynth-local-"
CPU_PERIOD_US = 100_000


def _hierarchies() -> dict[str, str]:
    """Each v1 controller's mount point, e.g. {'memory': '/sys/fs/cgroup/memory', ...}."""
    found: dict[str, str] = {}
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            fstype, _, options = (right.split() + ["", "", ""])[:3]
            if fstype != "cgroup":
                continue
            mount_point = left.split()[4]
            for option in options.split(","):
                found.setdefault(option, mount_point)
    return found


def _own_paths() -> dict[str, str]:
    """This process's group in each v1 hierarchy, keyed by controller."""
    paths: dict[str, str] = {}
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            for controller in controllers.split(","):
                if controller:
                    paths[controller] = path
    return paths


def _write(directory: str, name: str, value: str) -> None:
    with open(os.path.join(directory, name), "w") as f:
        f.write(value)


@dataclass(frozen=True)
class CgroupLimits:
    """One sandbox's groups. `dirs` maps each controller to its group's directory."""

    dirs: dict[str, str]

    @classmethod
    def create(cls, name: str, memory_bytes: int, pids: int, cpus: float) -> CgroupLimits | None:
        """Make and limit the groups; None when the memory controller cannot be used here.

        Args:
            name: the group's directory name; starts with `PREFIX`.
            memory_bytes: memory limit, swap included where the kernel accounts swap.
            pids: most tasks (processes and threads) at once.
            cpus: CPU bandwidth in cores.
        """
        mounts, own = _hierarchies(), _own_paths()
        if "memory" not in mounts:
            return None
        dirs: dict[str, str] = {}
        made: list[str] = []
        try:
            for controller in ("memory", "pids", "cpu"):
                if controller not in mounts or controller not in own:
                    continue
                directory = os.path.join(mounts[controller], own[controller].lstrip("/"), name)
                if directory not in made:
                    os.mkdir(directory)
                    made.append(directory)
                dirs[controller] = directory
            memory = dirs["memory"]
            _write(memory, "memory.limit_in_bytes", str(memory_bytes))
            if os.path.exists(os.path.join(memory, "memory.memsw.limit_in_bytes")):
                _write(memory, "memory.memsw.limit_in_bytes", str(memory_bytes))
            if "pids" in dirs:
                _write(dirs["pids"], "pids.max", str(pids))
            if "cpu" in dirs:
                _write(dirs["cpu"], "cpu.cfs_period_us", str(CPU_PERIOD_US))
                _write(dirs["cpu"], "cpu.cfs_quota_us", str(max(1000, int(cpus * CPU_PERIOD_US))))
        except OSError:
            for directory in reversed(made):
                with contextlib.suppress(OSError):
                    os.rmdir(directory)
            return None
        return cls(dirs)

    def attach(self, pid: int) -> None:
        """Move `pid` (before it forks) into every group; its descendants follow."""
        for directory in dict.fromkeys(self.dirs.values()):
            _write(directory, "cgroup.procs", str(pid))

    def oom_kills(self) -> int:
        """How many processes the kernel has OOM-killed in this group so far."""
        with open(os.path.join(self.dirs["memory"], "memory.oom_control")) as f:
            for line in f:
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    return int(value)
        return 0

    def fork_refusals(self) -> int:
        """How many forks the pids limit has refused so far; -1 without a pids group."""
        if "pids" not in self.dirs:
            return -1
        with open(os.path.join(self.dirs["pids"], "pids.events")) as f:
            for line in f:
                key, _, value = line.partition(" ")
                if key == "max":
                    return int(value)
        return 0

    def remove(self, timeout: float = 2.0) -> list[str]:
        """Remove the groups once their tasks are gone; returns those that could not be."""
        deadline = time.monotonic() + timeout
        left = list(dict.fromkeys(self.dirs.values()))
        while left:
            for directory in list(left):
                try:
                    os.rmdir(directory)
                    left.remove(directory)
                except FileNotFoundError:
                    left.remove(directory)
                except OSError:
                    pass
            if not left or time.monotonic() > deadline:
                break
            time.sleep(0.01)
        return left


def stale_groups() -> list[str]:
    """Our groups (next to this process's own) whose controller process is gone."""
    mounts, own = _hierarchies(), _own_paths()
    stale: list[str] = []
    for controller in ("memory", "pids", "cpu"):
        if controller not in mounts or controller not in own:
            continue
        parent = os.path.join(mounts[controller], own[controller].lstrip("/"))
        with contextlib.suppress(OSError):
            for entry in os.listdir(parent):
                owner = entry[len(PREFIX) :].split("-", 1)[0]
                if entry.startswith(PREFIX) and owner.isdigit() and not _alive(int(owner)):
                    stale.append(os.path.join(parent, entry))
    return sorted(set(stale))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
