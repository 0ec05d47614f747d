"""Labels that mark a container as ours, and the reaper that removes the ones nobody owns.

Every container envsynth starts carries `owner_labels()`: who started it (pid, that process's
start time so a reused pid is not mistaken for its owner, and the host) and a deadline. The
first sandbox a process creates calls `reap_once()`, which removes containers whose owner is
dead or whose deadline has passed: what a controller killed with SIGKILL left behind.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path

import docker
from docker.errors import APIError, NotFound
from docker.models.containers import Container

LABEL = "envsynth.sandbox"
OWNER_PID = "envsynth.owner.pid"
OWNER_START = "envsynth.owner.start"
OWNER_HOST = "envsynth.owner.host"
CREATED = "envsynth.created"
DEADLINE = "envsynth.deadline"

_reaped = False
_reap_lock = threading.Lock()


def owner_labels(lifetime_s: float) -> dict[str, str]:
    """The labels of a container this process starts, to be gone `lifetime_s` from now."""
    now = time.time()
    pid = os.getpid()
    return {
        LABEL: "1",
        OWNER_PID: str(pid),
        OWNER_START: _start_time(pid) or "",
        OWNER_HOST: _host_id(),
        CREATED: f"{now:.0f}",
        DEADLINE: f"{now + lifetime_s:.0f}",
    }


def ours(client: docker.DockerClient) -> list[Container]:
    """Every container labelled as envsynth's, running or not."""
    # ignore_removed: containers end (auto-remove) between the listing and their inspection.
    return client.containers.list(all=True, filters={"label": f"{LABEL}=1"}, ignore_removed=True)


def owned_by_this_process(client: docker.DockerClient) -> list[Container]:
    me = owner_labels(0)
    keys = (OWNER_PID, OWNER_START, OWNER_HOST)
    return [c for c in ours(client) if all(c.labels.get(k) == me[k] for k in keys)]


def orphaned(labels: dict[str, str], now: float | None = None) -> str | None:
    """Why a container with these labels should go (past deadline, owner dead), or None."""
    now = time.time() if now is None else now
    try:
        if float(labels.get(DEADLINE, "inf")) < now:
            return "past its deadline"
    except ValueError:
        return "a malformed deadline"
    if labels.get(OWNER_HOST) != _host_id():
        return None  # another host's pids mean nothing here; its deadline still applies
    pid = labels.get(OWNER_PID, "")
    if not pid.isdigit():
        return "no owner"
    started = _start_time(int(pid))
    if started is None or started != labels.get(OWNER_START):
        return f"its owner (pid {pid}) is gone"
    return None


def reap(client: docker.DockerClient) -> list[str]:
    """Remove every orphaned container of ours; return their names."""
    removed = []
    for container in ours(client):
        if orphaned(container.labels) is None:
            continue
        try:
            container.remove(force=True, v=True)  # v: its anonymous work-dir volume too
        except NotFound:
            pass
        except APIError as e:
            if e.status_code != 409:  # 409: already being removed
                raise
        removed.append(container.name)
    return removed


def reap_once(client: docker.DockerClient) -> list[str]:
    """`reap`, the first time a process calls it; afterwards a no-op."""
    global _reaped
    with _reap_lock:
        if _reaped:
            return []
        _reaped = True
        return reap(client)


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (field 22 of /proc/PID/stat)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    return stat[stat.rfind(b")") + 2 :].split()[19].decode()


def _host_id() -> str:
    """This host (its name and boot), since pids are only meaningful on the boot that made them."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        boot = "unknown"
    return f"{socket.gethostname()}/{boot}"
