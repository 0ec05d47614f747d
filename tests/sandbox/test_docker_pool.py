"""The warm pool: bounded, never hands out a dirty sandbox; generic enough for any item."""

from __future__ import annotations

import itertools
import threading
import time

import pytest
from conftest import factory

from sandbox.base import SandboxError
from sandbox.docker_sandbox import DockerSandbox, docker_pool, leaked
from sandbox.pool import Pool, PoolTimeout
from sandbox.spec import SandboxSpec

SPEC = SandboxSpec(memory_mb=128, pids=32, disk_mb=16)


class Item:
    """A stand-in for a sandbox: counts what the pool did to it."""

    ids = itertools.count()

    def __init__(self, resettable: bool = True) -> None:
        self.id = next(Item.ids)
        self.resettable = resettable
        self.resets = 0
        self.closed = False
        self.dirty = False


def _pool(size: int, max_live: int, resettable: bool = True) -> Pool[Item]:
    def reset(item: Item) -> bool:
        item.resets += 1
        item.dirty = not item.resettable
        return item.resettable

    return Pool(
        lambda: Item(resettable),
        size=size,
        max_live=max_live,
        reset=reset,
        close=lambda item: setattr(item, "closed", True),
    )


def test_pool_keeps_size_ready_and_bounds_live_items() -> None:
    with _pool(size=2, max_live=3) as pool:
        assert pool.wait_ready(2, timeout=5)
        held = [pool.acquire(timeout=1) for _ in range(3)]
        assert len({i.id for i in held}) == 3
        with pytest.raises(PoolTimeout):
            pool.acquire(timeout=0.2)
        got: list[Item] = []
        waiter = threading.Thread(target=lambda: got.append(pool.acquire(timeout=5)))
        waiter.start()
        time.sleep(0.1)
        pool.release(held.pop())
        waiter.join()
        assert got and got[0].resets == 1 and not got[0].closed
        for item in held + got:
            pool.release(item)
    assert all(i.closed for i in held + got)


def test_pool_discards_what_it_cannot_reset() -> None:
    with _pool(size=1, max_live=2, resettable=False) as pool:
        item = pool.acquire(timeout=5)
        pool.release(item)
        assert item.closed
        again = pool.acquire(timeout=5)
        assert again is not item and not again.dirty
        pool.release(again)


def test_pool_take_frees_the_slot_and_never_resets() -> None:
    with _pool(size=1, max_live=1) as pool:
        taken = [pool.take(timeout=5) for _ in range(3)]  # one slot, yet no wait
        assert len({i.id for i in taken}) == 3
        assert pool.wait_ready(1, timeout=5)
    assert not any(i.closed or i.resets for i in taken), "a taken item is its taker's"


def test_pool_fail_fast_reports_a_failing_start() -> None:
    def broken() -> Item:
        raise OSError("no daemon")

    pool = Pool(broken, size=1, max_live=1, reset=lambda _: True, close=lambda _: None)
    with pool:
        assert not pool.wait_ready(timeout=0.1), "without fail_fast, it waits out the retries"
        with pytest.raises(SandboxError, match="no daemon"):
            pool.wait_ready(timeout=5, fail_fast=True)


def test_pool_rejects_bad_bounds() -> None:
    with pytest.raises(ValueError):
        _pool(size=3, max_live=2)


def test_docker_pool_reuses_only_reset_sandboxes() -> None:
    factory("docker")
    # One slot: the filler cannot start a second sandbox, so the one released is the one reused.
    with docker_pool(SPEC, size=1, max_live=1) as pool:
        assert pool.wait_ready(1, timeout=60)
        start = time.perf_counter()
        sb = pool.acquire(timeout=5)
        assert time.perf_counter() - start < 0.05, "a warm acquire must not start a container"
        assert isinstance(sb, DockerSandbox)
        first = sb.container_id
        sb.run("echo secret > mine; export TOKEN=1; (sleep 300 &); cd /tmp")
        with pytest.raises(PoolTimeout):
            pool.acquire(timeout=0.2)
        pool.release(sb)
        with pool.lease(timeout=5) as again:
            assert again.container_id == first, "a reset sandbox is reused"
            r = again.run('ls -A; echo "$PWD [$TOKEN]"; ps -e --no-headers | grep -c "sleep 300"')
            assert r.stdout == f"{SPEC.workdir} []\n0\n", r
    assert not leaked()
