"""LocalSandbox beyond the battery: namespaces, limits, files, and dying with its parent.

Every test runs real namespaces on this machine; the oracle is the host's own view
(/proc, the host's namespace links, the host's files) set against what a command sees.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import factory

from sandbox.base import SandboxError
from sandbox.local import OWN_PROCESSES, UID_BASE, LocalSandbox, PathEscapeError, leaked
from sandbox.spec import SandboxSpec

REPO = Path(__file__).resolve().parents[2]
SPEC = SandboxSpec(memory_mb=128, pids=32, disk_mb=8, wall_time_s=10)


@pytest.fixture(scope="module")
def make() -> type[LocalSandbox]:
    return factory("local")  # type: ignore[return-value]


@pytest.fixture(scope="module")
def sb(make: type[LocalSandbox]) -> Iterator[LocalSandbox]:
    with make(SPEC) as box:
        yield box
    assert not leaked()


def _ok(sb: LocalSandbox, cmd: str) -> str:
    result = sb.run(cmd, timeout=10)
    assert result.exit_code == 0, result
    return result.stdout


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _descendants(root: int) -> set[int]:
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    parents[int(entry)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except OSError:
                pass
    found, grew = {root}, True
    while grew:
        new = {pid for pid, ppid in parents.items() if ppid in found} - found
        found |= new
        grew = bool(new)
    return found


# ---------------------------------------------------------------------- isolation


def test_every_namespace_differs_from_the_hosts(sb: LocalSandbox) -> None:
    kinds = ["user", "pid", "net", "mnt", "ipc", "uts"]
    inside = _ok(sb, " ; ".join(f"readlink /proc/self/ns/{k}" for k in kinds)).split()
    host = [os.readlink(f"/proc/self/ns/{k}") for k in kinds]
    assert len(inside) == len(kinds)
    for kind, mine, theirs in zip(kinds, inside, host, strict=True):
        assert mine.startswith(kind) and mine != theirs, kind


def test_hostname_network_and_pid_one(sb: LocalSandbox) -> None:
    assert _ok(sb, "hostname").strip() == "sandbox" != socket.gethostname()
    links = _ok(sb, "python3 -c 'import socket; print(socket.if_nameindex())'")
    assert links.strip() == "[(1, 'lo')]"
    if shutil.which("ip"):  # iproute2, where the host has it
        assert _ok(sb, "ip -o link | cut -d: -f2").split() == ["lo"]
    # The command's own namespace: its init is ours, the shell is pid 2, nothing else runs.
    assert _ok(sb, "cat /proc/1/comm; echo $$").split() == ["sandbox-init", "2"]
    pids = {entry for entry in _ok(sb, "ls /proc").split() if entry.isdigit()}
    assert pids == {"1", "2", "3"}  # init, sh, ls: no other process is in sight


def test_root_inside_is_an_unprivileged_uid_outside(sb: LocalSandbox) -> None:
    assert _ok(sb, "id -u; id -g").split() == ["0", "0"]
    assert _ok(sb, "cat /proc/self/uid_map").split() == ["0", str(sb.uid), "1"]
    if os.geteuid() == 0:
        assert sb.uid >= UID_BASE  # a uid of its own, owning no host file
        with open(f"/proc/{sb.agent_pid}/status") as f:
            uids = next(line for line in f if line.startswith("Uid:")).split()[1:]
        assert uids == [str(sb.uid)] * 4
    status = _ok(sb, "grep -E '^(CapEff|CapPrm|CapBnd|NoNewPrivs)' /proc/self/status")
    assert status.split() == [
        "CapPrm:",
        "0" * 16,
        "CapEff:",
        "0" * 16,
        "CapBnd:",
        "0" * 16,
        "NoNewPrivs:",
        "1",
    ]


def test_the_command_cannot_touch_its_init_or_nest_namespaces(sb: LocalSandbox) -> None:
    attach = "python3 -c 'import ctypes; print(ctypes.CDLL(None).ptrace(16, 1, 0, 0))'"
    assert _ok(sb, attach).strip() == "-1"  # PTRACE_ATTACH to the init that reports status
    assert sb.run("cat /proc/1/environ").exit_code != 0
    assert _ok(sb, "kill -9 1; echo survived").strip() == "survived"
    nested = sb.run("unshare -r -m sh -c 'mount -t tmpfs x /tmp && echo mounted'")
    assert nested.exit_code != 0 and "mounted" not in nested.stdout


def test_host_files_are_not_there(sb: LocalSandbox, host_secret: str) -> None:
    listing = _ok(sb, "ls / /etc")
    for absent in ("root", "home", "var", "opt", "srv", "shadow", "envsynth-host-secret"):
        assert absent not in listing.split()
    result = sb.run("cat /etc/shadow /root/.bashrc /proc/1/root/etc/envsynth-host-secret", 5)
    assert result.exit_code != 0 and host_secret not in result.stdout + result.stderr
    # The system directories are the host's, read-only.
    assert _ok(sb, "test -x /usr/bin/python3 && echo yes").strip() == "yes"
    assert sb.run("touch /usr/bin/x /etc/x /x /dev/x", 5).stderr.count("Read-only file system") == 4


def test_only_stdio_is_inherited(sb: LocalSandbox) -> None:
    fds = _ok(sb, "python3 -c 'import os; print(sorted(os.listdir(\"/proc/self/fd\")))'")
    assert fds.strip() == "['0', '1', '2', '3']"  # 3: listdir's own handle
    assert _ok(sb, "readlink /proc/self/fd/0").strip() == "/dev/null"
    env = _ok(sb, "env | cut -d= -f1 | sort").split()
    assert "ENVSYNTH_LOCAL_SANDBOX" not in env and "PATH" in env


# ---------------------------------------------------------------------- limits


def test_rlimits_are_in_effect(sb: LocalSandbox) -> None:
    nofile, nproc, fsize, core = _ok(sb, "ulimit -n; ulimit -p; ulimit -f; ulimit -c").split()
    assert (nofile, core) == ("1024", "0")
    pids_group = sb._cgroup is not None and "pids" in sb._cgroup.dirs
    inherited = resource.getrlimit(resource.RLIMIT_NPROC)[0]
    unset = "unlimited" if inherited == resource.RLIM_INFINITY else str(inherited)
    assert nproc == (unset if pids_group else str(SPEC.pids + OWN_PROCESSES))
    assert int(fsize) * 512 == SPEC.disk_mb << 20  # dash counts 512-byte blocks


def test_reaching_the_pids_limit_kills_the_command(sb: LocalSandbox) -> None:
    result = sb.run("for i in $(seq 60); do sleep 5 & done; sleep 5; echo not-reached", 10)
    assert "not-reached" not in result.stdout and result.duration_s < 5
    if sb._cgroup is not None and "pids" in sb._cgroup.dirs and result.exit_code == 137:
        assert "process limit" in result.stderr, result  # killed by us...
    else:  # ...unless the shell's own fork failed first, and it gave up
        assert result.exit_code == 2 and "Cannot fork" in result.stderr, result
    assert _ok(sb, "echo alive").strip() == "alive"


def test_many_processes_within_the_limit_are_fine(sb: LocalSandbox) -> None:
    result = sb.run("for i in $(seq 20); do sleep 0.2 & done; wait; echo ok", 10)
    assert result.exit_code == 0 and result.stdout == "ok\n", result


def test_disk_is_the_tmpfs_size(make: type[LocalSandbox]) -> None:
    with make(SandboxSpec(disk_mb=2)) as box:
        # Many small files pass RLIMIT_FSIZE; the tmpfs size is what stops them.
        result = box.run("for i in 1 2 3; do head -c 1000000 /dev/zero > f$i || exit 9; done")
        assert result.exit_code == 9 and "No space left on device" in result.stderr
        assert box.run("head -c 1000000 /dev/zero > /tmp/t").exit_code != 0  # same tmpfs
        assert box.run("rm f1 && head -c 10 /dev/zero > /tmp/t").exit_code == 0


def test_memory_limit_oom_kills_with_cgroups(sb: LocalSandbox) -> None:
    result = sb.run("python3 -c 'x = bytearray(1 << 30); x[::4096] = b\"1\" * (1 << 18)'", 20)
    if sb._cgroup is not None:
        assert result.oom_killed and result.exit_code == 137, result
    else:
        assert result.exit_code != 0 and "MemoryError" in result.stderr, result
    assert _ok(sb, "echo alive").strip() == "alive"


def test_memory_limit_without_cgroups_is_rlimit_as(make: type[LocalSandbox]) -> None:
    with LocalSandbox(SandboxSpec(memory_mb=64), cgroups=False) as box:
        assert box._cgroup is None
        assert box.run("ulimit -v").stdout.strip() == str(64 << 10)
        result = box.run("python3 -c 'x = bytearray(100 << 20)'")
        assert result.exit_code == 1 and "MemoryError" in result.stderr and not result.oom_killed


def test_cgroup_holds_the_sandbox(sb: LocalSandbox) -> None:
    if sb._cgroup is None:
        assert os.geteuid() != 0 or not os.path.isdir("/sys/fs/cgroup/memory")
        return
    procs = Path(sb._cgroup.dirs["memory"], "cgroup.procs").read_text().split()
    assert str(sb.agent_pid) in procs and str(sb.holder_pid) in procs
    limit = Path(sb._cgroup.dirs["memory"], "memory.limit_in_bytes").read_text()
    assert int(limit) == SPEC.memory_mb << 20
    if "pids" in sb._cgroup.dirs:
        assert Path(sb._cgroup.dirs["pids"], "pids.max").read_text().strip() == str(
            SPEC.pids + OWN_PROCESSES
        )
    if "cpu" in sb._cgroup.dirs:
        quota = Path(sb._cgroup.dirs["cpu"], "cpu.cfs_quota_us").read_text()
        assert int(quota) == int(SPEC.cpus * 100_000)


# ---------------------------------------------------------------------- commands


def test_timeout_kills_the_whole_tree(sb: LocalSandbox) -> None:
    result = sb.run("setsid sh -c 'sleep 300' & (nohup sleep 300 &) ; sleep 300", timeout=1)
    assert result.timed_out and result.exit_code is None and result.duration_s < 5
    # Left: the agent and the next command's init, waiting; no sleep, no shell.
    others = _descendants(sb.agent_pid or -1) - {sb.agent_pid}
    assert [Path(f"/proc/{pid}/comm").read_text() for pid in others] == ["sandbox-init\n"]


def test_what_a_finished_command_left_running_is_gone_when_run_returns(sb: LocalSandbox) -> None:
    result = sb.run("setsid sleep 300 & (nohup sleep 301 &) ; echo started")
    assert result.exit_code == 0 and result.stdout == "started\n" and result.duration_s < 5
    names = []
    for pid in _descendants(sb.agent_pid or -1):
        with contextlib.suppress(FileNotFoundError):
            names.append(Path(f"/proc/{pid}/comm").read_text().strip())
    assert "sleep" not in names and "sh" not in names, names


def test_output_is_capped_per_stream(make: type[LocalSandbox]) -> None:
    with make(SandboxSpec(output_bytes=1024)) as box:
        result = box.run("head -c 5000 /dev/zero | tr '\\0' a; echo err >&2")
        assert result.truncated and result.stdout == "a" * 1024 and result.stderr == "err\n"
        result = box.run("echo fits")
        assert not result.truncated and result.stdout == "fits\n"


def test_state_persists_in_the_work_dir_only(sb: LocalSandbox) -> None:
    _ok(sb, "echo kept > state.txt; cd /tmp; echo gone > /work/../x 2>/dev/null; export V=1")
    assert _ok(sb, "pwd; cat state.txt; echo ${V:-unset}").split() == ["/work", "kept", "unset"]


def test_work_dirs_are_private(make: type[LocalSandbox]) -> None:
    with make(SPEC) as a, make(SPEC) as b:
        a.put_file("mine.txt", b"a's")
        _ok(a, "echo hidden > /tmp/t")
        assert b.run("cat mine.txt /tmp/t").exit_code != 0
        assert not Path("/work/mine.txt").exists()
        assert a.get_file("mine.txt") == b"a's"


def test_commands_longer_than_an_argument_are_refused(sb: LocalSandbox) -> None:
    with pytest.raises(ValueError, match="put_file"):
        sb.run("echo " + "x" * (128 * 1024))
    assert _ok(sb, "echo " + "y" * 100_000).strip() == "y" * 100_000


# ---------------------------------------------------------------------- files


def test_put_and_get_files(sb: LocalSandbox) -> None:
    sb.put_file("deep/er/data.bin", bytes(range(256)) * 10)
    assert sb.get_file("/work/deep/er/data.bin") == bytes(range(256)) * 10
    assert _ok(sb, "stat -c '%u %s' deep/er/data.bin").split() == ["0", "2560"]
    _ok(sb, "echo from-inside > inside.txt; ln -s deep/er/data.bin link")
    assert sb.get_file("inside.txt") == b"from-inside\n"
    assert sb.get_file("link") == bytes(range(256)) * 10  # a symlink that stays inside
    with pytest.raises(FileNotFoundError):
        sb.get_file("missing.txt")


@pytest.mark.parametrize(
    ("setup", "path"),
    [
        ("", "../etc/passwd"),
        ("", "/etc/passwd"),
        ("", "deep/../../x"),
        ("ln -sfn / rootlink", "rootlink/etc/hostname"),
        ("ln -sfn /etc/hostname abslink", "abslink"),
        ("ln -sfn ../../.. uplink", "uplink/x"),
    ],
)
def test_paths_out_of_the_work_dir_are_refused(sb: LocalSandbox, setup: str, path: str) -> None:
    if setup:
        _ok(sb, setup)
    with pytest.raises(PathEscapeError):
        sb.get_file(path)
    with pytest.raises(PathEscapeError):
        sb.put_file(path, b"x")


def test_special_files_are_refused_not_waited_on(sb: LocalSandbox) -> None:
    _ok(sb, "mkfifo fifo; mkdir -p adir")
    t0 = time.monotonic()
    with pytest.raises(OSError):
        sb.get_file("fifo")
    with pytest.raises(OSError):
        sb.put_file("fifo", b"x")
    with pytest.raises(IsADirectoryError):
        sb.get_file("adir")
    assert time.monotonic() - t0 < 2


# ---------------------------------------------------------------------- lifetime


def test_close_removes_everything(make: type[LocalSandbox]) -> None:
    box = make(SPEC)
    box.run("sleep 300 &")
    holder, agent, cgroup = box.holder_pid, box.agent_pid, box._cgroup
    box.close()
    box.close()
    assert holder and agent and not _alive(holder) and not _alive(agent)
    if cgroup is not None:
        assert not any(os.path.exists(d) for d in cgroup.dirs.values())
    with pytest.raises(SandboxError):
        box.run("true")
    assert not leaked()


def test_a_dead_sandbox_is_reported_not_waited_on(make: type[LocalSandbox]) -> None:
    box = make(SPEC)
    killer = threading.Timer(0.5, os.kill, (box.agent_pid, signal.SIGKILL))
    killer.start()
    t0 = time.monotonic()
    with pytest.raises(SandboxError):
        box.run("sleep 30", timeout=30)
    assert time.monotonic() - t0 < 5
    with pytest.raises(SandboxError):
        box.run("true")
    assert not leaked()


def test_a_sandbox_outlives_the_thread_that_made_it(make: type[LocalSandbox]) -> None:
    made: list[LocalSandbox] = []
    maker = threading.Thread(target=lambda: made.append(make(SPEC)))
    maker.start()
    maker.join()
    with made[0] as box:
        time.sleep(0.2)  # PR_SET_PDEATHSIG would have fired by now
        assert _ok(box, "echo alive").strip() == "alive"


CONTROLLER = """
import os, sys, time
from sandbox.local import LocalSandbox
sb = LocalSandbox()
keeper = os.fork() if sys.argv[1] == "keep-socket" else 1
if keeper == 0:  # holds the control socket open: only PR_SET_PDEATHSIG is left to act
    time.sleep(60)
    os._exit(0)
print(sb.holder_pid, sb.agent_pid, keeper, flush=True)
sb.run("setsid sleep 300 & sleep 300", timeout=600)
"""


@pytest.mark.parametrize("how", ["socket-closes", "keep-socket"])
def test_sandbox_dies_with_its_controller(make: type[LocalSandbox], how: str) -> None:
    ctl = subprocess.Popen(
        [sys.executable, "-c", CONTROLLER, how], cwd=REPO, stdout=subprocess.PIPE
    )
    assert ctl.stdout is not None
    holder, agent, keeper = map(int, ctl.stdout.readline().split())
    try:
        deadline = time.monotonic() + 10
        while len(_descendants(holder)) < 6 and time.monotonic() < deadline:
            time.sleep(0.05)  # holder, agent, command init, spare init, sh, 2 × sleep
        tree = _descendants(holder)
        assert len(tree) >= 6 and agent in tree
        ctl.kill()
        ctl.wait()
        deadline = time.monotonic() + 2
        while any(_alive(pid) for pid in tree) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not [pid for pid in tree if _alive(pid)]
    finally:
        if keeper > 1:
            os.kill(keeper, signal.SIGKILL)
    with make(SPEC):
        pass  # the next start reaps what the dead controller could not (its cgroups)
    assert not leaked()


UNPRIVILEGED = """
import contextlib
import json
from sandbox.local import LocalSandbox, leaked, unavailable_reason
from sandbox.spec import SandboxSpec
out = {"reason": unavailable_reason()}
with LocalSandbox(SandboxSpec(memory_mb=64, pids=16, disk_mb=4)) as sb:
    out["cgroup"] = sb._cgroup is not None
    out["map"] = sb.run("cat /proc/self/uid_map").stdout.split()
    out["host"] = sb.run("hostname; cat /etc/envsynth-host-secret").stdout.split()
    out["bomb"] = sb.run("python3 -c 'x = bytearray(1 << 30)'").stderr.splitlines()[-1:]
    out["timeout"] = sb.run("setsid sleep 300 & sleep 300", timeout=1).timed_out
    sb.put_file("f", b"data")
    out["file"] = sb.run("cat f").stdout
out["leaked"] = leaked()
print(json.dumps(out))
"""


def test_without_privilege_it_maps_the_caller_and_uses_rlimits(make: type[LocalSandbox]) -> None:
    """A user namespace's root is not the host's: the path a non-root caller takes."""
    done = subprocess.run(
        ["unshare", "--user", "--map-root-user", sys.executable, "-c", UNPRIVILEGED],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out == {
        "reason": None,
        "cgroup": False,
        "map": ["0", "0", "1"],
        "host": ["sandbox"],
        "bomb": ["MemoryError"],
        "timeout": True,
        "file": "data",
        "leaked": [],
    }


def test_unavailable_reason_says_why(make: type[LocalSandbox]) -> None:
    script = textwrap.dedent("""
        from pathlib import Path
        Path("/proc/sys/user/max_user_namespaces").write_text("0")
        from sandbox.local import unavailable_reason
        print(unavailable_reason())
    """)
    done = subprocess.run(
        ["unshare", "--user", "--map-root-user", sys.executable, "-c", script],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "cannot create a user namespace" in done.stdout


def test_network_on_shares_the_hosts_network(make: type[LocalSandbox]) -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        probe = f"python3 -c 'import socket; socket.create_connection((\"127.0.0.1\", {port}), 2)'"
        with make(SPEC) as closed:
            assert closed.run(probe).exit_code != 0
        with make(SandboxSpec(network=True)) as open_:
            assert open_.run(probe).exit_code == 0


def test_workdir_must_stay_out_of_system_dirs(make: type[LocalSandbox]) -> None:
    for bad in ("/etc", "/usr/x", "work", "/a/../b", "/"):
        with pytest.raises(ValueError):
            make(SandboxSpec(workdir=bad))
    with make(SandboxSpec(workdir="/home/agent/repo")) as box:
        assert _ok(box, "pwd; echo ~").split() == ["/home/agent/repo"] * 2
        box.put_file("/home/agent/repo/x", b"1")
        assert box.get_file("x") == b"1"
