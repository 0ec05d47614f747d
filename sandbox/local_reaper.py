"""What `LocalSandbox`es leave behind on the host: finding it (`leaked`) and ending it (`reap`).

A sandbox's holder and agent carry `MARKER=<controller pid>:<its start time>:<sandbox id>` in
their environment, and every process of a sandbox descends from its holder. As root, every
one also runs as the sandbox's own uid in `UID_BASE`…, which no exec or setuid inside can
shed. A process is unwanted once its sandbox is closed or its controller has died; a cgroup,
once its controller has died.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import weakref

from sandbox.cgroups import PREFIX, stale_groups

MARKER = "ENVSYNTH_LOCAL_SANDBOX"
UID_BASE, UID_SPAN = 0x5E000000, 1 << 24

# This process's open sandboxes, by id. Weak: a sandbox collected without close() is no
# longer open (its finalizer kills it), so whatever of it survives counts as leaked.
_OPEN: weakref.WeakValueDictionary[str, object] = weakref.WeakValueDictionary()


def register(sandbox_id: str, sandbox: object) -> None:
    _OPEN[sandbox_id] = sandbox


def unregister(sandbox_id: str) -> None:
    _OPEN.pop(sandbox_id, None)


def marker(sandbox_id: str) -> str:
    """The value of `MARKER` for a sandbox of this process."""
    return f"{os.getpid()}:{_start_time(os.getpid())}:{sandbox_id}"


def leaked() -> list[str]:
    """Processes (and cgroups) of local sandboxes still alive though closed or orphaned."""
    found = [
        f"process {pid} ({p['name']}, uid {p['uid']}, parent {p['ppid']}, marker {p['marker']})"
        for pid, p in sorted(_unwanted().items())
    ]
    return found + [f"cgroup {path}" for path in stale_groups() if _is_ours(path)]


def reap() -> None:
    """Kill what crashed controllers left behind and drop their cgroups (a few ms)."""
    for pid in _unwanted():
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    for path in stale_groups():
        with contextlib.suppress(OSError):
            os.rmdir(path)  # only an empty group goes


def _start_time(pid: int) -> str:
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[19]


def _processes() -> dict[int, dict]:
    """Every process: parent, uid, state, name and (when readable) our marker."""
    procs: dict[int, dict] = {}
    prefix = MARKER.encode() + b"="
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/status") as f:
                fields = dict(line.split(":", 1) for line in f if ":" in line)
            with open(f"/proc/{entry}/environ", "rb") as f:
                env = f.read().split(b"\0")
        except OSError:
            continue  # exited meanwhile, or not ours to read
        procs[int(entry)] = {
            "ppid": int(fields["PPid"]),
            "uid": int(fields["Uid"].split()[1]),
            "state": fields["State"].split()[0],
            "name": fields["Name"].strip(),
            "marker": next((v[len(prefix) :].decode() for v in env if v.startswith(prefix)), None),
        }
    return procs


def _marker_live(value: str) -> bool:
    """Whether a marker's sandbox may still be alive: its controller runs and keeps it open."""
    ctl, start, sandbox_id = value.split(":", 2)
    if int(ctl) == os.getpid():
        return start == _start_time(os.getpid()) and sandbox_id in _OPEN
    try:
        return _start_time(int(ctl)) == start
    except OSError:
        return False


def _unwanted() -> dict[int, dict]:
    """Live processes of local sandboxes that are closed or whose controller died."""
    procs = _processes()
    live_uids: set[int] = set()
    dead: set[int] = set()
    for pid, p in procs.items():
        if p["marker"] is not None:
            if _marker_live(p["marker"]):
                live_uids.add(p["uid"])
            else:
                dead.add(pid)

    def under_dead(pid: int) -> bool:
        for _ in range(64):
            if pid in dead:
                return True
            if pid <= 1 or pid not in procs:
                return False
            pid = procs[pid]["ppid"]
        return False

    return {
        pid: p
        for pid, p in procs.items()
        if p["state"] != "Z"
        and (
            under_dead(pid)
            or (UID_BASE <= p["uid"] < UID_BASE + UID_SPAN and p["uid"] not in live_uids)
        )
    }


def _is_ours(group: str) -> bool:
    """A LocalSandbox's group: 'PREFIX<pid>-<id>'; other users of `sandbox.cgroups` tag theirs."""
    return re.fullmatch(r"\d+-[0-9a-f]+", os.path.basename(group)[len(PREFIX) :]) is not None
