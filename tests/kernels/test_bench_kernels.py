"""`envsynth bench kernels` runs at a tiny length and says when it has no GPU to time."""

from __future__ import annotations

import torch

from envsynth.bench.kernels import run_bench


def test_bench_kernels_table() -> None:
    table = run_bench(lengths=[96], shapes=["ours"], repeats=1, warmup=0)

    cells = [list(map(str, col.cells)) for col in table.columns]
    rows = list(zip(*cells, strict=True))
    timed = [r for r in rows if r[0] == "ours"]
    assert [r[2] for r in timed] == [
        "indexer + top-k",
        "sparse attention",
        "DSA total",
        "dense SDPA",
    ]
    assert all(float(r[3]) > 0 for r in timed)
    assert timed[2][6].endswith("×") and float(timed[2][6][:-1]) > 0
    total = float(timed[2][3])
    assert abs(total - float(timed[0][3]) - float(timed[1][3])) < 2e-3 * max(total, 1)
    if not torch.cuda.is_available():
        assert "no CUDA device" in str(table.title)
        assert any("no GPU present" in r[2] for r in rows)
