"""`envsynth bench synthesis`: generation time of the default dataset, and step overhead.

Step overhead is the time of `env.step` on a made `envsynth/General-v0` minus the time
of the tool's own work (the same call on the same state, without the environment),
next to a bare Gymnasium environment that does nothing, measured in the same run.
"""

from __future__ import annotations

import os
import tempfile
import time
from statistics import median, quantiles
from typing import Any

import gymnasium
import orjson
from rich.table import Table

TARGET_GENERATION_S = 120.0
TARGET_OVERHEAD_US = 100.0


class BareEnv(gymnasium.Env[str, Any]):
    """The baseline: an environment that does nothing."""

    def __init__(self, **kwargs: Any) -> None:
        from gyms.spaces import UnicodeText

        self.observation_space = UnicodeText()
        self.action_space = UnicodeText()

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[str, dict[str, Any]]:
        super().reset(seed=seed)
        return "", {}

    def step(self, action: Any) -> tuple[str, float, bool, bool, dict[str, Any]]:
        return "", 0.0, False, False, {}


def _timed(fn: Any, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter_ns()
        fn()
        out.append((time.perf_counter_ns() - t0) / 1000)
    return out


def _p(values: list[float]) -> tuple[float, float]:
    return median(values), quantiles(values, n=20)[-1]


def measure_generation(envs: int, workers: int | None) -> dict[str, float]:
    from envsynth.store import Store
    from pipelines.general.pipeline import GeneralConfig, run_general

    with tempfile.TemporaryDirectory() as tmp:
        store = Store(os.path.join(tmp, "bench.db"))
        cfg = GeneralConfig(envs=envs)
        if workers:
            cfg = cfg.model_copy(update={"workers": workers})
        t0 = time.perf_counter()
        run_general(cfg, store)
        seconds = time.perf_counter() - t0
        n_envs, toolsets = store.count_environments(cfg.dataset)
        return {
            "seconds": seconds,
            "tasks": store.count_tasks(cfg.dataset),
            "envs": n_envs,
            "toolsets": toolsets,
            "workers": cfg.workers,
        }


def measure_step_overhead(steps: int) -> dict[str, tuple[float, float]]:
    from envsynth.plugins import make_env
    from envsynth.schema import GeneralTask
    from pipelines.general.episode import Episode
    from pipelines.general.synthesize import build_environment, make_plan

    task = next(
        c.task for c in build_environment(make_plan(1, ["retail_ops"], 0)[0], "bench").candidates
    )
    payload = task.payload
    assert isinstance(payload, GeneralTask)
    call = payload.reference[0]  # a read-only lookup: find_customer
    action = {
        "content": "",
        "tool_calls": [{"id": "c", "function": {"name": call.name, "arguments": call.arguments}}],
    }
    env = make_env("envsynth/General-v0", task=task, max_turns=10**9)
    env.reset(seed=0)
    env_step = _timed(lambda: env.step(action), steps)
    episode = Episode(payload)
    tool = episode.tools[call.name]

    def bare_tool() -> None:
        result = tool.fn(episode.state, **orjson.loads(call.arguments))
        orjson.dumps(result)

    tool_work = _timed(bare_tool, steps)
    bare = gymnasium.make(gymnasium.envs.registration.EnvSpec("envsynth-bench/Bare-v0", BareEnv))
    bare.reset(seed=0)
    bare_step = _timed(lambda: bare.step(""), steps)
    overhead = [s - w for s, w in zip(sorted(env_step), sorted(tool_work), strict=True)]
    return {
        "bare gymnasium env step": _p(bare_step),
        "General-v0 step": _p(env_step),
        "tool's own work": _p(tool_work),
        "overhead (step − tool)": _p(overhead),
    }


def run_bench(envs: int = 1850, steps: int = 20000, workers: int | None = None) -> Table:
    gen = measure_generation(envs, workers)
    step = measure_step_overhead(steps)
    table = Table(title="envsynth bench synthesis")
    for col in ("measure", "value", "baseline / target", "ratio"):
        table.add_column(col)
    table.add_row(
        f"generate + verify {envs} envs ({gen['workers']} workers)",
        f"{gen['seconds']:.1f} s",
        f"target ≤ {TARGET_GENERATION_S:.0f} s",
        f"{gen['seconds'] / TARGET_GENERATION_S:.2f}× of budget",
    )
    table.add_row(
        "  accepted tasks / environments / toolsets",
        f"{gen['tasks']:.0f} / {gen['envs']:.0f} / {gen['toolsets']:.0f}",
        "≥ 4400 / 1800 / 100",
        "",
    )
    bare_med = step["bare gymnasium env step"][0]
    for name, (med, p95) in step.items():
        ratio = f"{med / bare_med:.1f}× bare" if name != "bare gymnasium env step" else "1.0×"
        target = f"target ≤ {TARGET_OVERHEAD_US:.0f} µs" if name.startswith("overhead") else ""
        table.add_row(name, f"median {med:.1f} µs, p95 {p95:.1f} µs", target, ratio)
    return table
