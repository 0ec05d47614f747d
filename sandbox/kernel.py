"""`KernelSandbox`: Python cells in one live Jupyter kernel per episode (DESIGN §8).

The kernel runs isolated — in a hardened Docker container when a daemon answers, else in
Linux namespaces — and is reached over ZMQ ipc sockets, so it needs no network at all. A cell
that overruns its timeout is interrupted (state kept); one that ignores the interrupt gets
its kernel restarted. A kernel that dies is noticed at once (a pidfd in the same poll as its
sockets), reported, and replaced before the next cell. Nothing a cell starts outlives it.
"""

from __future__ import annotations

import base64
import posixpath
import time
from collections.abc import Callable
from typing import Literal

from envsynth.errors import ConfigError
from sandbox.base import BACKENDS, Sandbox, SandboxError
from sandbox.kernel_client import Execution, KernelGone, exit_code, literal
from sandbox.kernel_pool import KernelPool
from sandbox.kernel_process import FILE_CHUNK, KernelProcess, leaked_socket_dirs
from sandbox.spec import ExecResult, SandboxSpec

Isolation = Literal["auto", "docker", "local"]
NOTE = "[envsynth]"
# Longest a file operation or a clean-up request may take in an idle kernel.
_QUIET_TIMEOUT_S = 30.0


def unavailable_reason(
    isolation: Isolation = "auto", spec: SandboxSpec | None = None
) -> str | None:
    """None when kernels can run here with `isolation` (and `spec`'s image), else why not."""
    from sandbox.kernel_jail import jail_unavailable_reason

    docker = _docker_unavailable_reason(spec) if isolation != "local" else "not asked for"
    if isolation == "docker" or docker is None:
        return docker
    local = jail_unavailable_reason()
    if local is None or isolation == "local":
        return local
    return f"docker: {docker}; local: {local}"


def leaked() -> list[str]:
    """Kernels of this process still alive: containers, namespaces, socket dirs."""
    from sandbox.kernel_container import leaked_containers
    from sandbox.kernel_jail import leaked_jails

    return leaked_containers() + leaked_jails() + leaked_socket_dirs()


def _docker_unavailable_reason(spec: SandboxSpec | None) -> str | None:
    from sandbox.kernel_container import docker_unavailable_reason

    why = docker_unavailable_reason()
    if why is not None or (spec is not None and "image" in spec.model_fields_set):
        return why
    try:
        from sandbox.images import ensure_image  # noqa: F401
    except ImportError as exc:
        return f"no kernel image: sandbox.images cannot be imported ({exc})"
    return None


def kernel_starter(
    spec: SandboxSpec, isolation: Isolation = "auto", python: str | None = None
) -> Callable[[], KernelProcess]:
    """A function that starts one ready kernel under `spec`, isolated as asked.

    Args:
        spec: the limits. With Docker, `spec.image` is used if it was set explicitly;
            otherwise the toolchain image `sandbox.images.ensure_image("python")`.
        isolation: "docker", "local", or "auto" (Docker when a daemon answers).
        python: the interpreter to run the kernel with, if not the isolation's default.

    Raises:
        SandboxError: the isolation asked for cannot run here.
    """
    if isolation == "auto":
        isolation = "docker" if unavailable_reason("docker", spec) is None else "local"
    why = unavailable_reason(isolation, spec)
    if why is not None:
        raise SandboxError(f"kernels cannot run here ({isolation}): {why}")
    if isolation == "docker":
        from sandbox.kernel_container import DEFAULT_PYTHON, ContainerKernel

        if "image" in spec.model_fields_set:
            image = spec.image
        else:
            from sandbox.images import ensure_image

            image = ensure_image("python")
        return lambda: ContainerKernel(spec, image, python or DEFAULT_PYTHON)
    from sandbox.kernel_jail import JailKernel

    return lambda: JailKernel(spec, python)


@BACKENDS.register("kernel")
class KernelSandbox(Sandbox):
    """One live IPython kernel, isolated; `run` executes a Python cell in it.

    Args:
        spec: the limits; the pool's when `pool` is given.
        pool: warm kernels to take this one (and its replacements) from.
        isolation: where kernels run when there is no pool (see `kernel_starter`).
        interrupt_grace_s: how long an interrupted cell may take to stop before the kernel
            is restarted.

    `run(cell)` gives exit code 0, 1 when the cell raised, n for `SystemExit(n)`, and None
    when it timed out or the kernel died; stdout holds stream output and the text of results
    and displays, stderr the stderr stream, tracebacks and notes from envsynth.
    """

    def __init__(
        self,
        spec: SandboxSpec | None = None,
        *,
        pool: KernelPool | None = None,
        isolation: Isolation = "auto",
        interrupt_grace_s: float = 2.0,
    ):
        if pool is not None and spec is not None and spec != pool.spec:
            raise ConfigError("KernelSandbox: spec differs from the pool's; pass one of them")
        self.spec = pool.spec if pool is not None else (spec or SandboxSpec())
        self._start = pool.acquire if pool is not None else kernel_starter(self.spec, isolation)
        self.interrupt_grace_s = interrupt_grace_s
        self._notes: list[str] = []
        self._closed = False
        self._kernel: KernelProcess | None = self._start()

    # -- the protocol ------------------------------------------------------------------------

    def run(self, cmd: str, timeout: float | None = None) -> ExecResult:
        timeout = self.spec.wall_time_s if timeout is None else timeout
        kernel = self._live_kernel()
        t0 = time.monotonic()
        ex = kernel.client.execute(cmd, self.spec.output_bytes)
        timed_out = oom = False
        try:
            if not kernel.client.wait(ex, t0 + timeout):
                timed_out = True
                self._stop_overrun(kernel, ex, timeout)
        except KernelGone:
            death = kernel.death()
            oom = death.oom_killed
            self._note(f"{death.description}; the next cell gets a fresh kernel (state is lost)")
            self._discard()
        else:
            if self._kernel is kernel:
                self._clean_up(kernel, ex)
        return self._result(ex, t0, timed_out=timed_out, oom_killed=oom)

    def put_file(self, path: str, data: bytes) -> None:
        target = self._path(path)
        for offset in range(0, max(len(data), 1), FILE_CHUNK):
            chunk = base64.b64encode(data[offset : offset + FILE_CHUNK]).decode()
            mode = "ab" if offset else "wb"
            self._quiet(
                "(lambda os, p, d: (os.makedirs(os.path.dirname(p) or '.', exist_ok=True), "
                f"open(p, {mode!r}).write(__import__('base64').b64decode(d))))"
                f"(__import__('os'), {target!r}, {chunk!r})",
                {},
            )

    def get_file(self, path: str) -> bytes:
        target, parts, offset = self._path(path), [], 0
        limit = max(self.spec.disk_mb, 256) << 20  # a device or /proc file never ends
        while True:
            expr = (
                "__import__('base64').b64encode((lambda f: (f.seek("
                f"{offset}), f.read({FILE_CHUNK}))[1])(open({target!r}, 'rb'))).decode()"
            )
            chunk = base64.b64decode(literal(self._quiet("", {"chunk": expr})["chunk"]))
            parts.append(chunk)
            offset += len(chunk)
            if len(chunk) < FILE_CHUNK:
                return b"".join(parts)
            if offset > limit:
                raise SandboxError(f"{path} is larger than {limit >> 20} MB; not fetched")

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._discard()

    # -- the steps ---------------------------------------------------------------------------

    def _live_kernel(self) -> KernelProcess:
        """The kernel, replaced first if it has died since the last cell."""
        if self._closed:
            raise SandboxError("the kernel sandbox is closed")
        if self._kernel is not None and not self._kernel.is_alive():
            self._note(
                f"{self._kernel.death().description} between cells; this cell runs in "
                "a fresh kernel (state is lost)"
            )
            self._discard()
        if self._kernel is None:
            self._kernel = self._start()
        return self._kernel

    def _stop_overrun(self, kernel: KernelProcess, ex: Execution, timeout: float) -> None:
        """Interrupt a cell past its timeout; restart the kernel if it does not stop."""
        kernel.interrupt()
        if kernel.client.wait(ex, time.monotonic() + self.interrupt_grace_s):
            self._note(
                f"the cell timed out after {timeout:g}s and was interrupted; "
                "the kernel's state is kept"
            )
            return
        self._note(
            f"the cell timed out after {timeout:g}s and did not stop within "
            f"{self.interrupt_grace_s:g}s of an interrupt; the kernel was restarted "
            "(state is lost)"
        )
        self._discard()

    def _clean_up(self, kernel: KernelProcess, ex: Execution) -> None:
        """Kill what the cell left running, and mend the output channel if a message broke it.

        The kernel is restarted if either cannot be done.
        """
        if ex.output_lost or ex.reply_lost:
            self._note("a message from the kernel was over the size limit and was dropped")
            try:
                kernel.client.reconnect(ex.reply_lost, ex.output_lost, _QUIET_TIMEOUT_S)
            except (SandboxError, OSError, TimeoutError):
                self._note(
                    "the kernel's output channel broke; the kernel was restarted (state is lost)"
                )
                self._discard()
                return
        sweep = kernel.kill_strays()
        if not sweep.clean:
            self._note(
                "processes the cell started could not all be killed; the kernel was "
                "restarted (state is lost)"
            )
            self._discard()
            return
        if sweep.kernel_children:
            # Only the kernel may reap its children; unreaped they would hold pids forever.
            try:
                self._quiet(
                    "def _envsynth_reap(pids):\n    import os\n    for p in pids:\n"
                    "        try:\n            os.waitpid(p, os.WNOHANG)\n"
                    "        except ChildProcessError:\n            pass\n"
                    f"_envsynth_reap({sweep.kernel_children!r})\ndel _envsynth_reap\n",
                    {},
                )
            except (SandboxError, OSError) as exc:  # the cell's result stands; say what failed
                self._note(f"could not reap the killed processes: {exc}")
        if sweep.killed:
            self._note(f"killed {sweep.killed} process(es) the cell left running")

    def _quiet(self, code: str, expressions: dict[str, str]) -> dict:
        """Run `code` silently (no history, no output) and evaluate `expressions` after it.

        Raises:
            OSError: `code` raised it (FileNotFoundError, PermissionError, …).
            SandboxError: the kernel died or hung.
        """
        kernel = self._live_kernel()
        ex = kernel.client.execute(
            code, self.spec.output_bytes, silent=True, user_expressions=expressions
        )
        try:
            done = kernel.client.wait(ex, time.monotonic() + _QUIET_TIMEOUT_S)
        except KernelGone:
            self._note(f"{kernel.death().description} during a file transfer")
            self._discard()
            raise SandboxError("the kernel died during a file transfer") from None
        if not done or ex.reply is None:
            self._discard()
            raise SandboxError(f"the kernel did not answer within {_QUIET_TIMEOUT_S:g}s")
        if ex.reply.get("status") != "ok":
            literal(dict(ex.reply, status="error"))  # raises the OSError the code raised
        return ex.reply.get("user_expressions", {})

    def _path(self, path: str) -> str:
        return posixpath.join(self.spec.workdir, path)

    def _note(self, text: str) -> None:
        self._notes.append(f"{NOTE} {text}\n")

    def _discard(self) -> None:
        kernel, self._kernel = self._kernel, None
        if kernel is not None:
            kernel.destroy()

    def _result(self, ex: Execution, t0: float, *, timed_out: bool, oom_killed: bool) -> ExecResult:
        notes, self._notes = "".join(self._notes), []
        return ExecResult(
            exit_code=exit_code(ex.outcome()) if ex.done and not timed_out else None,
            stdout=ex.stdout.text(),
            stderr=ex.stderr.text() + notes,
            timed_out=timed_out,
            oom_killed=oom_killed,
            truncated=ex.stdout.truncated or ex.stderr.truncated or ex.output_lost or ex.reply_lost,
            duration_s=time.monotonic() - t0,
        )
