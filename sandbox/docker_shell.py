"""The controller's end of a Docker sandbox's persistent shell: one `docker exec` of the supervisor.

The supervisor (`sandbox/shell_supervisor.py`) runs inside the container and frames everything
it sends; this side demultiplexes Docker's exec stream, matches frames to the request that asked
for them by nonce, and turns a supervisor that stopped answering into `ShellGone`.
"""

from __future__ import annotations

import functools
import os
import socket
import struct
import time
from dataclasses import dataclass
from pathlib import Path

import docker

from sandbox import shell_supervisor as proto
from sandbox.base import SandboxError

DOCKER_FRAME = struct.Struct(">BxxxL")
# Past the command's own timeout the supervisor needs at most its abort grace plus one kill
# round to report; beyond this much more it is taken to be wedged.
BACKSTOP_S = proto.ABORT_GRACE_S + 2 * proto.KILL_DEADLINE_S + 5.0
REQUEST_TIMEOUT_S = 60.0
STARTUP_TIMEOUT_S = 30.0


class ShellGone(SandboxError):
    """The supervisor's stream ended or it stopped answering: restart it (or the container)."""


@dataclass(frozen=True)
class Reply:
    """One command's end as the supervisor reported it."""

    exit_code: int | None
    timed_out: bool
    oom_killed: bool
    truncated: bool
    stdout: bytes
    stderr: bytes
    note: str


class ShellChannel:
    """A running supervisor: send commands and file requests, read framed replies.

    Args:
        api: a low-level Docker client.
        container_id: the sandbox's container.
        workdir: the shell's working directory.
        user: the user the supervisor (and so every command) runs as.
        keep: pids the supervisor must never kill (init and the dead-man timer); empty on the
            first start, which learns them.
    """

    def __init__(
        self, api: docker.APIClient, container_id: str, workdir: str, user: str, keep: str = ""
    ) -> None:
        argv = [
            "/usr/bin/python3",
            "-I",
            "-S",
            "-c",
            proto.BOOTSTRAP,
            str(len(_supervisor_source())),
            workdir,
            keep,
        ]
        exec_id = api.exec_create(container_id, argv, stdin=True, user=user, workdir=workdir)["Id"]
        self._api, self._exec_id = api, exec_id
        self._io = api.exec_start(exec_id, socket=True)
        self._sock: socket.socket = getattr(self._io, "_sock", self._io)
        self._raw = bytearray()
        self._out = bytearray()
        self._diag = bytearray()
        try:
            self._write(_supervisor_source())
            kind, _, payload = self._frame(time.monotonic() + STARTUP_TIMEOUT_S)
            if kind != b"H":
                raise ShellGone(f"the supervisor did not start: {self.diagnostics()}")
        except ShellGone as e:
            self.close()
            if self.exit_code() not in (126, 127):
                raise
            hint = "sandbox images need /usr/bin/python3 and bash: build them on envsynth/base"
            raise ShellGone(f"{e} ({hint})") from e
        except BaseException:
            self.close()
            raise
        pid, _, keep_pids = payload.decode().partition(" ")
        self.pid, self.keep = int(pid), keep_pids

    def run(self, cmd: str, timeout: float, cap: int) -> Reply:
        """Run one command to completion (or timeout) in the persistent shell."""
        nonce = os.urandom(8)
        self._send(
            b"R", nonce, proto.RUN.pack(timeout, cap) + cmd.encode("utf-8", "surrogateescape")
        )
        deadline = time.monotonic() + timeout + BACKSTOP_S
        out, err = bytearray(), bytearray()
        while True:
            kind, got, payload = self._frame(deadline)
            if got != nonce:
                continue  # a late frame of an earlier request
            if kind == b"O":
                out += payload
            elif kind == b"E":
                err += payload
            elif kind == b"X":
                head, _, note = payload.partition(b"\n")
                rc, timed_out, oom, truncated = head.split()
                return Reply(
                    None if rc == b"-" else int(rc),
                    timed_out == b"1",
                    oom == b"1",
                    truncated == b"1",
                    bytes(out),
                    bytes(err),
                    note.decode("utf-8", "replace"),
                )

    def request(self, kind: bytes, payload: bytes) -> bytes:
        """A file request (``P``, ``G``, ``K``); return the data, or raise the OSError it gave."""
        nonce = os.urandom(8)
        self._send(kind, nonce, payload)
        deadline = time.monotonic() + REQUEST_TIMEOUT_S
        while True:
            got_kind, got, reply = self._frame(deadline)
            if got == nonce and got_kind == b"F":
                break
        if reply[:1] == b"0":
            return reply[1:]
        code, _, message = reply[1:].decode("utf-8", "replace").partition(" ")
        raise OSError(int(code), message)

    def exit_code(self) -> int | None:
        """The supervisor's exit status once it has ended (126/127: it could not be run)."""
        try:
            return self._api.exec_inspect(self._exec_id).get("ExitCode")
        except docker.errors.APIError:
            return None

    def diagnostics(self) -> str:
        """What the supervisor wrote to its own stderr (tracebacks), for error messages."""
        return self._diag.decode("utf-8", "replace")[-2000:]

    def close(self) -> None:
        for closable in (self._sock, self._io):
            try:
                closable.close()
            except OSError:
                pass

    def _send(self, kind: bytes, nonce: bytes, payload: bytes) -> None:
        self._write(proto.HEADER.pack(kind, nonce, len(payload)) + payload)

    def _write(self, data: bytes) -> None:
        try:
            self._sock.settimeout(REQUEST_TIMEOUT_S)
            self._sock.sendall(data)
        except OSError as e:
            raise ShellGone(f"could not write to the supervisor: {e}") from e

    def _frame(self, deadline: float) -> tuple[bytes, bytes, bytes]:
        while True:
            if len(self._out) >= proto.HEADER.size:
                kind, nonce, length = proto.HEADER.unpack_from(self._out)
                end = proto.HEADER.size + length
                if len(self._out) >= end:
                    payload = bytes(self._out[proto.HEADER.size : end])
                    del self._out[:end]
                    return kind, nonce, payload
            self._fill(deadline)

    def _fill(self, deadline: float) -> None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise ShellGone("the supervisor stopped answering")
        try:
            self._sock.settimeout(remaining)
            data = self._sock.recv(1 << 16)
        except TimeoutError as e:
            raise ShellGone("the supervisor stopped answering") from e
        except OSError as e:
            raise ShellGone(f"the supervisor's stream broke: {e}") from e
        if not data:
            raise ShellGone(f"the supervisor exited: {self.diagnostics()}".rstrip(": "))
        self._raw += data
        while len(self._raw) >= DOCKER_FRAME.size:
            stream, size = DOCKER_FRAME.unpack_from(self._raw)
            end = DOCKER_FRAME.size + size
            if len(self._raw) < end:
                break
            (self._out if stream == 1 else self._diag).extend(self._raw[DOCKER_FRAME.size : end])
            del self._raw[:end]
        del self._diag[:-8192]


@functools.cache
def _supervisor_source() -> bytes:
    return Path(proto.__file__).read_bytes()
