"""The controller's side of the Jupyter messaging protocol with one kernel, over ZMQ.

It knows nothing of where the kernel runs; it is handed the kernel's connection info and a
file descriptor that becomes readable when the kernel process dies (a pidfd), so a dead
kernel is noticed at once, in the same poll that waits for its messages.

Everything the kernel sends is untrusted: messages are size- and count-limited at the ZMQ
level, so a hostile kernel can neither make the controller buffer unbounded data nor wedge
it, and output is capped as it arrives.
"""

from __future__ import annotations

import ast
import hmac
import os
import re
import stat
import time
from dataclasses import dataclass
from typing import Any

import orjson
import zmq
from jupyter_client.session import DELIM, Session

from sandbox.base import SandboxError

_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
# ZMQ buffers at most this many messages per socket when the controller is not reading.
_RCVHWM = 16
# How long the reply and the final "idle" may lag one another before the other counts as lost.
_LOST_GRACE_S = 1.0
# After a kernel's death, how long its last messages may take to arrive.
_DRAIN_S = 0.05


class KernelGone(SandboxError):
    """The kernel process died while the controller was waiting on it."""


class _CappedText:
    """Text kept up to `cap` UTF-8 bytes; what comes beyond is dropped and remembered."""

    def __init__(self, cap: int):
        self.cap = cap
        self.parts: list[bytes] = []
        self.size = 0
        self.truncated = False

    def add(self, text: str) -> None:
        data = text.encode("utf-8", "surrogateescape")
        room = self.cap - self.size
        if len(data) > room:
            data, self.truncated = data[:room], True
        if data:
            self.parts.append(data)
            self.size += len(data)

    def text(self) -> str:
        # A cut may split a multi-byte character; drop its first half rather than fail.
        return b"".join(self.parts).decode("utf-8", "ignore")


@dataclass
class Execution:
    """One execute request in flight, and what came back for it so far."""

    msg_id: str
    stdout: _CappedText
    stderr: _CappedText
    reply: dict[str, Any] | None = None
    replied_at: float = 0.0
    idle: bool = False
    idle_at: float = 0.0
    error: dict[str, Any] | None = None
    reply_lost: bool = False
    output_lost: bool = False

    @property
    def done(self) -> bool:
        return (self.reply is not None or self.reply_lost) and (self.idle or self.output_lost)

    def outcome(self) -> dict[str, Any]:
        """The reply, or what stands in for a lost one: the error the kernel published."""
        if self.reply is not None:
            return self.reply
        return {"status": "error", **self.error} if self.error else {"status": "ok"}


class KernelClient:
    """Shell and iopub channels to one kernel.

    Args:
        connection: the kernel's connection info (as in its connection file).
        death_fd: a file descriptor that becomes readable when the kernel process exits.
        max_message_bytes: larger messages from the kernel are dropped by ZMQ unread.
    """

    def __init__(self, connection: dict[str, Any], death_fd: int, max_message_bytes: int):
        self.session = Session(key=connection["key"].encode(), signature_scheme="hmac-sha256")
        self.context = zmq.Context()
        self.connection, self.max_message_bytes = connection, max_message_bytes
        self.death_fd = death_fd
        self.shell = self._socket(zmq.DEALER, "shell_port")
        self.iopub = self._socket(zmq.SUB, "iopub_port")
        self.poller = zmq.Poller()
        self.poller.register(self.shell, zmq.POLLIN)
        self.poller.register(self.iopub, zmq.POLLIN)
        self.poller.register(death_fd, zmq.POLLIN)

    def _socket(self, kind: int, port: str) -> zmq.Socket:
        sock = self.context.socket(kind)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.RCVHWM, _RCVHWM)
        sock.setsockopt(zmq.MAXMSGSIZE, self.max_message_bytes)
        if kind == zmq.SUB:
            sock.setsockopt(zmq.SUBSCRIBE, b"")
        sock.connect(f"ipc://{self.connection['ip']}-{self.connection[port]}")
        return sock

    def reconnect(self, shell: bool, iopub: bool, timeout: float) -> None:
        """Replace sockets whose connection broke: ZMQ drops a connection that brought an
        over-sized message, and does not make a new one.

        Raises:
            KernelGone, TimeoutError: as `wait_ready`.
            SandboxError: a socket path no longer holds a socket (where the kernel can write
                the socket dir, it could have put a link to some other socket there).
        """
        for port in ("shell_port", "iopub_port"):
            path = f"{self.connection['ip']}-{self.connection[port]}"
            if not stat.S_ISSOCK(os.lstat(path).st_mode):
                raise SandboxError(f"{path} is no longer the kernel's socket")
        for name, port, kind, wanted in (
            ("shell", "shell_port", zmq.DEALER, shell),
            ("iopub", "iopub_port", zmq.SUB, iopub),
        ):
            if wanted:
                old = getattr(self, name)
                self.poller.unregister(old)
                old.close(linger=0)
                setattr(self, name, self._socket(kind, port))
                self.poller.register(getattr(self, name), zmq.POLLIN)
        self.wait_ready(timeout)

    def close(self) -> None:
        self.context.destroy(linger=0)

    def wait_ready(self, timeout: float) -> None:
        """Block until the kernel answers a kernel_info request.

        Raises:
            KernelGone: the kernel died while starting.
            TimeoutError: it did not answer within `timeout` seconds.
        """
        deadline = time.monotonic() + timeout
        # iopub is a PUB socket: until our subscription reaches it, its messages are lost.
        # Asking again until an iopub message arrives proves the subscription is in place.
        while True:
            msg = self._send("kernel_info_request", {})
            retry_at = min(deadline, time.monotonic() + 0.2)
            replied = iopub_seen = False
            while not (replied and iopub_seen) and time.monotonic() < retry_at:
                events = dict(self.poller.poll(max(1, int((retry_at - time.monotonic()) * 1000))))
                if self.death_fd in events:
                    raise KernelGone("the kernel died while starting")
                if self.shell in events:
                    replied |= self._recv(self.shell, msg) is not None
                if self.iopub in events:
                    iopub_seen |= self._recv(self.iopub, msg) is not None
            if replied and iopub_seen:
                return
            if time.monotonic() >= deadline:
                raise TimeoutError(f"the kernel did not answer within {timeout:.0f}s")

    def _send(self, msg_type: str, content: dict[str, Any]) -> dict[str, Any]:
        """Send a request on the shell channel; the message as sent.

        Raises:
            SandboxError: the session would not send: it refuses to in a process forked
                from the one that made this client.
        """
        msg = self.session.send(self.shell, msg_type, content)
        if msg is None:
            raise SandboxError(
                "a kernel cannot be used from a forked process; start one in this process"
            )
        return msg

    def _recv(self, sock: zmq.Socket, request: dict[str, Any]) -> dict[str, Any] | None:
        """One message from `sock`, or None if it does not answer `request` or is invalid.

        Parsed here rather than by `Session.recv`, which turns every header date into a
        datetime: a third of the controller's time per cell. The parent is read first, so a
        message for another request costs no content parsing.
        """
        try:
            frames = sock.recv_multipart(zmq.NOBLOCK)
            parts = frames[frames.index(DELIM) + 1 :]  # after the routing identities
            signature, header, parent, _, content = parts[:5]
            if not hmac.compare_digest(signature, self.session.sign(parts[1:5])):
                return None  # not signed with the key: not from the kernel
            if orjson.loads(parent).get("msg_id") != request["header"]["msg_id"]:
                return None
            head = orjson.loads(header)
            return {"msg_type": head["msg_type"], "content": orjson.loads(content)}
        except (ValueError, KeyError, TypeError, AttributeError, zmq.Again):
            return None  # a malformed message: the kernel's own problem

    def execute(
        self,
        code: str,
        cap: int,
        *,
        silent: bool = False,
        user_expressions: dict[str, str] | None = None,
    ) -> Execution:
        """Send an execute request; follow it with `wait`."""
        content = {
            "code": code,
            "silent": silent,
            "store_history": not silent,
            "user_expressions": user_expressions or {},
            "allow_stdin": False,
            "stop_on_error": False,
        }
        msg = self._send("execute_request", content)
        return Execution(msg["header"]["msg_id"], _CappedText(cap), _CappedText(cap))

    def wait(self, ex: Execution, deadline: float) -> bool:
        """Collect what `ex` produces until it is done (True) or `deadline` passes (False).

        The kernel sends its reply (shell) and then "idle" (iopub). ZMQ drops a message over
        the size limit and with it the connection, so when one of the two has come and the
        other has not within `_LOST_GRACE_S`, it is taken as lost, and the request as done.

        Raises:
            KernelGone: the kernel died first.
        """
        request = {"header": {"msg_id": ex.msg_id}}
        while not ex.done:
            now = time.monotonic()
            half = ex.replied_at if ex.reply is not None else ex.idle_at if ex.idle else None
            if half is None:
                if now >= deadline:
                    return False
                until = deadline
            else:
                until = half + _LOST_GRACE_S  # the cell has ended; its deadline no longer counts
                if now >= until:
                    ex.reply_lost, ex.output_lost = ex.reply is None, not ex.idle
                    break
            events = dict(self.poller.poll(max(1, int((until - now) * 1000) + 1)))
            if self.shell in events:
                msg = self._recv(self.shell, request)
                if msg is not None and msg["msg_type"] == "execute_reply":
                    ex.reply, ex.replied_at = msg["content"], time.monotonic()
            if self.iopub in events:
                msg = self._recv(self.iopub, request)
                if msg is not None:
                    _collect(ex, msg)
            if self.death_fd in events and not ex.done:
                self._drain(ex, request)
                raise KernelGone("the kernel died")
        return True

    def _drain(self, ex: Execution, request: dict[str, Any]) -> None:
        """Collect output the kernel sent before it died (some may still be in flight)."""
        while self.iopub.poll(int(_DRAIN_S * 1000)):
            msg = self._recv(self.iopub, request)
            if msg is not None:
                _collect(ex, msg)


def _collect(ex: Execution, msg: dict[str, Any]) -> None:
    """Fold one iopub message into `ex`."""
    kind, content = msg["msg_type"], msg["content"]
    if kind == "status" and content.get("execution_state") == "idle" and not ex.idle:
        ex.idle, ex.idle_at = True, time.monotonic()
    elif kind == "stream":
        target = ex.stderr if content.get("name") == "stderr" else ex.stdout
        target.add(str(content.get("text", "")))
    elif kind in ("execute_result", "display_data"):
        text = content.get("data", {}).get("text/plain")
        if isinstance(text, str):
            ex.stdout.add(text + "\n")
    if kind == "error":
        ex.error = {"ename": content.get("ename"), "evalue": content.get("evalue")}
    if kind == "error" and content.get("ename") == "SystemExit":
        value = str(content.get("evalue", ""))
        if value not in ("", "None") and not value.lstrip("-").isdigit():
            ex.stderr.add(value + "\n")  # as Python prints SystemExit("message")
    elif kind == "error":
        lines = content.get("traceback") or [f"{content.get('ename')}: {content.get('evalue')}"]
        ex.stderr.add(_ANSI.sub("", "\n".join(str(line) for line in lines)) + "\n")


def exit_code(reply: dict[str, Any]) -> int:
    """The exit code a cell's execute reply stands for: 0, 1 for an exception, or SystemExit's."""
    if reply.get("status") == "ok":
        return 0
    if reply.get("ename") != "SystemExit":
        return 1
    value = str(reply.get("evalue", ""))
    if value in ("", "None"):
        return 0
    try:
        return int(value) & 0xFF
    except ValueError:
        return 1  # SystemExit("message"): Python prints the message and exits 1


def literal(expression_result: dict[str, Any]) -> Any:
    """The value of a user expression whose repr came back as text/plain.

    Raises:
        OSError or a subclass: the expression raised it (e.g. FileNotFoundError).
    """
    if expression_result.get("status") != "ok":
        name = str(expression_result.get("ename", "OSError"))
        error = {cls.__name__: cls for cls in _os_errors()}.get(name, OSError)
        raise error(f"{name}: {expression_result.get('evalue', '')}")
    return ast.literal_eval(expression_result["data"]["text/plain"])


def _os_errors() -> list[type[OSError]]:
    found, todo = [], [OSError]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(cls.__subclasses__())
    return found
