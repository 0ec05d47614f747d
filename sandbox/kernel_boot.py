"""Starts an IPython kernel inside a sandbox, its output capped where it is produced.

This file is not imported by envsynth: its text is handed to the sandbox's own Python
(`python -c SOURCE CAP LIFELINE <ipykernel args>`), which may be any Python 3.8+ with
ipykernel, so it uses the standard library and ipykernel only.

- CAP: most characters of stdout and of stderr, each, that one request may send. The
  controller caps again on its side; capping here keeps a 50 MB write from ever becoming a
  50 MB message (which the kernel would need memory for, and the controller would drop).
- LIFELINE: a Unix socket path to listen on, or "-". The controller connects once and keeps
  the connection; when the controller dies, even by SIGKILL, the kernel exits.
"""

import os
import socket
import sys
import threading
import warnings


def cap_streams(cap: int) -> None:
    """Make every ipykernel output stream drop what one request writes beyond `cap` chars."""
    from ipykernel.iostream import OutStream

    write = OutStream.write

    def capped_write(self, string):  # type: ignore[no-untyped-def]
        if not isinstance(string, str):
            return write(self, string)  # the TypeError ipykernel gives
        parent = getattr(self, "parent_header", None) or {}
        request = parent.get("msg_id")
        if getattr(self, "_envsynth_request", None) != request:
            self._envsynth_request, self._envsynth_sent = request, 0
        room = cap + 1 - self._envsynth_sent  # one more than the cap, so the host sees it hit
        if room > 0:
            self._envsynth_sent += min(len(string), room)
            write(self, string[:room])
        return len(string)

    # ipykernel has no hook to cap a stream: replace its method in this process.
    OutStream.write = capped_write  # type: ignore[method-assign]


def cap_tracebacks(cap: int) -> None:
    """Publish at most `cap` characters of a traceback (a 50 MB exception message is a 50 MB
    message otherwise); the execute reply still carries the whole exception message."""
    from ipykernel.zmqshell import ZMQInteractiveShell

    show = ZMQInteractiveShell._showtraceback

    class Text:
        def __init__(self, text: str):
            self.text = text

        def __str__(self) -> str:
            return self.text

    def capped_showtraceback(self, etype, evalue, stb):  # type: ignore[no-untyped-def]
        kept, room = [], cap + 1  # one more than the cap, so the host sees it hit
        for line in stb:
            if room <= 0:
                kept.append("... (traceback cut)")
                break
            kept.append(line[:room])
            room -= len(line)
        return show(self, etype, Text(str(evalue)[: cap + 1]), kept)

    # ipykernel has no hook to cap a traceback: replace its method in this process.
    ZMQInteractiveShell._showtraceback = capped_showtraceback  # type: ignore[method-assign]


def skip_empty_flushes() -> None:
    """Make flushing a stream with nothing buffered free.

    ipykernel flushes stdout and stderr several times per request, and every flush waits on
    a round trip to its IO thread, buffered data or not: about half of a `1+1` cell's time.
    """
    from ipykernel.iostream import OutStream

    flush = OutStream.flush

    def nothing_buffered(stream) -> bool:  # type: ignore[no-untyped-def]
        if getattr(stream, "_flush_pending", True) or getattr(
            stream, "_subprocess_flush_pending", False
        ):
            return False
        buffers = getattr(stream, "_buffers", None)  # ipykernel 7: one buffer per parent
        if buffers is None:
            buffer = getattr(stream, "_buffer", None)  # ipykernel 6
            return buffer is not None and buffer.tell() == 0
        return all(b.tell() == 0 for b in list(buffers.values()))

    def quick_flush(self):  # type: ignore[no-untyped-def]
        if nothing_buffered(self) and getattr(self, "echo", None) is None:
            return None
        return flush(self)

    # ipykernel has no hook to skip a flush: replace its method in this process.
    OutStream.flush = quick_flush  # type: ignore[method-assign]


def hold_lifeline(path: str) -> None:
    """Exit the kernel as soon as the controller's connection to `path` closes."""
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(1)

    def watch() -> None:
        conn, _ = server.accept()
        server.close()
        while conn.recv(1):
            pass
        os._exit(70)

    threading.Thread(target=watch, name="envsynth-lifeline", daemon=True).start()


def main() -> None:
    cap, lifeline = int(sys.argv[1]), sys.argv[2]
    sys.argv = [sys.argv[0], *sys.argv[3:]]
    if sys.path and sys.path[0] == "":
        del sys.path[0]  # as ipykernel_launcher does; the kernel adds its cwd back later
    # IPython's advice to use exit() would land in every SystemExit cell's stderr.
    warnings.filterwarnings("ignore", message="To exit: use")
    cap_streams(cap)
    cap_tracebacks(cap)
    skip_empty_flushes()
    if lifeline != "-":
        hold_lifeline(lifeline)
    from ipykernel.kernelapp import launch_new_instance

    launch_new_instance()


if __name__ == "__main__":
    main()
