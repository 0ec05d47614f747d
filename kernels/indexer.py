"""Lightning-indexer logits I(t,s) = Σ_j w(t,j)·ReLU(q(t,j)·k(s)) for a chunk of query rows.

The kernel computes one (rows × keys) tile per program, looping over the indexer heads,
so the per-head scores never leave registers. Callers bound memory by calling it on a chunk
of query rows at a time (see `kernels.selection`); the full T×T matrix never exists.
Keys after a query's own position are -inf (causal), and tiles wholly above the diagonal
skip the products.
"""

from __future__ import annotations

from typing import Any

import torch
import triton
import triton.language as tl

from kernels.checks import FLOATS, check_dim, check_runnable, check_same, check_tensor
from kernels.errors import KernelInputError

NAME = "indexer_logits"


@triton.jit
def _indexer_logits_kernel(
    q_ptr,
    w_ptr,
    k_ptr,
    out_ptr,
    n_rows,
    n_cols,
    n_heads,
    head_dim,
    start_pos,
    stride_qb,
    stride_qt,
    stride_qh,
    stride_wb,
    stride_wt,
    stride_kb,
    stride_kt,
    stride_ob,
    stride_ot,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_D: tl.constexpr,
    PRECISION: tl.constexpr,
):
    pid_n = tl.program_id(0)
    pid_m = tl.program_id(1)
    b = tl.program_id(2).to(tl.int64)  # int64 offsets: batch strides pass 2^31 at long context
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, BLOCK_D)
    mask_m = offs_m < n_rows
    mask_d = offs_d < head_dim

    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    last_visible = start_pos + tl.minimum(pid_m * BLOCK_M + BLOCK_M, n_rows) - 1
    if pid_n * BLOCK_N <= last_visible:
        k = tl.load(
            k_ptr + b * stride_kb + offs_n[:, None] * stride_kt + offs_d[None, :],
            mask=(offs_n < n_cols)[:, None] & mask_d[None, :],
            other=0.0,
        )
        kt = tl.trans(k)
        q_rows = q_ptr + b * stride_qb + offs_m[:, None].to(tl.int64) * stride_qt + offs_d[None, :]
        w_rows = w_ptr + b * stride_wb + offs_m * stride_wt
        for h in range(n_heads):
            q = tl.load(q_rows + h * stride_qh, mask=mask_m[:, None] & mask_d[None, :], other=0.0)
            w = tl.load(w_rows + h, mask=mask_m, other=0.0)
            s = tl.dot(q, kt, input_precision=PRECISION)
            acc += tl.maximum(s, 0.0) * w[:, None]

    visible = offs_n[None, :] <= (start_pos + offs_m)[:, None]
    out = tl.where(visible, acc, float("-inf"))
    tl.store(
        out_ptr + b * stride_ob + offs_m[:, None].to(tl.int64) * stride_ot + offs_n[None, :],
        out,
        mask=mask_m[:, None] & (offs_n < n_cols)[None, :],
    )


def indexer_logits_reference(
    q: torch.Tensor, weights: torch.Tensor, k: torch.Tensor, start_pos: int = 0
) -> torch.Tensor:
    """The indexer logits in plain PyTorch (materializes every head's scores).

    Args:
        q: (B, Tq, H, D) indexer queries of query positions start_pos … start_pos+Tq-1.
        weights: (B, Tq, H) per-head weights, already scaled.
        k: (B, Tkv, D) indexer keys, Tkv ≥ start_pos + Tq.
        start_pos: position of the first query row.

    Returns:
        (B, Tq, start_pos+Tq) float32; entry (t, s) is -inf when s > start_pos + t.
    """
    n_rows = q.shape[1]
    n_cols = start_pos + n_rows
    scores = torch.einsum("bthd,bsd->bths", q.float(), k[:, :n_cols].float())
    logits = (scores.relu() * weights.float()[..., None]).sum(dim=2)
    rows = torch.arange(start_pos, n_cols, device=q.device)
    hidden = torch.arange(n_cols, device=q.device)[None, :] > rows[:, None]
    return logits.masked_fill(hidden, float("-inf"))


def check_indexer_inputs(
    kernel: str, q: object, weights: object, k: object, start_pos: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Validate the indexer's (q, weights, k) and return them typed."""
    q = check_tensor(kernel, "q", q, ndim=4, dtypes=FLOATS)
    weights = check_tensor(kernel, "weights", weights, ndim=3, dtypes=(torch.float32,))
    k = check_tensor(kernel, "k", k, ndim=3, dtypes=FLOATS)
    b, t, h, d = q.shape
    check_dim(kernel, "weights", weights, 0, b, "q's batch size")
    check_dim(kernel, "weights", weights, 1, t, "q's query rows")
    check_dim(kernel, "weights", weights, 2, h, "q's indexer heads")
    check_dim(kernel, "k", k, 0, b, "q's batch size")
    check_dim(kernel, "k", k, 2, d, "q's head dimension")
    check_same(kernel, "device", q=q, weights=weights, k=k)
    check_same(kernel, "dtype", q=q, k=k)
    if start_pos < 0 or start_pos + t > k.shape[1]:
        raise KernelInputError(
            f"{kernel}: query rows {start_pos}…{start_pos + t - 1} need keys up to there, but k "
            f"holds {k.shape[1]} positions; pass start_pos ≥ 0 and all keys up to the last query"
        )
    return q, weights, k


def launch_config(head_dim: int, dtype: torch.dtype) -> dict[str, Any]:
    """Tile sizes, warps and dot precision the wrapper launches with."""
    block_d = max(16, triton.next_power_of_2(head_dim))
    # 64×128 tiles with 8 warps keep D = 128 free of spills on sm_90 (ptxas resource usage).
    block_m, block_n = (64, 128) if block_d <= 128 else (32, 64)
    return {
        "BLOCK_M": block_m,
        "BLOCK_N": block_n,
        "BLOCK_D": block_d,
        "PRECISION": "ieee" if dtype == torch.float32 else "tf32",
        "num_warps": 8,
    }


def launch_indexer_logits(
    q: torch.Tensor, weights: torch.Tensor, k: torch.Tensor, start_pos: int, out: torch.Tensor
) -> None:
    """Run the kernel without checks (strided views allowed if the last dims are dense).

    Args:
        q: (B, Tq, H, D), unit stride in D.
        weights: (B, Tq, H) float32, unit stride in H.
        k: (B, Tkv, D), unit stride in D.
        start_pos: position of the first query row.
        out: (B, Tq, W) float32 with W ≤ Tkv, unit stride in W; filled with the logits.
    """
    b, n_rows, n_heads, head_dim = q.shape
    n_cols = out.shape[2]
    cfg = launch_config(head_dim, q.dtype)
    grid = (triton.cdiv(n_cols, cfg["BLOCK_N"]), triton.cdiv(n_rows, cfg["BLOCK_M"]), b)
    _indexer_logits_kernel[grid](
        q, weights, k, out,
        n_rows, n_cols, n_heads, head_dim, start_pos,
        q.stride(0), q.stride(1), q.stride(2),
        weights.stride(0), weights.stride(1),
        k.stride(0), k.stride(1),
        out.stride(0), out.stride(1),
        **cfg,
    )  # fmt: skip


def indexer_logits(
    q: torch.Tensor, weights: torch.Tensor, k: torch.Tensor, start_pos: int = 0
) -> torch.Tensor:
    """The indexer logits of a chunk of query rows, by the Triton kernel.

    Args:
        q: (B, Tq, H, D) float32/bfloat16/float16, contiguous; queries of positions
            start_pos … start_pos+Tq-1.
        weights: (B, Tq, H) float32, contiguous; the per-head weights w(t, j), already scaled.
        k: (B, Tkv, D), same dtype as q, contiguous; Tkv ≥ start_pos + Tq.
        start_pos: position of the first query row.

    Returns:
        (B, Tq, start_pos+Tq) float32 logits, -inf where the key is after the query.

    Raises:
        KernelInputError: on a bad shape, dtype, layout, device or start_pos.
    """
    q, weights, k = check_indexer_inputs(NAME, q, weights, k, start_pos)
    check_runnable(NAME, _indexer_logits_kernel, q)
    out = torch.empty(q.shape[0], q.shape[1], start_pos + q.shape[1], device=q.device)
    launch_indexer_logits(q, weights, k, start_pos, out)
    return out
