"""A warm pool with bounded concurrency: sandboxes (or kernels) started before they are asked for.

Generic in what it holds: give it how to make one, how to reset one and how to close one. A
released item is reset and kept warm, or closed when the reset fails (it is never handed out
dirty); a background thread keeps `size` items ready, and at most `max_live` exist at once.
An item may also be taken for good (`take`): it leaves the pool, and its taker closes it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Generic, TypeVar

from sandbox.base import SandboxError

T = TypeVar("T")
log = logging.getLogger(__name__)
RETRY_S = 2.0


class PoolTimeout(SandboxError):
    """Every slot of the pool stayed busy for the whole wait: raise `max_live` or release more."""


class Pool(Generic[T]):
    """Pre-started items, handed out one per `acquire` and taken back by `release`.

    Args:
        factory: makes a new item (slow: this is what the pool hides).
        size: how many ready items to keep waiting.
        max_live: most items alive at once, ready, handed out and starting together.
        reset: makes a released item as new; returns False (or raises) if it could not.
        close: releases an item for good.
        healthy: whether a waiting item may still be handed out (e.g. not about to expire).
    """

    def __init__(
        self,
        factory: Callable[[], T],
        *,
        size: int = 2,
        max_live: int = 8,
        reset: Callable[[T], bool],
        close: Callable[[T], None],
        healthy: Callable[[T], bool] | None = None,
    ) -> None:
        if not 0 <= size <= max_live or max_live < 1:
            raise ValueError(
                f"need 0 <= size <= max_live and max_live >= 1, got {size}, {max_live}"
            )
        self._factory, self._reset, self._close = factory, reset, close
        self._healthy = healthy or (lambda _item: True)
        self.size, self.max_live = size, max_live
        self._idle: deque[T] = deque()
        self._live = 0
        self._starting = 0
        self._closed = False
        self._failure: Exception | None = None  # the filler's last start, until one succeeds
        self._cond = threading.Condition()
        self._filler = threading.Thread(target=self._fill, name="envsynth-pool", daemon=True)
        self._filler.start()

    def acquire(self, timeout: float | None = None) -> T:
        """A ready item, or a new one if none is ready and a slot is free.

        Raises:
            PoolTimeout: no slot became free within `timeout` seconds.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        stale: list[T] = []
        try:
            with self._cond:
                while True:
                    if self._closed:
                        raise SandboxError("the pool is closed")
                    while self._idle:
                        item = self._idle.popleft()
                        self._cond.notify_all()  # the filler tops the pool up again
                        if self._healthy(item):
                            return item
                        stale.append(item)
                        self._live -= 1
                    if self._live < self.max_live:
                        self._live += 1
                        break
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        raise PoolTimeout(f"all {self.max_live} slots stayed busy for {timeout}s")
                    self._cond.wait(remaining)
        finally:
            for item in stale:
                self._close_quietly(item)
        try:
            return self._factory()
        except BaseException:
            self._forget_one()
            raise

    def take(self, timeout: float | None = None) -> T:
        """As `acquire`, but the item leaves the pool: its slot is free at once, and closing
        it is the taker's job (never `release` it).

        Raises:
            PoolTimeout: no slot became free within `timeout` seconds.
        """
        item = self.acquire(timeout)
        self._forget_one()
        return item

    def release(self, item: T) -> None:
        """Take an item back: reset it and keep it ready, or close it if that fails."""
        try:
            clean = not self._closed and bool(self._reset(item))
        except Exception:
            log.exception("resetting a pooled item failed; discarding it")
            clean = False
        with self._cond:
            if clean and not self._closed and len(self._idle) < self.size:
                self._idle.append(item)
                self._cond.notify_all()
                return
        self._forget_one()
        self._close_quietly(item)

    @contextmanager
    def lease(self, timeout: float | None = None) -> Iterator[T]:
        """`acquire` for the length of a `with` block."""
        item = self.acquire(timeout)
        try:
            yield item
        finally:
            self.release(item)

    def ready(self) -> int:
        """How many items wait ready now."""
        with self._cond:
            return len(self._idle)

    def wait_ready(
        self, n: int | None = None, timeout: float = 60.0, *, fail_fast: bool = False
    ) -> bool:
        """Block until `n` (default `size`) items are ready; False on timeout.

        Args:
            n: how many ready items to wait for.
            timeout: seconds to wait at most.
            fail_fast: give up as soon as the background start fails, rather than wait
                through its retries.

        Raises:
            SandboxError: `fail_fast`, and the background start's last attempt failed.
        """
        n = self.size if n is None else n
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self._idle) < n:
                if fail_fast and self._failure is not None:
                    raise SandboxError(
                        f"the pool cannot start items: {self._failure}"
                    ) from self._failure
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._closed:
                    return False
                self._cond.wait(remaining)
            return True

    def close(self) -> None:
        """Close every ready item now; items still handed out are closed on release."""
        with self._cond:
            self._closed = True
            items = list(self._idle)
            self._idle.clear()
            self._live -= len(items)
            self._cond.notify_all()
        for item in items:
            self._close_quietly(item)
        self._filler.join()

    def __enter__(self) -> Pool[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _fill(self) -> None:
        while True:
            with self._cond:
                while not self._closed and not (
                    len(self._idle) + self._starting < self.size and self._live < self.max_live
                ):
                    self._cond.wait()
                if self._closed:
                    return
                self._live += 1
                self._starting += 1
            try:
                item = self._factory()
            except Exception as exc:
                log.exception("starting a pooled item failed; retrying in %.0fs", RETRY_S)
                with self._cond:
                    self._failure = exc
                    self._live -= 1
                    self._starting -= 1
                    self._cond.notify_all()
                    self._cond.wait(RETRY_S)
                continue
            with self._cond:
                self._failure = None
                self._starting -= 1
                keep = not self._closed
                if keep:
                    self._idle.append(item)
                else:
                    self._live -= 1
                self._cond.notify_all()
            if not keep:
                self._close_quietly(item)

    def _forget_one(self) -> None:
        with self._cond:
            self._live -= 1
            self._cond.notify_all()

    def _close_quietly(self, item: T) -> None:
        try:
            self._close(item)
        except Exception:
            log.exception("closing a pooled item failed")
