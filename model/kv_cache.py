"""Incremental decoding: the per-layer latent and indexer-key cache and the cached forward.

Each layer caches, per token, what MLA and the indexer need from earlier tokens: the
normalized KV latent c and the shared RoPE key k_pe (the MLA latent cache, as in
DeepSeek's absorbed inference) and the indexer key. A step projects only its new tokens,
appends them, and attends over the cache in the absorbed (MQA) form of `MLA.sparse`: in
sparse mode over the indexer's top-k, in dense mode over every visible entry, which is the
same function as dense attention. Step t therefore costs O(t), not a forward over t tokens.
On CUDA the selection goes to the Triton kernel as index lists; on the CPU it stays a mask
(`MLA.masked`), and a long prefill is attended in chunks of query rows.

Rows may be left-padded: pad slots are never visible to real tokens, and each row's RoPE
positions count only its real tokens, so a padded row computes what it would alone.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import cast

import torch

from kernels import indexer_logits_reference
from model.block import Block
from model.dispatch import Backend, resolve
from model.errors import ModelInputError
from model.indexer import IndexerState
from model.mla import MLA, AttentionMode, Projection
from model.moe import MoE
from model.rope import Rope
from model.transformer import Transformer


@dataclass(frozen=True)
class LayerCache:
    """One layer's cached entries, preallocated to the cache capacity S.

    Attributes:
        latent: (B, S, kv_lora_rank) normalized KV latent c.
        k_pe: (B, S, qk_rope_head_dim) shared RoPE key, rotated.
        index_k: (B, S, index_head_dim) indexer key, rotated.
    """

    latent: torch.Tensor
    k_pe: torch.Tensor
    index_k: torch.Tensor


@dataclass(frozen=True)
class StepOutput:
    """What a cached step returns.

    Attributes:
        logits: (B, T, vocab_size) float32 next-token logits of the new tokens.
        routes: per layer, (B, T, n_activated_experts) int64 expert ids, or None if dense.
    """

    logits: torch.Tensor
    routes: tuple[torch.Tensor | None, ...]


class KVCache:
    """The cache of one batch: per-layer entries, which slots are real, their positions."""

    def __init__(self, model: Transformer, batch: int, capacity: int):
        args = model.args
        if not 1 <= capacity <= args.max_seq_len:
            raise ModelInputError(
                f"cache capacity {capacity} is outside 1…{args.max_seq_len} (max_seq_len)"
            )
        like = model.embed.weight

        def buffer(width: int) -> torch.Tensor:
            return like.new_zeros(batch, capacity, width)

        self.layers = tuple(
            LayerCache(
                buffer(args.kv_lora_rank),
                buffer(args.qk_rope_head_dim),
                buffer(args.index_head_dim),
            )
            for _ in range(args.n_layers)
        )
        self.valid = torch.zeros(batch, capacity, dtype=torch.bool, device=like.device)
        self.positions = torch.zeros(batch, capacity, dtype=torch.long, device=like.device)
        self.batch, self.capacity, self.length = batch, capacity, 0

    def append(self, valid: torch.Tensor) -> tuple[int, int]:
        """Reserve slots for T new tokens per row; `valid` (B, T) marks the real ones.

        Returns:
            start, end: the reserved slots.
        """
        start, end = self.length, self.length + valid.shape[1]
        if valid.shape[0] != self.batch or end > self.capacity:
            raise ModelInputError(
                f"{tuple(valid.shape)} new tokens do not fit a cache of batch {self.batch}, "
                f"{self.length}/{self.capacity} slots used"
            )
        seen = self.valid[:, :start].sum(-1, keepdim=True)
        self.valid[:, start:end] = valid
        self.positions[:, start:end] = (seen + valid.long().cumsum(-1) - 1).clamp(min=0)
        self.length = end
        return start, end

    def select(self, rows: Sequence[int], start: int = 0, end: int | None = None) -> KVCache:
        """These rows, in this order, and slots start…end-1 (default: all) as a new cache.

        Copied, so the source can go: e.g. the rows still decoding, or one finished row's
        real slots as a prefix-cache entry.
        """
        end = self.capacity if end is None else end
        index = torch.tensor(list(rows), dtype=torch.long, device=self.valid.device)
        out = KVCache.__new__(KVCache)
        out.layers = tuple(
            LayerCache(
                layer.latent[index, start:end],
                layer.k_pe[index, start:end],
                layer.index_k[index, start:end],
            )
            for layer in self.layers
        )
        out.valid = self.valid[index, start:end]
        out.positions = self.positions[index, start:end]
        out.batch, out.capacity = len(index), end - start
        out.length = min(self.length, end) - start
        return out

    def visible(self, start: int, end: int) -> torch.Tensor:
        """(B, end-start, end) bool: which slots each new slot attends to.

        Real slots see the earlier real ones and themselves; a pad slot sees only itself,
        so that its (ignored) attention row is never empty.
        """
        slots = torch.arange(end, device=self.valid.device)
        rows = slots[start:, None]
        causal = slots[None, :] <= rows
        return causal & (self.valid[:, None, :end] | (slots[None, :] == rows))


@torch.no_grad()
def forward_cached(
    model: Transformer,
    tokens: torch.Tensor,
    cache: KVCache,
    valid: torch.Tensor | None = None,
    mode: AttentionMode = "sparse",
    backend: Backend = "auto",
) -> StepOutput:
    """Run new tokens through the model, reading and extending the cache.

    Args:
        model: the transformer whose weights to use.
        tokens: (B, T) int64 new token ids, appended after the cache's current length.
        cache: the batch's cache; extended by T slots.
        valid: (B, T) bool, False at left padding; all True by default.
        mode: "dense" or "sparse", as in `Transformer.forward`.
        backend: where the sparse attention runs (see `model.dispatch`).

    Raises:
        ModelInputError: on a bad token shape, mode, or a cache overflow.
    """
    if tokens.dim() != 2 or tokens.is_floating_point():
        raise ModelInputError(f"tokens must be (B, T) integer ids, got {tuple(tokens.shape)}")
    if mode not in ("dense", "sparse"):
        raise ModelInputError(f"unknown attention mode {mode!r}; use 'dense' or 'sparse'")
    if valid is None:
        valid = torch.ones_like(tokens, dtype=torch.bool)
    start, end = cache.append(valid)
    pos = cache.positions[:, start:end]
    rope = Rope(model.rope_cos[pos], model.rope_sin[pos])
    visible = cache.visible(start, end)
    x = model.embed(tokens)
    routes: list[torch.Tensor | None] = []
    for layer, entries in zip(cast(Iterable[Block], model.layers), cache.layers, strict=True):
        h = layer.attn_norm(x)
        attn = layer.attn
        p = attn.project(h, rope)
        index = attn.indexer(h, p.qr, rope)
        entries.latent[:, start:end] = p.latent
        entries.k_pe[:, start:end] = p.k_pe
        entries.index_k[:, start:end] = index.k
        full = Projection(p.qr, p.q_nope, p.q_pe, entries.latent[:, :end], entries.k_pe[:, :end])
        heads = _attend(attn, full, index, entries.index_k[:, :end], visible, start, mode, backend)
        x = x + attn.wo(heads.flatten(2))
        f = layer.ffn_norm(x)
        if isinstance(layer.ffn, MoE):
            moe = layer.ffn(f)
            x, r = x + moe.out, moe.routes
        else:
            x, r = x + layer.ffn(f), None
        routes.append(r)
    return StepOutput(model.head(model.norm(x)).float(), tuple(routes))


# Score entries (batch × query rows × keys) per attention chunk of a prefill. Small chunks
# stay in the CPU's caches: at 5K keys, a 2^19 budget (~100 rows × 4 heads of float32 scores,
# 8 MB) prefilled in 2.6 s where 2^20 took 3.2 s and 2^23 took 6.9 s.
CHUNK_ENTRIES = 1 << 19


def _attend(
    attn: MLA,
    full: Projection,
    index: IndexerState,
    index_k: torch.Tensor,
    visible: torch.Tensor,
    start: int,
    mode: AttentionMode,
    backend: Backend,
) -> torch.Tensor:
    """(B, T, H, v) attention of the new slots over the cache, in chunks of query rows."""
    kernel = resolve(backend, full.latent) == "triton"
    parts = []
    batch, n_rows, n_keys = visible.shape
    chunk = max(1, CHUNK_ENTRIES // (batch * n_keys))
    for a in range(0, n_rows, chunk):
        b = min(a + chunk, n_rows)
        # Row a..b-1 of the new slots is slot start+a…start+b-1: nothing later is visible.
        width = start + b
        rows = Projection(
            full.qr[:, a:b],
            full.q_nope[:, a:b],
            full.q_pe[:, a:b],
            full.latent[:, :width],
            full.k_pe[:, :width],
        )
        allowed = visible[:, a:b, :width]
        if mode == "sparse":
            scores = indexer_logits_reference(
                index.q[:, a:b], index.weights[:, a:b], index_k, start + a
            )
            top = _top_k(scores.masked_fill(~allowed, float("-inf")), attn.indexer.top_k)
            allowed = allowed & top
        # The Triton kernel reads index lists; on the CPU a masked attention over the
        # latent cache is the same function without sorting every row's slots.
        parts.append(
            attn.sparse(rows, _as_indices(allowed), backend)
            if kernel
            else attn.masked(rows, allowed)
        )
    return torch.cat(parts, dim=1)


def _top_k(scores: torch.Tensor, top_k: int) -> torch.Tensor:
    # The best min(top_k, visible) finite scores as a mask; ties go to the lower slot, as in
    # the kernel. ReLU scores tie often (at 0), so the k-th value's ties are filled by slot
    # order: O(S) per row, where a stable sort would be O(S log S).
    k = min(top_k, scores.shape[-1])
    kth = scores.topk(k, dim=-1).values[..., -1:]
    above = scores > kth
    tied = scores == kth
    room = k - above.sum(-1, keepdim=True)
    return (above | (tied & (tied.cumsum(-1) <= room))) & (scores > float("-inf"))


def _as_indices(allowed: torch.Tensor) -> torch.Tensor:
    # (B, T, S) bool → (B, T, K) int32 increasing slots, -1-padded at the end, K = max kept.
    n = allowed.shape[-1]
    slots = torch.arange(n, device=allowed.device).expand_as(allowed)
    ordered = torch.where(allowed, slots, n).sort(dim=-1).values
    width = max(int(allowed.sum(-1).max()), 1)
    ordered = ordered[..., :width]
    return torch.where(ordered == n, -1, ordered).to(torch.int32)
