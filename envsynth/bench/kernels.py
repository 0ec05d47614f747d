"""`envsynth bench kernels`: the DSA attention path against dense causal SDPA.

On a CUDA device, for each context length and each shape preset (our model's and
DeepSeek-like: 64 query heads, latent 512 + RoPE 64, top-k 2048), it times the lightning
indexer with its streaming top-k, the sparse MLA attention forward over the selected keys,
and their sum, against `torch.nn.functional.scaled_dot_product_attention(is_causal=True)`
over every earlier token with the MHA-mode shapes DSA replaces (q/k of nope + rope, v of
v_head_dim per head; the faster of v as is and v padded to q's width, which lets flash
attention run), all in bfloat16, measured in the same run. TFLOP/s counts the
multiply-adds of the work done (causal pairs for dense and the indexer, selected pairs for
sparse attention); GB/s counts each kernel's compulsory traffic (inputs read once, outputs
written once, the logits chunk written once and read by the five top-k passes).

Without CUDA it says so and times the PyTorch references at a short length on the CPU, so
that the command still runs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from statistics import median
from typing import Any

from rich.table import Table

LENGTHS = (8192, 16384, 32768, 65536, 131072)
SHAPES = ("ours", "deepseek")
CPU_LENGTHS = (256, 1024)
CPU_SHAPES = ("ours",)
TOPK_PASSES = 5  # four radix passes and the output pass of kernels.topk, each reading the row


@dataclass(frozen=True)
class Timing:
    """One measured path.

    Attributes:
        ms: median wall time of one call in milliseconds.
        flops: floating-point operations of one call (2 per multiply-add).
        bytes: compulsory memory traffic of one call.
    """

    ms: float
    flops: float
    bytes: float

    def __add__(self, other: Timing) -> Timing:
        return Timing(self.ms + other.ms, self.flops + other.flops, self.bytes + other.bytes)


@dataclass(frozen=True)
class Dims:
    """The attention shapes of a preset."""

    heads: int
    d_v: int
    d_rope: int
    d_nope: int
    v_head: int
    index_heads: int
    index_dim: int
    top_k: int


def _dims(shape: str) -> Dims:
    from model import ModelArgs

    a = ModelArgs.deepseek_like() if shape == "deepseek" else ModelArgs.tiny()
    return Dims(a.n_heads, a.kv_lora_rank, a.qk_rope_head_dim, a.qk_nope_head_dim,
                a.v_head_dim, a.index_n_heads, a.index_head_dim, a.index_topk)  # fmt: skip


def _time(fn: Callable[[], Any], device: str, repeats: int, warmup: int) -> float:
    """Median milliseconds of fn() over `repeats` calls after `warmup` calls."""
    import torch

    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeats):
        if device == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize()
            samples.append(start.elapsed_time(end))
        else:
            t0 = time.perf_counter()
            fn()
            samples.append((time.perf_counter() - t0) * 1000)
    return median(samples)


def measure(shape: str, length: int, device: str, repeats: int, warmup: int) -> dict[str, Timing]:
    """Time the DSA path and dense SDPA at one shape preset and length.

    On CUDA the Triton kernels run in bfloat16; on the CPU their PyTorch references in float32.

    Returns:
        Timings under "indexer + top-k", "sparse attention", "DSA total", "dense SDPA".
    """
    import torch

    d = _dims(shape)
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    timings = _time_dsa(d, length, device, dtype, repeats, warmup)
    timings["DSA total"] = timings["indexer + top-k"] + timings["sparse attention"]
    timings["dense SDPA"] = _time_dense(d, length, device, dtype, repeats, warmup)
    return timings


def _random(device: str, dtype: Any, seed: int) -> Callable[..., Any]:
    import torch

    g = torch.Generator(device=device).manual_seed(seed)

    def rand(*size: int, dtype: torch.dtype = dtype) -> torch.Tensor:
        return torch.randn(*size, generator=g, device=device, dtype=dtype)

    return rand


def _time_dsa(
    d: Dims, length: int, device: str, dtype: Any, repeats: int, warmup: int
) -> dict[str, Timing]:
    import torch

    import kernels

    rand = _random(device, dtype, length)
    width = d.d_v + d.d_rope
    q_idx, k_idx = rand(1, length, d.index_heads, d.index_dim), rand(1, length, d.index_dim)
    w_idx = rand(1, length, d.index_heads, dtype=torch.float32)
    q, kv = rand(1, length, d.heads, width), rand(1, length, width)
    on_gpu = device == "cuda"
    select = kernels.indexer_topk if on_gpu else kernels.indexer_topk_reference
    attend = kernels.sparse_attention_forward if on_gpu else kernels.sparse_attention_reference
    scale = (d.d_nope + d.d_rope) ** -0.5

    indices = select(q_idx, w_idx, k_idx, d.top_k)
    index_ms = _time(lambda: select(q_idx, w_idx, k_idx, d.top_k), device, repeats, warmup)
    attend_ms = _time(lambda: attend(q, kv, indices, scale, d.d_v), device, repeats, warmup)

    pairs = length * (length + 1) / 2
    selected = sum(min(d.top_k, t + 1) for t in range(length))
    itemsize = q.element_size()
    index_bytes = q_idx.nbytes + k_idx.nbytes + w_idx.nbytes + indices.nbytes
    attend_bytes = q.nbytes * (width + d.d_v) / width + selected * width * itemsize
    return {
        "indexer + top-k": Timing(
            index_ms,
            2 * d.index_heads * d.index_dim * pairs,
            index_bytes + 4 * pairs * (1 + TOPK_PASSES),
        ),
        "sparse attention": Timing(
            attend_ms,
            2 * d.heads * (width + d.d_v) * selected,
            attend_bytes + indices.nbytes + 4 * length * d.heads,
        ),
    }


def _time_dense(d: Dims, length: int, device: str, dtype: Any, repeats: int, warmup: int) -> Timing:
    import torch.nn.functional as F

    rand = _random(device, dtype, length + 1)
    d_qk = d.d_nope + d.d_rope
    q, k = rand(1, d.heads, length, d_qk), rand(1, d.heads, length, d_qk)
    scale = d_qk**-0.5
    # Flash attention wants one head width for q, k and v; with v padded to q's width it
    # may beat the fallback that takes v as it is, so the faster of the two is the baseline.
    best = float("inf")
    for v_width in dict.fromkeys((d.v_head, d_qk)):
        v = rand(1, d.heads, length, v_width)

        def dense(v: Any = v) -> Any:
            return F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=scale)

        best = min(best, _time(dense, device, repeats, warmup))
        del v
    pairs = length * (length + 1) / 2
    io = q.nbytes + k.nbytes + 2 * q.nbytes * d.v_head / d_qk
    return Timing(best, 2 * d.heads * (d_qk + d.v_head) * pairs, io)


def _row_cells(t: Timing) -> tuple[str, str, str]:
    tflops = t.flops / (t.ms * 1e-3) / 1e12 if t.ms > 0 else 0.0
    gbs = t.bytes / (t.ms * 1e-3) / 1e9 if t.ms > 0 else 0.0
    return f"{t.ms:.3f}", f"{tflops:.3g}", f"{gbs:.3g}"


def _new_table(title: str) -> Table:
    table = Table(title=title)
    for col in ("shape", "T", "path", "ms", "TFLOP/s", "GB/s", "dense SDPA ms / path ms"):
        table.add_column(col, justify="right" if col not in ("shape", "path") else "left")
    return table


def run_bench(
    lengths: Sequence[int] | None = None,
    shapes: Sequence[str] | None = None,
    repeats: int = 5,
    warmup: int = 2,
) -> Table:
    """Benchmark the DSA attention path against dense causal SDPA.

    Args:
        lengths: context lengths; by default 8K…128K on CUDA, 256 and 1024 on the CPU.
        shapes: shape presets among "ours" (the bundled model) and "deepseek"; by default
            both on CUDA, "ours" on the CPU.
        repeats: timed calls per measurement (the median is reported).
        warmup: untimed calls before them.

    Returns:
        A table with one row per (shape, length, path).
    """
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda":
        title = f"envsynth bench kernels: {torch.cuda.get_device_name()}, bfloat16"
    else:
        title = "envsynth bench kernels: no CUDA device, so no kernel timings"
    table = _new_table(title)
    if device == "cpu":
        table.add_row("", "", "[yellow]no GPU present: Triton kernels need CUDA[/yellow]",
                      "", "", "", "")  # fmt: skip
        table.caption = "CPU rows time the PyTorch references (float32), not the kernels."
    for shape in shapes or (SHAPES if device == "cuda" else CPU_SHAPES):
        if shape not in SHAPES:
            from envsynth.errors import ConfigError

            raise ConfigError(f"unknown shape preset {shape!r}; use {' or '.join(SHAPES)}")
        for length in lengths or (LENGTHS if device == "cuda" else CPU_LENGTHS):
            try:
                timings = measure(shape, length, device, repeats, warmup)
            except torch.cuda.OutOfMemoryError:
                torch.cuda.empty_cache()
                table.add_row(shape, str(length), "[red]out of memory[/red]", "", "", "", "")
                continue
            dense_ms = timings["dense SDPA"].ms
            for path, t in timings.items():
                ratio = f"{dense_ms / t.ms:.2f}×" if path == "DSA total" else ""
                table.add_row(shape, str(length), path, *_row_cells(t), ratio)
            if device == "cuda":
                torch.cuda.empty_cache()
    return table
