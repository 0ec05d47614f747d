"""`envsynth bench sandbox`: every sandbox latency next to its baseline, in one run.

- cold container start vs warm-pool acquire;
- persistent-shell round trip vs a `docker exec` per command (the baseline);
- a `LocalSandbox` command;
- kernel warm acquire and cell round trip;
- containers started, used and removed per second at concurrency 1, 2, 4, 8.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from statistics import median, quantiles
from typing import Any

from rich.table import Table

TARGETS = {
    "persistent-shell round trip": 2.0,
    "warm-pool acquire": 50.0,
    "kernel cell round trip": 10.0,
}


def _ms(fn: Callable[[], Any], n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
    return out


def _p50_p95(values: list[float]) -> tuple[float, float]:
    p95 = quantiles(values, n=20)[-1] if len(values) >= 2 else values[0]
    return median(values), p95


def _docker(rows: list[tuple[str, list[float], str]], n: int) -> list[tuple[int, float]]:
    from sandbox.docker_sandbox import DockerSandbox, docker_pool
    from sandbox.spec import SandboxSpec

    spec = SandboxSpec()
    cold = []
    for _ in range(max(3, n // 10)):
        t0 = time.perf_counter()
        sb = DockerSandbox(spec)
        sb.run("true")
        cold.append((time.perf_counter() - t0) * 1000)
        sb.close()
    rows.append(("cold container start (+ first command)", cold, "baseline of the pool"))

    pool = docker_pool(spec, size=2, max_live=4)
    try:
        pool.wait_ready(2, timeout=120)
        acquire = []
        for _ in range(max(5, n // 4)):
            t0 = time.perf_counter()
            sb = pool.acquire()
            acquire.append((time.perf_counter() - t0) * 1000)
            pool.release(sb)
            pool.wait_ready(2, timeout=120)
        rows.append(("warm-pool acquire", acquire, f"vs cold start {median(cold):.0f} ms"))
    finally:
        pool.close()

    with DockerSandbox(spec) as sb:
        shell = _ms(lambda: sb.run("true"), n)
        container = sb._client.containers.get(sb.container_id)  # noqa: SLF001 (the baseline)
        execs = _ms(lambda: container.exec_run(["true"]), max(10, n // 5))
    rows.append(("docker exec per command", execs, "baseline"))
    rows.append(
        (
            "persistent-shell round trip",
            shell,
            f"{median(execs) / median(shell):.0f}× faster than docker exec",
        )
    )

    def lifecycle() -> None:
        with DockerSandbox(spec) as s:
            s.run("true")

    throughput = []
    for conc in (1, 2, 4, 8):
        jobs = conc * 2
        t0 = time.perf_counter()
        with ThreadPoolExecutor(conc) as ex:
            list(ex.map(lambda _: lifecycle(), range(jobs)))
        throughput.append((conc, jobs / (time.perf_counter() - t0)))
    return throughput


def _local(rows: list[tuple[str, list[float], str]], n: int) -> None:
    from sandbox.local import LocalSandbox

    with LocalSandbox() as sb:
        rows.append(("LocalSandbox command", _ms(lambda: sb.run("true"), n), ""))


def _kernel(rows: list[tuple[str, list[float], str]], n: int) -> None:
    from sandbox.kernel import KernelSandbox
    from sandbox.kernel_pool import KernelPool

    with KernelPool(size=2) as pool:
        pool.wait_full(timeout=120)
        acquire, cells = [], []
        for _ in range(max(3, n // 20)):
            t0 = time.perf_counter()
            sb = KernelSandbox(pool=pool)
            acquire.append((time.perf_counter() - t0) * 1000)
            cells += _ms(lambda: sb.run("1+1"), max(5, n // 5))  # noqa: B023 (used at once)
            sb.close()
            pool.wait_full(timeout=120)
    rows.append(("kernel warm acquire", acquire, ""))
    rows.append(("kernel cell round trip", cells, ""))


def run_bench(n: int = 200) -> Table:
    """Measure everything that can run here; say why a backend was left out."""
    from sandbox import docker_sandbox, kernel, local

    rows: list[tuple[str, list[float], str]] = []
    notes: list[str] = []
    throughput: list[tuple[int, float]] = []
    if (why := docker_sandbox.unavailable_reason()) is None:
        throughput = _docker(rows, n)
    else:
        notes.append(f"docker: {why}")
    if (why := local.unavailable_reason()) is None:
        _local(rows, n)
    else:
        notes.append(f"local: {why}")
    if (why := kernel.unavailable_reason()) is None:
        _kernel(rows, n)
    else:
        notes.append(f"kernel: {why}")
    table = Table(title="envsynth bench sandbox (ms)")
    for col in ("measure", "p50", "p95", "target", "baseline / ratio"):
        table.add_column(col)
    for name, values, note in rows:
        p50, p95 = _p50_p95(values)
        target = TARGETS.get(name)
        verdict = f"≤ {target:g} ({'met' if p50 <= target else 'MISSED'})" if target else ""
        table.add_row(name, f"{p50:.2f}", f"{p95:.2f}", verdict, note)
    for conc, rate in throughput:
        table.add_row(f"containers/s at concurrency {conc}", f"{rate:.2f}", "", "", "")
    for note in notes:
        table.add_row(f"[yellow]skipped[/yellow] {note}", "", "", "", "")
    return table
