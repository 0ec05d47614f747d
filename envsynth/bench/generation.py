"""`envsynth bench generation`: agent episodes of the bundled model with and without prefix reuse.

Real episodes: general-family tasks synthesized in-process, stepped through
`envsynth/General-v0` by `ModelPolicy` with `k` samples per task and a turn budget, so the
prompts are the real system prompts, tool schemas and tool results. The same episodes (same
seeds) run twice in the same process: once prefilling every prompt whole (the baseline), once
with a `PrefixCache` (each turn prefills only what its previous turn did not, and a task's
samples share their system prompt). The table gives wall time, prompt tokens prefilled vs
reused, and whether both runs produced the same trajectories.

A third run steps the same episodes as `bundled` does by default: tool calls decoded by
their schemas, and only the prompt's last `DEFAULT_CONTEXT` tokens shown. Its trajectories
differ (other prompts), so it is timed, not compared: it is what a turn costs in practice.
The window's start moves with every turn, so its reuse is mostly a task's samples sharing
a turn's prompt.

The model is the bundled checkpoint when its weights are installed, else a freshly
initialized model of the default shapes (same cost, meaningless text).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import torch
from rich.table import Table

from envsynth.rollout import EpisodeSpec, rollout


def bench_model() -> tuple[Any, str]:
    """The bundled model and its label, else a fresh one of the same shapes (same cost)."""
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


@dataclass(frozen=True)
class Run:
    """One pass over the episodes.

    Attributes:
        label: which run.
        seconds: wall time of the rollout.
        turns: assistant turns taken, over all episodes.
        prefilled: prompt tokens prefilled (None: the run keeps no cache to count them).
        reused: prompt tokens read from the prefix cache (None: as above).
    """

    label: str
    seconds: float
    turns: int
    prefilled: int | None
    reused: int | None


@dataclass(frozen=True)
class GenerationBench:
    """The runs, and whether the first two produced the same trajectories."""

    title: str
    runs: tuple[Run, ...]
    identical: bool


def measure(
    *, tasks: int = 4, samples: int = 4, turns: int = 6, max_tokens: int = 128, seed: int = 7
) -> GenerationBench:
    """Run the same episodes without and with prefix reuse; see the module docstring."""
    from model.agent import ModelPolicy
    from model.policy import DEFAULT_CONTEXT

    model, name = bench_model()
    chosen = _tasks(tasks, seed)
    specs = [
        EpisodeSpec({"task": t, "max_turns": turns}, seed=seed + s, sample=s)
        for t in chosen
        for s in range(samples)
    ]
    entries = 4 * len(specs)
    setups: list[tuple[str, dict[str, Any]]] = [
        ("whole prompts (baseline)", {"prefix_cache": 0}),
        ("prefix reuse", {"prefix_cache": entries}),
        (
            f"bundled defaults (guided, last {DEFAULT_CONTEXT} tokens, reuse)",
            {"prefix_cache": entries, "guided": True, "context": DEFAULT_CONTEXT},
        ),
    ]
    runs, trajectories = [], []
    for label, options in setups:
        policy = ModelPolicy(model, thinking=False, max_tokens=max_tokens, name=name, **options)
        t0 = time.perf_counter()
        done = rollout("envsynth/General-v0", policy, specs, concurrency=len(specs))
        cache = policy.prefix_cache
        runs.append(
            Run(
                label,
                time.perf_counter() - t0,
                sum(sum(m.role == "assistant" for m in t.messages) for t in done),
                cache.prefilled_tokens if cache else None,
                cache.reused_tokens if cache else None,
            )
        )
        trajectories.append(sorted(done, key=lambda t: (t.task_id, t.seed)))
    identical = all(
        [m.content for m in a.messages] == [m.content for m in b.messages]
        for a, b in zip(trajectories[0], trajectories[1], strict=True)
    )
    title = (
        f"{len(specs)} episodes ({len(chosen)} tasks × {samples} samples, ≤ {turns} turns, "
        f"≤ {max_tokens} tokens a turn) of {name} on {torch.get_num_threads()} threads"
    )
    return GenerationBench(title, tuple(runs), identical)


def run_bench(**options: Any) -> Table:
    """`measure(**options)` as a table with the speed-up over the baseline."""
    bench = measure(**options)
    table = Table(
        title=f"{bench.title}; identical trajectories (first two runs): "
        f"{'yes' if bench.identical else 'no'}"
    )
    columns = ("run", "wall s", "turns", "s / turn", "tokens prefilled", "reused", "speed-up")
    for col in columns:
        table.add_column(col)
    base = bench.runs[0].seconds
    for i, run in enumerate(bench.runs):
        # Only the first two runs step the same trajectories; the defaults' are other ones.
        speedup = f"{base / run.seconds:.2f}×" if i < 2 else "—"
        table.add_row(
            run.label,
            f"{run.seconds:.1f}",
            str(run.turns),
            f"{run.seconds / max(run.turns, 1):.2f}",
            "—" if run.prefilled is None else f"{run.prefilled:,}",
            "—" if run.reused is None else f"{run.reused:,}",
            speedup,
        )
    return table
