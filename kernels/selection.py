"""Top-k key selection of the lightning indexer, streaming over chunks of query rows.

For each chunk of query rows the indexer logits kernel fills a (rows × visible keys)
buffer, and the top-k kernel selects from it before the next chunk reuses the buffer, so
memory stays at chunk_rows × T_kv floats per sequence whatever the context length.
"""

from __future__ import annotations

import torch

from kernels.checks import check_runnable
from kernels.errors import KernelInputError
from kernels.indexer import (
    _indexer_logits_kernel,
    check_indexer_inputs,
    indexer_logits_reference,
    launch_indexer_logits,
)
from kernels.topk import causal_topk_reference, launch_causal_topk

NAME = "indexer_topk"
DEFAULT_CHUNK_BYTES = 1 << 30


def indexer_topk_reference(
    q: torch.Tensor, weights: torch.Tensor, k: torch.Tensor, top_k: int, start_pos: int = 0
) -> torch.Tensor:
    """The same selection from the full logits matrix, in plain PyTorch.

    Args: as for `indexer_topk`.

    Returns:
        (B, Tq, min(top_k, start_pos+Tq)) int32, as `indexer_topk`.
    """
    return causal_topk_reference(
        indexer_logits_reference(q, weights, k, start_pos), top_k, start_pos
    )


def indexer_topk(
    q: torch.Tensor,
    weights: torch.Tensor,
    k: torch.Tensor,
    top_k: int,
    start_pos: int = 0,
    chunk_rows: int | None = None,
) -> torch.Tensor:
    """Select, for each query, the top_k visible keys by indexer score, by the Triton kernels.

    Query t (at position p = start_pos + t) sees keys 0 … p and keeps min(top_k, p+1) of them.

    Args:
        q: (B, Tq, H, D) float32/bfloat16/float16, contiguous; indexer queries.
        weights: (B, Tq, H) float32, contiguous; per-head weights, already scaled.
        k: (B, Tkv, D), q's dtype, contiguous; indexer keys, Tkv ≥ start_pos + Tq.
        top_k: keys to keep per query, ≥ 1.
        start_pos: position of the first query.
        chunk_rows: query rows per chunk; by default as many as fit 1 GiB of logits.

    Returns:
        (B, Tq, min(top_k, start_pos+Tq)) int32 selected key positions in increasing order,
        padded with -1 at the end of rows that see fewer than top_k keys.

    Raises:
        KernelInputError: on a bad shape, dtype, layout, device, top_k, start_pos or chunk_rows.
    """
    q, weights, k = check_indexer_inputs(NAME, q, weights, k, start_pos)
    check_runnable(NAME, _indexer_logits_kernel, q)
    if top_k < 1:
        raise KernelInputError(f"{NAME}: top_k must be ≥ 1, got {top_k}")
    b, n_rows = q.shape[:2]
    n_keys = start_pos + n_rows
    if chunk_rows is None:
        chunk_rows = max(64, DEFAULT_CHUNK_BYTES // (4 * b * n_keys))
    if chunk_rows < 1:
        raise KernelInputError(f"{NAME}: chunk_rows must be ≥ 1, got {chunk_rows}")
    out = torch.empty(b, n_rows, min(top_k, n_keys), dtype=torch.int32, device=q.device)
    buffer = torch.empty(b * min(chunk_rows, n_rows) * n_keys, device=q.device)
    for r0 in range(0, n_rows, chunk_rows):
        r1 = min(n_rows, r0 + chunk_rows)
        logits = buffer[: b * (r1 - r0) * (start_pos + r1)].view(b, r1 - r0, start_pos + r1)
        rows = slice(r0, r1)
        launch_indexer_logits(q[:, rows], weights[:, rows], k, start_pos + r0, logits)
        launch_causal_topk(logits, start_pos + r0, out[:, rows])
    return out
