"""`envsynth bench generation`: agent episodes of the bundled model with and without prefix reuse.

Real episodes: general-family tasks synthesized in-process, stepped through
`envsynth/General-v0` by `ModelPolicy` with `k` samples per task and a turn budget, so the
prompts are the real system prompts, tool schemas and tool results. The same episodes (same
seeds) run twice in the same process: once prefilling every prompt whole (the baseline), once
with a `PrefixCache` (each turn prefills only what its previous turn did not, and a task's
samples share their system prompt). The table gives wall time, prompt tokens prefilled vs
reused, and whether both runs produced the same trajectories.

The model is the bundled checkpoint when its weights are installed, else a freshly
initialized model of the default shapes (same cost, meaningless text).
"""

from __future__ import annotations

import time
from typing import Any

import torch
from rich.table import Table

from envsynth.rollout import EpisodeSpec, rollout
from envsynth.schema import Trajectory


def _model() -> tuple[Any, str]:
    from model.args import ModelArgs
    from model.policy import WEIGHTS, available
    from model.training.checkpoint import load_checkpoint
    from model.transformer import Transformer

    if available():
        return load_checkpoint(WEIGHTS), "bundled"
    torch.manual_seed(0)
    return Transformer(ModelArgs(max_seq_len=8192)), "untrained (no bundled weights)"


def _tasks(n_tasks: int, seed: int) -> list[Any]:
    from model.training.distill import DistillConfig, reference_tasks

    # One environment per family in round-robin order; its first task.
    tasks = reference_tasks(DistillConfig(envs=max(n_tasks, 2), heldout_envs=1, seed=seed))
    first: dict[str, Any] = {}
    for t in tasks:
        first.setdefault(t.env_id, t)
    return list(first.values())[:n_tasks]


def run_bench(
    *, tasks: int = 4, samples: int = 4, turns: int = 6, max_tokens: int = 128, seed: int = 7
) -> Table:
    """Time the same episodes without and with prefix reuse; see the module docstring."""
    from model.agent import ModelPolicy

    model, name = _model()
    chosen = _tasks(tasks, seed)
    specs = [
        EpisodeSpec({"task": t, "max_turns": turns}, seed=seed + s, sample=s)
        for t in chosen
        for s in range(samples)
    ]
    rows = []
    runs: list[list[Trajectory]] = []
    for label, entries in (("whole prompts (baseline)", 0), ("prefix reuse", 4 * len(specs))):
        policy = ModelPolicy(
            model, thinking=False, max_tokens=max_tokens, prefix_cache=entries, name=name
        )
        t0 = time.perf_counter()
        trajectories = rollout("envsynth/General-v0", policy, specs, concurrency=len(specs))
        seconds = time.perf_counter() - t0
        cache = policy.prefix_cache
        turns_done = sum(sum(m.role == "assistant" for m in t.messages) for t in trajectories)
        rows.append(
            (
                label,
                seconds,
                turns_done,
                cache.prefilled_tokens if cache else None,
                cache.reused_tokens if cache else None,
            )
        )
        runs.append(sorted(trajectories, key=lambda t: (t.task_id, t.seed)))
    same = all(
        [m.content for m in a.messages] == [m.content for m in b.messages]
        for a, b in zip(*runs, strict=True)
    )
    table = Table(
        title=f"{len(specs)} episodes ({len(chosen)} tasks × {samples} samples, ≤ {turns} turns, "
        f"≤ {max_tokens} tokens a turn) of {name} on {torch.get_num_threads()} threads; "
        f"identical trajectories: {'yes' if same else 'no'}"
    )
    columns = ("run", "wall s", "turns", "s / turn", "tokens prefilled", "reused", "speed-up")
    for col in columns:
        table.add_column(col)
    base = rows[0][1]
    for label, seconds, turns_done, prefilled, reused in rows:
        table.add_row(
            label,
            f"{seconds:.1f}",
            str(turns_done),
            f"{seconds / max(turns_done, 1):.2f}",
            "—" if prefilled is None else f"{prefilled:,}",
            "—" if reused is None else f"{reused:,}",
            f"{base / seconds:.2f}×",
        )
    return table
