"""A warm pool of started kernels, so that an episode does not wait for a kernel to boot.

Kernels are started one at a time by a background thread, up to `size` idle ones; `acquire`
hands out an idle kernel at once and starts a replacement, or starts one itself when none is
idle. A kernel is handed out once and never comes back: each episode starts from a fresh one.
The filling is `sandbox.pool.Pool`'s; kernels are only ever taken from it, never released.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING

from envsynth.errors import ConfigError
from sandbox.kernel_process import KernelProcess
from sandbox.pool import Pool
from sandbox.spec import SandboxSpec

if TYPE_CHECKING:
    from sandbox.kernel import Isolation


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
        isolation: Isolation = "auto",
        start: Callable[[], KernelProcess] | None = None,
    ):
        if size < 1:
            raise ConfigError(f"KernelPool size must be at least 1, not {size}")
        self.spec = spec or SandboxSpec()
        self.size = size
        if start is None:
            from sandbox.kernel import kernel_starter

            start = kernel_starter(self.spec, isolation)
        self._pool: Pool[KernelProcess] = Pool(
            start,
            size=size,
            # Kernels handed out leave the pool, so only idle ones count, and `size` bounds
            # those; `acquire` never waits for a slot.
            max_live=sys.maxsize,
            reset=_never_reused,
            close=lambda kernel: kernel.destroy(),
            healthy=lambda kernel: kernel.is_alive(),
        )

    def acquire(self) -> KernelProcess:
        """A started kernel: an idle one if there is one, else one started now.

        Raises:
            SandboxError: the pool is closed, or no kernel could be started.
        """
        return self._pool.take()

    def idle(self) -> int:
        """How many started kernels are waiting."""
        return self._pool.ready()

    def wait_full(self, timeout: float) -> bool:
        """Block until `size` kernels are idle; False if `timeout` seconds pass first.

        Raises:
            SandboxError: the background start failed.
        """
        return self._pool.wait_ready(self.size, timeout, fail_fast=True)

    def close(self) -> None:
        """Destroy the idle kernels and stop refilling; waits for a start in progress."""
        self._pool.close()

    def __enter__(self) -> KernelPool:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _never_reused(kernel: KernelProcess) -> bool:
    """A kernel keeps what its episode left in it: it is never reset for another."""
    return False
