"""The general-agent pipeline: plan → generate → integrity → (pass@k filter) → store.

Work is cut into chunks of environments; each chunk's environments, tasks, integrity checks
and stage counts are written in one transaction and marked done, so a run killed at any
point and started again redoes only unfinished chunks and duplicates nothing.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from envsynth.ids import content_hash
from envsynth.schema import StageReport
from envsynth.store import Store
from pipelines.general.family import load_families
from pipelines.general.synthesize import PIPELINE, EnvPlan, build_environment, make_plan
from pipelines.passk_filter import PassKConfig, run_passk_filter

Progress = Callable[[str, int, int], None]
"""progress(stage, done, total)"""


class GeneralConfig(BaseModel):
    """What defines a general dataset; all but `workers` and `chunk_size` make the run id."""

    model_config = ConfigDict(extra="forbid")

    dataset: str = "general"
    envs: int = Field(1850, ge=1)
    seed: int = 0
    families: list[str] | None = None
    overrides: dict[str, dict[str, Any]] = Field(default_factory=dict)
    passk: PassKConfig | None = None
    workers: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=1)
    chunk_size: int = Field(40, ge=1)

    def defining(self) -> dict[str, Any]:
        return self.model_dump(exclude={"workers", "chunk_size", "passk"})


def _build_chunk(
    plans: Sequence[EnvPlan], dataset: str, overrides: dict[str, dict[str, Any]]
) -> tuple[list[Any], list[StageReport]]:
    generate, integrity = StageReport(stage="generate"), StageReport(stage="integrity")
    built = []
    t0 = time.perf_counter()
    for plan in plans:
        env = build_environment(plan, dataset, overrides)
        levels = load_families().get(plan.family).levels
        generate.items_in += levels
        generate.items_out += len(env.candidates)
        if env.no_task_levels:
            generate.reject("no_task_fits", env.no_task_levels)
        built.append(env)
    t1 = time.perf_counter()
    for env in built:
        for cand in env.candidates:
            integrity.items_in += 1
            if cand.rejection is None:
                integrity.items_out += 1
            else:
                integrity.reject(cand.rejection)
    integrity.seconds = sum(env.check_seconds for env in built)
    generate.seconds = (t1 - t0) - integrity.seconds
    return built, [generate, integrity]


def _chunk_id(plans: Sequence[EnvPlan]) -> str:
    return f"envs:{plans[0].index}-{plans[-1].index}"


def run_general(config: GeneralConfig, store: Store, progress: Progress | None = None) -> str:
    """Run (or resume) the pipeline; returns the run id."""
    families = load_families()
    for name in config.families or []:
        families.get(name)  # unknown family → UnknownIdError with suggestions, before any work
    for name, values in config.overrides.items():
        family = families.get(name)
        for v in family.variants:
            family.config_for(v, values)  # a bad override fails now, not in a worker
    run_id = "run-general-" + content_hash(config.defining())[:16]
    store.ensure_dataset(config.dataset, "general", config.defining())
    store.start_run(run_id, PIPELINE, config.dataset, config.model_dump())
    plan = make_plan(config.envs, config.families, config.seed)
    chunks = [plan[i : i + config.chunk_size] for i in range(0, len(plan), config.chunk_size)]
    done = store.done_chunks(run_id)
    todo = [c for c in chunks if _chunk_id(c) not in done]
    finished = len(chunks) - len(todo)
    if progress:
        progress("generate", finished, len(chunks))

    def write(plans: Sequence[EnvPlan], built: list[Any], reports: list[StageReport]) -> None:
        nonlocal finished
        envs = [
            {
                "id": b.env_id,
                "dataset": config.dataset,
                "family": b.plan.family,
                "variant": b.plan.variant,
                "toolset_id": b.toolset_id,
                "state": b.state,
            }
            for b in built
        ]
        tasks = [(c.task, c.rejection) for b in built for c in b.candidates]
        checks = [(c.task.id, chk) for b in built for c in b.candidates for chk in c.checks]
        store.write_chunk(run_id, _chunk_id(plans), reports, envs, tasks, checks)
        finished += 1
        if progress:
            progress("generate", finished, len(chunks))

    if config.workers > 1 and len(todo) > 1:
        with ProcessPoolExecutor(config.workers) as pool:
            futures = [
                (c, pool.submit(_build_chunk, c, config.dataset, config.overrides)) for c in todo
            ]
            for plans, fut in futures:
                write(plans, *fut.result())
    else:
        for plans in todo:
            write(plans, *_build_chunk(plans, config.dataset, config.overrides))
    if config.passk is not None:
        run_passk_filter(store, run_id, config.dataset, config.passk, progress)
    store.finish_run(run_id)
    return run_id
