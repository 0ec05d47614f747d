"""Causal top-k of each row of a logits chunk, streaming over the row in column blocks.

Row t of a chunk holds the logits of query position p = start_pos + t against keys
0 … W-1; only keys 0 … p are visible. A row with at most K visible keys selects them all.
Otherwise one program per row selects the K largest by radix select: it streams over the
row four times keeping a running 256-bin histogram of one byte of an order-preserving
integer key (the running state is the prefix of the K-th largest key and how many of the
K are still to place), then once more to write the selected columns. Each pass reads the row
once; nothing of size K×row lives in registers, so K = 2048 costs what K = 64 does.

Output rows list the selected columns in increasing order, padded with -1 to width K; ties
at the K-th value are broken towards the lower column.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from kernels.checks import check_runnable, check_tensor
from kernels.errors import KernelInputError

NAME = "causal_topk"
LAUNCH_CONFIG = {"BLOCK_N": 1024, "num_warps": 8}


@triton.jit
def _causal_topk_kernel(
    x_ptr,
    out_ptr,
    n_cols,
    start_pos,
    K,
    stride_xb,
    stride_xt,
    stride_ob,
    stride_ot,
    BLOCK_N: tl.constexpr,
):
    t = tl.program_id(0)
    b = tl.program_id(1).to(tl.int64)
    row = x_ptr + b * stride_xb + t.to(tl.int64) * stride_xt
    out = out_ptr + b * stride_ob + t.to(tl.int64) * stride_ot
    n = tl.minimum(n_cols, start_pos + t + 1)
    cols = tl.arange(0, BLOCK_N)

    if n <= K:
        for c in range(0, K, BLOCK_N):
            offs = c + cols
            tl.store(out + offs, tl.where(offs < n, offs, -1), mask=offs < K)
    else:
        bins = tl.arange(0, 256)
        prefix = 0
        remaining = K
        for p in tl.static_range(4):
            hist = tl.zeros((256,), dtype=tl.int32)
            for c in range(0, n, BLOCK_N):
                offs = c + cols
                inside = offs < n
                bits = tl.load(row + offs, mask=inside, other=0.0).to(tl.int32, bitcast=True)
                key = tl.where(bits < 0, -(bits & 0x7FFFFFFF), bits)
                if p == 0:
                    match = inside
                    digit = (key >> 24) + 128
                else:
                    match = inside & ((key >> (32 - 8 * p)) == (prefix >> (32 - 8 * p)))
                    digit = (key >> (24 - 8 * p)) & 255
                hist += tl.histogram(digit, 256, mask=match)
            at_or_above = tl.cumsum(hist, 0, reverse=True)
            kth = tl.max(tl.where(at_or_above >= remaining, bins, 0), 0)
            remaining -= tl.sum(tl.where(bins > kth, hist, 0), 0)
            if p == 0:
                prefix = (kth - 128) << 24
            else:
                prefix = prefix | (kth << (24 - 8 * p))

        written = 0
        ties_seen = 0
        for c in range(0, n, BLOCK_N):
            offs = c + cols
            inside = offs < n
            bits = tl.load(row + offs, mask=inside, other=0.0).to(tl.int32, bitcast=True)
            key = tl.where(bits < 0, -(bits & 0x7FFFFFFF), bits)
            above = inside & (key > prefix)
            tied = inside & (key == prefix)
            tie_rank = ties_seen + tl.cumsum(tied.to(tl.int32), 0)
            take = above | (tied & (tie_rank <= remaining))
            slot = written + tl.cumsum(take.to(tl.int32), 0) - 1
            tl.store(out + slot, offs, mask=take)
            written += tl.sum(take.to(tl.int32), 0)
            ties_seen += tl.sum(tied.to(tl.int32), 0)


def causal_topk_reference(logits: torch.Tensor, top_k: int, start_pos: int = 0) -> torch.Tensor:
    """The same selection by a stable sort (ties go to the lower column, as in the kernel).

    Args:
        logits: (B, Tq, W) float32; row t is query position start_pos + t.
        top_k: number of keys to keep per query.
        start_pos: position of the first row.

    Returns:
        (B, Tq, min(top_k, W)) int32 selected columns in increasing order, -1-padded at the end.
    """
    _, n_rows, n_cols = logits.shape
    k = min(top_k, n_cols)
    positions = torch.arange(start_pos, start_pos + n_rows, device=logits.device)
    hidden = torch.arange(n_cols, device=logits.device)[None, :] > positions[:, None]
    ranked = logits.masked_fill(hidden, float("-inf")).sort(dim=-1, descending=True, stable=True)
    idx = ranked.indices[..., :k]
    n_visible = (positions + 1).clamp(max=n_cols)
    idx = torch.where(torch.arange(k, device=logits.device) < n_visible[:, None], idx, n_cols)
    idx = idx.sort(dim=-1).values
    return torch.where(idx == n_cols, -1, idx).to(torch.int32)


def launch_causal_topk(logits: torch.Tensor, start_pos: int, out: torch.Tensor) -> None:
    """Run the kernel without checks.

    Args:
        logits: (B, Tq, W) float32, unit stride in W.
        start_pos: position of the first row.
        out: (B, Tq, K) int32, unit stride in K; filled with the selection.
    """
    b, n_rows, n_cols = logits.shape
    _causal_topk_kernel[(n_rows, b)](
        logits, out,
        n_cols, start_pos, out.shape[2],
        logits.stride(0), logits.stride(1),
        out.stride(0), out.stride(1),
        **LAUNCH_CONFIG,
    )  # fmt: skip


def causal_topk(logits: torch.Tensor, top_k: int, start_pos: int = 0) -> torch.Tensor:
    """Select the top_k visible columns of each row, by the Triton kernel.

    Row t may see columns 0 … start_pos+t; it keeps min(top_k, start_pos+t+1) of them.

    Args:
        logits: (B, Tq, W) float32, contiguous, finite where visible.
        top_k: number of keys to keep per query, ≥ 1.
        start_pos: position of the first row.

    Returns:
        (B, Tq, min(top_k, W)) int32 selected columns in increasing order, -1-padded at the end.

    Raises:
        KernelInputError: on a bad shape, dtype, layout, device, top_k or start_pos.
    """
    logits = check_tensor(NAME, "logits", logits, ndim=3, dtypes=(torch.float32,))
    if top_k < 1 or start_pos < 0:
        raise KernelInputError(
            f"{NAME}: need top_k ≥ 1 and start_pos ≥ 0, got {top_k}, {start_pos}"
        )
    check_runnable(NAME, _causal_topk_kernel, logits)
    b, n_rows, n_cols = logits.shape
    out = torch.empty(b, n_rows, min(top_k, n_cols), dtype=torch.int32, device=logits.device)
    launch_causal_topk(logits, start_pos, out)
    return out
