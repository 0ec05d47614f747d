"""The pass@k filter stage, shared by every pipeline: keep tasks some policy can solve.

Episodes run through `envsynth.rollout` and `gymnasium.make`, as an RL user would, so this
module never imports `gyms`. A task is kept iff pass@k > 0; its difficulty (pass@1…pass@k
of the filter policy) is stored with it either way.
"""

from __future__ import annotations

import time
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from envsynth.ids import content_hash
from envsynth.policy import bundled_available, make_policy
from envsynth.rollout import estimate_difficulty
from envsynth.schema import StageReport
from envsynth.store import Store

REJECTION = "passk_zero"


class PassKConfig(BaseModel):
    """Which policy filters, and with how many samples."""

    model_config = ConfigDict(extra="forbid")

    policy: str = Field(default_factory=lambda: "bundled" if bundled_available() else "random")
    policy_args: dict[str, Any] = Field(default_factory=dict)
    k: int = Field(100, ge=1)
    max_turns: int | None = Field(None, ge=1)
    concurrency: int = Field(64, ge=1)
    chunk_size: int = Field(100, ge=1)


def run_passk_filter(
    store: Store, run_id: str, dataset: str, config: PassKConfig, progress: Any = None
) -> None:
    policy = make_policy(config.policy, **config.policy_args)
    ids = store.integrity_passed_ids(dataset)
    chunks = [ids[i : i + config.chunk_size] for i in range(0, len(ids), config.chunk_size)]
    tag = content_hash([config.model_dump(exclude={"concurrency", "chunk_size"})])[:12]
    done = store.done_chunks(run_id)
    for n, chunk in enumerate(chunks):
        chunk_id = f"passk:{tag}:{content_hash(chunk)[:16]}"
        if chunk_id not in done:
            t0 = time.perf_counter()
            tasks = [store.task(i) for i in chunk]
            difficulty = estimate_difficulty(
                policy,
                tasks,
                config.k,
                [1, config.k],
                concurrency=config.concurrency,
                max_turns=config.max_turns,
            )
            report = StageReport(stage="passk", items_in=len(tasks))
            rows = []
            for t in tasks:
                d = difficulty[t.id].model_copy(
                    update={"knobs": t.payload.knobs if hasattr(t.payload, "knobs") else {}}
                )
                solved = d.pass_at.get(config.k, 0.0) > 0
                report.items_out += solved
                if not solved:
                    report.reject(REJECTION)
                rows.append((t.model_copy(update={"difficulty": d}), None if solved else REJECTION))
            report.seconds = time.perf_counter() - t0
            store.write_chunk(run_id, chunk_id, [report], tasks=rows)
        if progress:
            progress("passk", n + 1, len(chunks))
