"""`envsynth bench grpo`: one GRPO update, one sequence per forward vs padded batches.

The sequences are sampled by the bundled model (a freshly initialized one of the same shapes
when its weights are absent) from prompts of the length its policy sees (the last 896
tokens of a real episode's prompt), so the shapes are those of `envsynth train grpo`. Each
setting computes the loss and its gradient on the same sequences; the table gives the wall
time, the speed-up over one sequence per forward, and how far the loss moved (it must not).
"""

from __future__ import annotations

import random
import time
from typing import Any

import torch
from rich.table import Table


def measure(
    sequences: int = 24, tokens: int = 48, prompt: int = 896, repeats: int = 2
) -> dict[str, Any]:
    from envsynth.bench.generation import bench_model
    from model.generate import generate
    from model.sampling import SamplingConfig
    from model.training.grpo import GRPOConfig, SampledSequence, grpo_loss

    model, label = bench_model()
    rng = random.Random(0)
    prompts = [
        [rng.randrange(32, 127) for _ in range(prompt - rng.randrange(0, max(prompt // 4, 1)))]
        for _ in range(sequences)
    ]
    gens = generate(
        model,
        prompts,
        max_tokens=tokens,
        stop_id=-1,
        pad_id=0,
        sampling=SamplingConfig(temperature=1.0, top_p=0.95),
        seeds=list(range(sequences)),
    )
    batch = [
        SampledSequence(
            p, g.token_ids, g.logprobs, g.sampling_mask, g.routing, float(i % 3 == 0), str(i % 4)
        )
        for i, (p, g) in enumerate(zip(prompts, gens, strict=True))
    ]
    rows = []
    for forward_batch in (1, 4, 8):
        config = GRPOConfig(forward_batch=forward_batch)
        best, loss = float("inf"), 0.0
        for _ in range(repeats):
            model.zero_grad(set_to_none=True)
            t0 = time.perf_counter()
            value, _ = grpo_loss(model.train(), batch, config)
            value.backward()
            best = min(best, time.perf_counter() - t0)
            loss = float(value.detach())
        rows.append((forward_batch, best, loss))
    model.eval()
    return {
        "model": label,
        "threads": torch.get_num_threads(),
        "sequences": sequences,
        "rows": rows,
    }


def run_bench(**options: Any) -> Table:
    """`measure(**options)` as a table."""
    result = measure(**options)
    table = Table(
        title=f"GRPO loss + backward, {result['sequences']} sequences, {result['model']} model, "
        f"{result['threads']} threads (best of the repeats)"
    )
    for col in ("sequences per forward", "wall s", "speed-up", "loss", "Δ loss vs 1"):
        table.add_column(col)
    base_s, base_loss = result["rows"][0][1], result["rows"][0][2]
    for forward_batch, seconds, loss in result["rows"]:
        table.add_row(
            str(forward_batch),
            f"{seconds:.2f}",
            f"{base_s / seconds:.2f}×",
            f"{loss:.6f}",
            f"{abs(loss - base_loss):.1e}",
        )
    return table
