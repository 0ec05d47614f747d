"""`envsynth bench generation`: the runs step the same episodes, and reuse really happens."""

from __future__ import annotations

from envsynth.bench.generation import measure, run_bench


def test_the_first_two_runs_agree_and_the_others_reuse_prefixes() -> None:
    bench = measure(tasks=2, samples=2, turns=2, max_tokens=8)
    baseline, reuse, defaults = bench.runs
    assert bench.identical
    assert baseline.turns == reuse.turns > 0
    assert baseline.prefilled is None and reuse.prefilled and reuse.reused
    # Two samples share a task's system prompt, and each second turn re-sends its first:
    # most prompt tokens come from the cache.
    assert reuse.reused > reuse.prefilled
    # The bundled defaults' window: a task's two samples share each turn's prompt.
    assert defaults.turns > 0 and defaults.reused and defaults.prefilled


def test_the_table_has_every_run() -> None:
    table = run_bench(tasks=1, samples=1, turns=1, max_tokens=4)
    assert table.row_count == 3 and "identical trajectories (first two runs): yes" in str(
        table.title
    )
