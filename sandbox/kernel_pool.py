"""A warm pool of started kernels, so that an episode does not wait for a kernel to boot.

Kernels are started one at a time by a background thread, up to `size` idle ones; `acquire`
hands out an idle kernel at once and starts a replacement, or starts one itself when none is
idle. A kernel is handed out once and never comes back: each episode starts from a fresh one.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from types import TracebackType

from envsynth.errors import ConfigError
from sandbox.base import SandboxError
from sandbox.kernel_process import KernelProcess
from sandbox.spec import SandboxSpec


class KernelPool:
    """Idle, started kernels under one spec.

    Args:
        spec: the limits of every kernel in the pool.
        size: how many idle kernels to keep ready (each holds its memory while it waits).
        isolation: where kernels run; see `sandbox.kernel.kernel_starter`.
        start: what starts one kernel; by default `kernel_starter(spec, isolation)`.

    Use as a context manager, or call `close()`: it destroys the idle kernels (handed-out ones
    belong to their sandboxes).
    """

    def __init__(
        self,
        spec: SandboxSpec | None = None,
        size: int = 2,
        *,
        isolation: str = "auto",
        start: Callable[[], KernelProcess] | None = None,
    ):
        if size < 1:
            raise ConfigError(f"KernelPool size must be at least 1, not {size}")
        self.spec = spec or SandboxSpec()
        self.size = size
        if start is None:
            from sandbox.kernel import kernel_starter

            start = kernel_starter(self.spec, isolation)  # type: ignore[arg-type]
        self._start = start
        self._idle: deque[KernelProcess] = deque()
        self._closed = False
        self._failure: BaseException | None = None
        self._lock = threading.Condition()
        self._filler = threading.Thread(target=self._fill, name="envsynth-kernel-pool", daemon=True)
        self._filler.start()

    def acquire(self) -> KernelProcess:
        """A started kernel: an idle one if there is one, else one started now.

        Raises:
            SandboxError: the pool is closed, or no kernel could be started.
        """
        with self._lock:
            if self._closed:
                raise SandboxError("the kernel pool is closed")
            while self._idle:
                kernel = self._idle.popleft()
                self._lock.notify_all()
                if kernel.is_alive():
                    return kernel
                kernel.destroy()
        return self._start()

    def idle(self) -> int:
        """How many started kernels are waiting."""
        with self._lock:
            return len(self._idle)

    def wait_full(self, timeout: float) -> bool:
        """Block until `size` kernels are idle; False if `timeout` seconds pass first.

        Raises:
            SandboxError: the background start failed.
        """
        with self._lock:
            self._lock.wait_for(
                lambda: len(self._idle) >= self.size or self._failure is not None, timeout
            )
            if self._failure is not None:
                raise SandboxError(f"the kernel pool cannot start kernels: {self._failure}")
            return len(self._idle) >= self.size

    def _fill(self) -> None:
        while True:
            with self._lock:
                self._lock.wait_for(lambda: self._closed or len(self._idle) < self.size)
                if self._closed:
                    return
            try:
                kernel = self._start()
            except Exception as exc:  # noqa: BLE001 - reported to whoever waits; acquire retries
                with self._lock:
                    self._failure = exc
                    self._lock.notify_all()
                    self._lock.wait(5.0)  # do not spin on a persistent failure
                continue
            with self._lock:
                self._failure = None
                if self._closed:
                    kernel.destroy()
                    return
                self._idle.append(kernel)
                self._lock.notify_all()

    def close(self) -> None:
        """Destroy the idle kernels and stop refilling; waits for a start in progress."""
        with self._lock:
            self._closed = True
            idle, self._idle = list(self._idle), deque()
            self._lock.notify_all()
        for kernel in idle:
            kernel.destroy()
        self._filler.join()

    def __enter__(self) -> KernelPool:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
