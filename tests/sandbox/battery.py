"""The hostile-code battery: one list of cases, run on every sandbox backend.

Each case has a shell form (Docker, local) and a Python-cell form (Jupyter kernels), and a
check of the result. After every case the same sandbox must still answer, so a case that
kills or wedges the session fails even if its own result looks right.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sandbox.spec import ExecResult

Check = Callable[[ExecResult], None]


@dataclass(frozen=True)
class Case:
    name: str
    shell: str
    python: str
    check: Check
    timeout: float = 5.0


def _timed_out(r: ExecResult) -> None:
    assert r.timed_out and r.exit_code is None, r
    assert r.duration_s < 15, f"the timeout took {r.duration_s:.1f}s to fire"


def _failed_or_timed_out(r: ExecResult) -> None:
    assert r.timed_out or r.exit_code != 0, r


def _oom(r: ExecResult) -> None:
    assert r.oom_killed or (
        r.exit_code not in (0, None) and "MemoryError" in r.stdout + r.stderr
    ), r


def _truncated(r: ExecResult) -> None:
    assert r.truncated, r
    assert len(r.stdout.encode("utf-8", "surrogateescape")) <= 2 * 1024 * 1024


def _no_egress(r: ExecResult) -> None:
    assert "EGRESS-OK" not in r.stdout, r


def _fake_markers(r: ExecResult) -> None:
    # The command printed what a naive controller would read as "exit 0"; the real code is 3.
    assert r.exit_code == 3 and not r.timed_out, r
    assert "__ENVSYNTH_DONE__" in r.stdout


def _stdin_is_empty(r: ExecResult) -> None:
    assert not r.timed_out and r.exit_code == 0, r
    assert r.stdout.strip() == "EOF", r


def _no_host_secret(r: ExecResult) -> None:
    assert "ENVSYNTH-HOST-SECRET" not in r.stdout + r.stderr, r


def _symlink_loop(r: ExecResult) -> None:
    assert not r.timed_out and r.exit_code != 0, r


CASES = [
    Case("infinite_loop", "while :; do :; done", "while True:\n    pass", _timed_out, 2),
    Case(
        "memory_bomb",
        "python3 -c 'x = bytearray(4 << 30); x[::4096] = b\"1\" * len(x[::4096])'",
        "x = bytearray(4 << 30)\nx[::4096] = b'1' * len(x[::4096])",
        _oom,
        20,
    ),
    Case(
        "fork_bomb",
        "f() { f | f & }; f; sleep 2",
        "import os\nfor _ in range(100000):\n    try:\n"
        "        os.fork() or __import__('time').sleep(60)\n"
        "    except OSError:\n        break\nraise SystemExit(1)",
        _failed_or_timed_out,
        4,
    ),
    Case(
        "disk_fill",
        "dd if=/dev/zero of=big bs=1M count=4096",
        "open('big', 'wb').write(b'0' * (4 << 30))",
        _failed_or_timed_out,
        20,
    ),
    Case(
        "stdout_flood",
        "head -c 50000000 /dev/urandom",
        "import sys\nsys.stdout.write('x' * 50_000_000)",
        _truncated,
        20,
    ),
    Case(
        "fd_exhaustion",
        "python3 -c 'fs = [open(\"/dev/null\") for _ in range(1 << 20)]'",
        "fs = [open('/dev/null') for _ in range(1 << 20)]",
        _failed_or_timed_out,
        10,
    ),
    Case(
        "network_egress",
        "python3 -c 'import socket; "
        'socket.create_connection(("1.1.1.1", 80), 2); print("EGRESS-OK")\'',
        "import socket\nsocket.create_connection(('1.1.1.1', 80), 2)\nprint('EGRESS-OK')",
        _no_egress,
        10,
    ),
    Case(
        "daemonized_escaper",
        "setsid sh -c 'sleep 300' & nohup sleep 300 & sleep 300",
        "import subprocess\nsubprocess.Popen(['sleep', '300'], start_new_session=True)\n"
        "import time\ntime.sleep(300)",
        _timed_out,
        2,
    ),
    Case(
        "grandchild_holds_pipe",
        "(sleep 300 &) ; echo parent-done",
        "import subprocess\nsubprocess.Popen('sleep 300 &', shell=True)\nprint('parent-done')",
        lambda r: (r.exit_code == 0 and "parent-done" in r.stdout) or _timed_out(r),
        10,
    ),
    Case(
        "fake_completion_markers",
        "echo '__ENVSYNTH_DONE__ 0'; echo '__ENVSYNTH_DONE__:0'; exit 3",
        "print('__ENVSYNTH_DONE__ 0')\nraise SystemExit(3)",
        _fake_markers,
    ),
    Case(
        "reads_stdin",
        "cat; echo EOF",
        "import sys\ntry:\n    sys.stdin.read()\nexcept Exception:\n    pass\nprint('EOF')",
        _stdin_is_empty,
    ),
    Case(
        "kills_own_shell", "kill -9 $$", "import os\nos.kill(os.getpid(), 9)", _failed_or_timed_out
    ),
    Case(
        "symlink_loop",
        "ln -s a b && ln -s b a && cat a",
        "import os\nos.symlink('a', 'b')\nos.symlink('b', 'a')\nopen('a').read()",
        _symlink_loop,
    ),
    Case(
        "reads_host_files",
        "cat /etc/envsynth-host-secret; cat /proc/1/root/etc/envsynth-host-secret",
        "print(open('/etc/envsynth-host-secret').read())",
        _no_host_secret,
    ),
]
