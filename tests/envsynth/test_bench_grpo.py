"""`envsynth bench grpo` measures the same update three ways: the loss must not move."""

from __future__ import annotations

from envsynth.bench.grpo import measure, run_bench


def test_every_setting_computes_the_same_loss() -> None:
    result = measure(sequences=3, tokens=4, prompt=40, repeats=1)
    assert [r[0] for r in result["rows"]] == [1, 4, 8]
    losses = [r[2] for r in result["rows"]]
    assert max(losses) - min(losses) < 1e-6 and all(r[1] > 0 for r in result["rows"])


def test_the_table_names_the_baseline() -> None:
    table = run_bench(sequences=2, tokens=2, prompt=20, repeats=1)
    assert [c.header for c in table.columns][:3] == ["sequences per forward", "wall s", "speed-up"]
    assert table.row_count == 3
