"""Where DSA's two hot spots run: the Triton kernels on CUDA, plain PyTorch elsewhere.

`backend="auto"` picks the kernels for CUDA tensors and PyTorch for the rest; "triton"
forces the kernels (on the CPU that needs TRITON_INTERPRET=1 before `kernels` is imported,
as the kernel tests do), "torch" forces PyTorch.
"""

from __future__ import annotations

from typing import Literal

import torch

from kernels import indexer_topk, indexer_topk_reference, sparse_attention
from model.errors import ModelInputError

Backend = Literal["auto", "triton", "torch"]


def resolve(backend: Backend, like: torch.Tensor) -> Literal["triton", "torch"]:
    """The backend `backend` means for tensors on `like`'s device."""
    if backend == "auto":
        return "triton" if like.is_cuda else "torch"
    if backend not in ("triton", "torch"):
        raise ModelInputError(f"unknown backend {backend!r}; use 'auto', 'triton' or 'torch'")
    return backend


@torch.no_grad()
def select_topk(
    q: torch.Tensor,
    weights: torch.Tensor,
    k: torch.Tensor,
    top_k: int,
    start_pos: int = 0,
    backend: Backend = "auto",
) -> torch.Tensor:
    """The top_k visible keys of each query by lightning-indexer score (not differentiable).

    Args:
        q: (B, T, H_i, D_i) indexer queries of positions start_pos … start_pos+T-1.
        weights: (B, T, H_i) float32 per-head weights, scaled.
        k: (B, T_kv, D_i) indexer keys, T_kv ≥ start_pos + T.
        top_k: keys kept per query; query p keeps min(top_k, p+1).
        start_pos: position of the first query.
        backend: see the module docstring.

    Returns:
        (B, T, min(top_k, start_pos+T)) int32 key positions, increasing, -1-padded.
    """
    q, weights, k = q.contiguous(), weights.float().contiguous(), k.contiguous()
    if resolve(backend, q) == "triton":
        return indexer_topk(q, weights, k, top_k, start_pos)
    return indexer_topk_reference(q, weights, k, top_k, start_pos)


def sparse_mla(
    q: torch.Tensor,
    kv: torch.Tensor,
    indices: torch.Tensor,
    scale: float,
    d_v: int,
    backend: Backend = "auto",
) -> torch.Tensor:
    """Attention of absorbed queries over the selected latent entries (MQA mode).

    Args:
        q: (B, T, H, d_v+d_rope) absorbed queries.
        kv: (B, T_kv, d_v+d_rope) latent ‖ rope key per position.
        indices: (B, T, K) selected positions, -1 for padding; every row selects at least one.
        scale: softmax scale.
        d_v: latent width (the value).
        backend: see the module docstring.

    Returns:
        (B, T, H, d_v) in q's dtype, differentiable in q and kv.
    """
    if resolve(backend, q) == "triton":
        return sparse_attention(q.contiguous(), kv.contiguous(), indices.contiguous(), scale, d_v)
    return _masked_attention(q, kv, indices, scale, d_v)


def _masked_attention(
    q: torch.Tensor, kv: torch.Tensor, indices: torch.Tensor, scale: float, d_v: int
) -> torch.Tensor:
    # At the short lengths the CPU trains on, scoring every key and masking the unselected
    # is cheaper than gathering K rows per query, whose copies grow as T·K·(d_v+d_rope).
    n_kv = kv.shape[1]
    valid = (indices >= 0) & (indices < n_kv)
    slots = torch.where(valid, indices, n_kv).long()
    allowed = torch.zeros(*indices.shape[:2], n_kv + 1, dtype=torch.bool, device=q.device)
    allowed = allowed.scatter_(-1, slots, True)[..., :n_kv]
    scores = torch.einsum("bthd,bsd->bhts", q, kv) * scale
    probs = scores.masked_fill(~allowed[:, None], float("-inf")).softmax(dim=-1)
    return torch.einsum("bhts,bsc->bthc", probs, kv[..., :d_v])
