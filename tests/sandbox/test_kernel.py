"""KernelSandbox against real kernels, in a real container and in real namespaces."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from battery import CASES, Case
from needs import require
from test_hostile import SPEC as BATTERY_SPEC

from sandbox.kernel import KernelSandbox, leaked, unavailable_reason
from sandbox.kernel_pool import KernelPool
from sandbox.kernel_process import KernelProcess
from sandbox.spec import SandboxSpec

ISOLATIONS = ["docker", "local"]
LIMITS = {"memory_mb": 256, "pids": 64, "disk_mb": 64, "output_bytes": 64 * 1024, "wall_time_s": 10}


@pytest.fixture(scope="module", params=ISOLATIONS)
def isolation(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def pool(isolation: str) -> Iterator[KernelPool]:
    spec = SandboxSpec(**LIMITS)
    require(f"the kernel sandbox ({isolation})", unavailable_reason(isolation, spec))  # type: ignore[arg-type]
    with KernelPool(spec, size=2, isolation=isolation) as kernels:  # type: ignore[arg-type]
        yield kernels
    assert not leaked(), f"left behind: {leaked()}"


@pytest.fixture
def sb(pool: KernelPool) -> Iterator[KernelSandbox]:
    """A sandbox of its own, for tests that kill or restart its kernel."""
    with KernelSandbox(pool=pool) as sandbox:
        yield sandbox


@pytest.fixture(scope="module")
def shared(pool: KernelPool) -> Iterator[KernelSandbox]:
    """One sandbox for the tests that leave its kernel alive (kernels take a second to start)."""
    with KernelSandbox(pool=pool) as sandbox:
        yield sandbox


def _gone(pid: int, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while Path(f"/proc/{pid}").exists():
        stat = Path(f"/proc/{pid}/stat").read_text(errors="replace")
        if stat[stat.rindex(")") + 2] == "Z" or time.monotonic() > deadline:
            return stat[stat.rindex(")") + 2] == "Z"
        time.sleep(0.02)
    return True


def test_state_is_kept_between_cells(shared: KernelSandbox) -> None:
    assert shared.run("base = 20\ndef add(y):\n    return base + y").ok
    r = shared.run("print(add(1)); add(2)")
    assert (r.exit_code, r.stdout, r.stderr) == (0, "21\n22\n", "")


def test_streams_and_results_are_split(shared: KernelSandbox) -> None:
    r = shared.run(
        "import sys, subprocess\nprint('out')\nsys.stderr.write('err\\n')\n"
        "subprocess.run('echo child-out; echo child-err >&2', shell=True)\n'value'"
    )
    assert r.exit_code == 0 and not r.truncated
    # A child's output reaches ipykernel at the file-descriptor level and is forwarded by a
    # background thread, so where it lands relative to the cell's own output is not fixed.
    lines = r.stdout.splitlines()
    assert sorted(lines) == sorted(["out", "child-out", "'value'"])
    assert lines.index("out") < lines.index("'value'")
    assert sorted(r.stderr.splitlines()) == ["child-err", "err"]


def test_exception_gives_exit_1_and_a_plain_traceback(shared: KernelSandbox) -> None:
    r = shared.run("def g():\n    return 1 / 0\ng()")
    assert r.exit_code == 1 and not r.timed_out
    assert "ZeroDivisionError: division by zero" in r.stderr
    assert "return 1 / 0" in r.stderr and "\x1b[" not in r.stderr  # no terminal colours
    assert shared.run("'still here'").stdout == "'still here'\n"


@pytest.mark.parametrize(
    ("cell", "code", "stderr"),
    [
        ("raise SystemExit(3)", 3, ""),
        ("import sys; sys.exit()", 0, ""),
        ("import sys; sys.exit(0)", 0, ""),
        ("raise SystemExit('bad input')", 1, "bad input\n"),
    ],
)
def test_system_exit_gives_its_code(
    shared: KernelSandbox, cell: str, code: int, stderr: str
) -> None:
    r = shared.run(cell)
    assert (r.exit_code, r.stderr, r.timed_out) == (code, stderr, False)


def test_timeout_interrupts_and_keeps_state(shared: KernelSandbox) -> None:
    shared.run("kept = 41")
    r = shared.run("n = 0\nwhile True:\n    n += 1", timeout=1)
    assert r.timed_out and r.exit_code is None
    assert 1 <= r.duration_s < 2.5
    assert "KeyboardInterrupt" in r.stderr and "state is kept" in r.stderr
    after = shared.run("print(kept + 1, n > 0)")
    assert after.stdout == "42 True\n"


def test_a_cell_that_ignores_the_interrupt_gets_a_fresh_kernel(sb: KernelSandbox) -> None:
    sb.run("x = 1")
    r = sb.run(
        "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass",
        timeout=1,
    )
    assert r.timed_out and r.exit_code is None
    assert "restarted" in r.stderr
    assert r.duration_s < 1 + sb.interrupt_grace_s + 1.5
    after = sb.run("print('x' in dir())")
    assert (after.exit_code, after.stdout) == (0, "False\n")


@pytest.mark.parametrize(
    ("cell", "why"),
    [
        ("import os\nos.kill(os.getpid(), 9)", "killed by signal 9"),
        ("import os\nos._exit(7)", "exited with status 7"),
    ],
)
def test_a_dead_kernel_is_reported_at_once_and_replaced(
    sb: KernelSandbox, cell: str, why: str
) -> None:
    sb.run("x = 1")
    r = sb.run(cell, timeout=30)
    assert r.exit_code is None and not r.timed_out and not r.oom_killed
    assert r.duration_s < 2, "the death was waited on, not noticed"
    assert why in r.stderr and "fresh kernel" in r.stderr
    after = sb.run("print('x' in dir())")
    assert (after.exit_code, after.stdout) == (0, "False\n")


def test_a_kernel_killed_between_cells_is_noticed(sb: KernelSandbox) -> None:
    kernel = sb._kernel
    assert isinstance(kernel, KernelProcess)
    os.kill(kernel.pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while kernel.is_alive() and time.monotonic() < deadline:
        time.sleep(0.01)
    r = sb.run("print('fresh')")
    assert (r.exit_code, r.stdout) == (0, "fresh\n"), r
    assert "killed by signal 9" in r.stderr and "between cells" in r.stderr


def test_memory_bomb_is_oom_killed_and_the_sandbox_survives(sb: KernelSandbox) -> None:
    r = sb.run("x = bytearray(1 << 30)\nx[::4096] = b'1' * len(x[::4096])", timeout=30)
    assert r.oom_killed or "MemoryError" in r.stderr, r
    assert sb.run("print('alive')").stdout == "alive\n"


def test_output_is_capped_without_wedging(shared: KernelSandbox) -> None:
    cap = shared.spec.output_bytes
    r = shared.run(
        "import sys\nsys.stdout.write('é' * 50_000_000)\nprint('x' * 100, file=sys.stderr)",
        timeout=30,
    )
    assert r.exit_code == 0 and r.truncated
    assert len(r.stdout.encode()) <= cap and r.stdout == "é" * (len(r.stdout))
    assert len(r.stdout) >= cap // 2 - 1
    assert r.stderr == "x" * 100 + "\n"
    assert r.duration_s < 10
    small = shared.run("print('x' * 10)")
    assert (small.stdout, small.truncated) == ("x" * 10 + "\n", False)


AROUND_THE_CAP = (
    "k = get_ipython().kernel\n"
    "k.session.send(k.iopub_socket, 'stream', {'name': 'stdout', 'text': 'x' * 10_000_000},\n"
    "               parent=get_ipython().parent_header)"
)


@pytest.mark.parametrize(
    ("cell", "code"),
    [
        ("'y' * 5_000_000", 0),
        ("raise ValueError('x' * 5_000_000)", 1),
        (AROUND_THE_CAP, 0),  # a cell that sends its own message, past the kernel's cap
    ],
)
def test_huge_messages_are_dropped_not_buffered(
    shared: KernelSandbox, cell: str, code: int
) -> None:
    """A 5 MB result or exception is over the message limit (3 MB here): dropped; the session
    goes on."""
    shared.run("survivor = 7")
    r = shared.run(cell, timeout=30)
    assert (r.exit_code, r.truncated, r.timed_out) == (code, True, False), r
    assert len(r.stdout) <= shared.spec.output_bytes and r.duration_s < 10
    assert "over the size limit" in r.stderr
    assert shared.run("print(survivor)").stdout == "7\n"


def test_cells_leave_no_process_behind(shared: KernelSandbox) -> None:
    r = shared.run(
        "import subprocess\nsubprocess.Popen(['sleep', '300'], start_new_session=True)\n"
        "subprocess.Popen('sleep 301 &', shell=True)\nprint('started')"
    )
    assert r.exit_code == 0 and "killed" in r.stderr
    kernel = shared._kernel
    assert kernel is not None and kernel.kill_strays().killed == 0


def test_files_move_both_ways(shared: KernelSandbox) -> None:
    data = os.urandom(3 << 20)  # three chunks and some
    shared.put_file("sub/dir/blob.bin", data)
    assert shared.get_file("sub/dir/blob.bin") == data
    shared.put_file("empty", b"")
    assert shared.get_file("empty") == b""
    r = shared.run(
        "import hashlib; print(hashlib.sha256(open('sub/dir/blob.bin', 'rb').read()).hexdigest())"
    )
    import hashlib

    assert r.stdout.strip() == hashlib.sha256(data).hexdigest()
    shared.run("open('made-here.txt', 'w').write('from the cell')")
    assert shared.get_file(f"{shared.spec.workdir}/made-here.txt") == b"from the cell"


def test_file_errors_are_typed(shared: KernelSandbox, host_secret: str) -> None:
    with pytest.raises(FileNotFoundError):
        shared.get_file("no-such-file")
    with pytest.raises(FileNotFoundError):
        shared.get_file("/etc/envsynth-host-secret")
    with pytest.raises(IsADirectoryError):
        shared.get_file(".")
    with pytest.raises(OSError):
        shared.put_file("/usr/evil", b"x")  # the root is read-only
    shared.run("import os; os.symlink('/etc/envsynth-host-secret', 'link')")
    with pytest.raises(FileNotFoundError):
        shared.get_file("link")


def test_no_network_no_host_files_no_privilege(shared: KernelSandbox, host_secret: str) -> None:
    r = shared.run(
        "import os, socket\n"
        "print([l.split()[1] for l in open('/proc/self/status') if l.startswith('CapEff')])\n"
        "print(sorted(n for _, n in socket.if_nameindex()))\n"
        f"print(os.path.exists({__file__!r}), os.path.exists('/etc/envsynth-host-secret'))\n"
        "print(os.access('/usr/bin', os.W_OK))"
    )
    assert r.stdout == "['0000000000000000']\n['lo']\nFalse False\nFalse\n", r


def test_pool_hands_out_distinct_kernels_and_refills(pool: KernelPool) -> None:
    assert pool.wait_full(120)
    a, b = pool.acquire(), pool.acquire()
    try:
        assert a.pid != b.pid and a.is_alive() and b.is_alive()
        assert a.connection["ip"] != b.connection["ip"]
        assert pool.wait_full(120) and pool.idle() == pool.size
    finally:
        a.destroy()
        b.destroy()
    assert _gone(a.init_pid) and _gone(b.init_pid)


def test_close_leaves_no_process(pool: KernelPool) -> None:
    sb = KernelSandbox(pool=pool)
    kernel = sb._kernel
    assert kernel is not None
    sb.run("import threading, time\nthreading.Thread(target=time.sleep, args=(300,)).start()")
    sb.close()
    sb.close()  # idempotent
    assert _gone(kernel.pid) and _gone(kernel.init_pid)
    assert not Path(kernel.connection["ip"]).parent.exists()
    with pytest.raises(Exception, match="closed"):
        sb.run("1")


def test_kernels_die_with_their_controller(pool: KernelPool, isolation: str) -> None:
    """A controller killed by SIGKILL takes its kernel along; the next start reaps the rest."""
    script = textwrap.dedent(f"""
        import time
        from sandbox.kernel import KernelSandbox
        from sandbox.spec import SandboxSpec
        spec = SandboxSpec.model_validate_json({pool.spec.model_dump_json(exclude_unset=True)!r})
        sb = KernelSandbox(spec, isolation={isolation!r})
        print(sb._kernel.pid, sb._kernel.init_pid, flush=True)
        time.sleep(300)
    """)
    child = subprocess.Popen(
        [sys.executable, "-c", script],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    try:
        line = child.stdout.readline() if child.stdout else ""
        pid, init_pid = (int(p) for p in line.split())
    finally:
        child.kill()
        child.wait()
    assert _gone(pid, 10) and _gone(init_pid, 10)
    if isolation == "docker":
        from sandbox import reaper
        from sandbox.kernel_container import docker_client

        reaper.reap(docker_client())
        theirs = [
            c
            for c in reaper.ours(docker_client())
            if c.labels.get(reaper.OWNER_PID) == str(child.pid)
        ]
        assert not theirs


@pytest.fixture(scope="module")
def jail() -> Iterator[KernelSandbox]:
    """The battery's sandbox in a kernel jail (test_hostile covers the default, Docker)."""
    require("the kernel sandbox (local)", unavailable_reason("local"))
    with KernelSandbox(BATTERY_SPEC, isolation="local") as sandbox:
        yield sandbox
        last = sandbox._kernel
    assert last is not None and _gone(last.pid) and _gone(last.init_pid)
    assert not Path(last.connection["ip"]).parent.exists()


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_the_battery_is_contained_in_a_jail(jail: KernelSandbox, case: Case) -> None:
    t0 = time.monotonic()
    result = jail.run(case.python, timeout=case.timeout)
    assert time.monotonic() - t0 < case.timeout + 20, "the controller was not responsive"
    case.check(result)
    alive = jail.run("print('alive')", timeout=10)
    assert alive.exit_code == 0 and alive.stdout.strip() == "alive", (case.name, alive)
