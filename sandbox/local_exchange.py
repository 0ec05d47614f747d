"""One command of a `LocalSandbox`, seen from the controller: output, deadline, report.

The command writes straight into two pipes of ours; what passes `spec.output_bytes` is read
and dropped, so a flood neither blocks the command nor fills our memory. The agent reports
the exit status once the command's whole pid namespace is gone.
"""

from __future__ import annotations

import os
import selectors
import socket
import time
from collections.abc import Callable

from sandbox import namespaces
from sandbox.base import SandboxError

KILL_GRACE_S = 5.0
DRAIN_GRACE_S = 2.0
PIDS_POLL_S = 0.05
PIDS_NOTE = (
    "envsynth: the command reached the sandbox's process limit; it and every process it "
    "started were killed\n"
)


class Exchange:
    """One command seen from the controller: its two streams, its deadline, its report.

    The command is killed at the deadline, or — like the OOM killer for memory — as soon as
    the pids limit refuses it a fork: a fork bomb would otherwise hold the sandbox's whole
    process table until the deadline (with cgroups only; rlimits keep no such count).
    """

    def __init__(
        self,
        sock: socket.socket,
        rid: int,
        fds: list[int],
        cap: int,
        timeout: float,
        fork_refusals: Callable[[], int] | None,
    ):
        self.sock, self.rid, self.fds = sock, rid, fds
        self.outputs = [Capture(cap), Capture(cap)]
        self.fork_refusals = fork_refusals
        self.refused_before = fork_refusals() if fork_refusals else 0
        self.start = time.monotonic()
        self.deadline = self.start + timeout
        self.kill_reason: str | None = None
        self.kill_deadline = self.drain_deadline = float("inf")
        self.report: dict | None = None

    def wait(self) -> dict:
        """Pump output until the agent reports the command's end and both streams close."""
        open_fds = set(self.fds)
        with selectors.DefaultSelector() as sel:
            for i, fd in enumerate(self.fds):
                sel.register(fd, selectors.EVENT_READ, i)
            sel.register(self.sock, selectors.EVENT_READ, "agent")
            while self.report is None or open_fds:
                now = time.monotonic()
                self._enforce(now)
                if now >= self.drain_deadline:
                    break  # everything is dead; only a descriptor passed elsewhere stays open
                for key, _ in sel.select(max(0.0, self._wake(now) - now)):
                    if key.data == "agent":
                        if self._receive():
                            sel.unregister(self.sock)
                        continue
                    chunk = os.read(key.fd, 1 << 20)
                    if chunk:
                        self.outputs[key.data].feed(chunk)
                    else:
                        sel.unregister(key.fd)
                        open_fds.discard(key.fd)
        return self.report  # type: ignore[return-value]  # the loop ends only with a report

    def _enforce(self, now: float) -> None:
        if self.report is not None:
            return
        if self.kill_reason is not None:
            if now >= self.kill_deadline:
                raise SandboxError("the local sandbox did not stop a command; it was closed")
        elif now >= self.deadline:
            self._kill("timeout", now)
        elif self.fork_refusals and self.fork_refusals() > self.refused_before:
            self._kill("pids", now)

    def _kill(self, reason: str, now: float) -> None:
        namespaces.send_msg(self.sock, {"op": "kill", "run": self.rid})
        self.kill_reason, self.kill_deadline = reason, now + KILL_GRACE_S

    def _wake(self, now: float) -> float:
        if self.report is not None:
            return self.drain_deadline
        if self.kill_reason is not None:
            return self.kill_deadline
        return min(self.deadline, now + PIDS_POLL_S) if self.fork_refusals else self.deadline

    def _receive(self) -> bool:
        """Take one agent message; True once it is this command's report."""
        msg = namespaces.recv_msg(self.sock)
        if msg is None:
            raise SandboxError("the local sandbox died during a command")
        if msg[0].get("op") == "error":
            raise SandboxError(f"the local sandbox failed: {msg[0].get('message')}")
        if msg[0].get("op") == "exit" and msg[0].get("run") == self.rid:
            self.report = msg[0]
            self.drain_deadline = time.monotonic() + DRAIN_GRACE_S
        return self.report is not None


class Capture:
    """One output stream, kept up to a cap; the rest is read and dropped."""

    def __init__(self, cap: int):
        self.cap, self.data, self.truncated = cap, bytearray(), False

    def feed(self, chunk: bytes) -> None:
        room = self.cap - len(self.data)
        if room > 0:
            self.data += chunk[:room]
        if len(chunk) > room:
            self.truncated = True

    def text(self) -> str:
        return self.data.decode("utf-8", "surrogateescape")
