"""What the indexer loss reads from a forward pass, captured by hooks on every MLA layer.

The model's forward returns logits, routes and the selected keys, not attention
probabilities, and in dense mode it never runs the indexer. `AttentionProbe` hooks each
`MLA` module and, from the layer's own input, recomputes (without gradient) the main
attention scores over the keys that layer read — every visible key in dense mode, only
its selected top-k in sparse mode, gathered so that the sparse stage stays O(T·k) — and
runs the indexer on a detached copy of the input, so that the indexer is trained only by
its KL and the main model never by it (seed 000, §4: "they detach the indexer input from
the computational graph"). Nothing in `model/` changes; the cost is one more projection
and indexer pass per layer.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, cast

import torch
from torch.utils.hooks import RemovableHandle

from model.block import Block
from model.indexer import IndexerState
from model.mla import MLA, AttentionOutput, Projection
from model.rope import Rope
from model.training.losses import attention_target
from model.transformer import Transformer


@dataclass(frozen=True)
class LayerAttention:
    """One layer's indexer-loss inputs, over S key columns per query.

    In dense mode the columns are the positions 0…T-1 (S = T); in sparse mode they are the
    query's selected keys, column k being position `keys[b, t, k]` (S = top-k), so that the
    sparse stage never builds a T×T matrix.

    Attributes:
        target: (B, T, S) float32, main attention over `allowed` summed over heads and
            L1-normalized; no gradient.
        index_logits: (B, T, S) float32 indexer logits, -inf outside `allowed`;
            differentiable in the indexer's parameters only.
        allowed: (B, T, S) bool, the keys the main attention read.
        keys: (B, T, S) int64 key positions of the columns in sparse mode, else None.
    """

    target: torch.Tensor
    index_logits: torch.Tensor
    allowed: torch.Tensor
    keys: torch.Tensor | None = None


def attention_scores(attn: MLA, p: Projection) -> torch.Tensor:
    """Every head's scaled q·k, heads expanded as in `MLA.dense`. Returns (B, H, T, T)."""
    kv = attn.wkv_b(p.latent).unflatten(-1, (attn.n_heads, attn.nope + attn.v_dim))
    k_nope = kv[..., : attn.nope]
    q = torch.cat([p.q_nope, p.q_pe], dim=-1)
    k = torch.cat([k_nope, p.k_pe[:, :, None].expand(-1, -1, attn.n_heads, -1)], dim=-1)
    return torch.einsum("bthd,bshd->bhts", q.float(), k.float()) * attn.softmax_scale


def gather_keys(values: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
    """values (B, S, D) at keys (B, T, K) → (B, T, K, D)."""
    rows = torch.arange(values.shape[0], device=values.device)[:, None, None]
    return values[rows, keys]


def selected_scores(attn: MLA, p: Projection, keys: torch.Tensor) -> torch.Tensor:
    """Every head's scaled q·k at the selected keys only, in the absorbed form of
    `MLA.sparse` (the same scores as `attention_scores` at those keys).

    Args:
        keys: (B, T, K) int64 key positions (padding may point anywhere valid).

    Returns:
        (B, H, T, K) float32.
    """
    w = attn.wkv_b.weight.view(attn.n_heads, attn.nope + attn.v_dim, attn.kv_rank)
    q = torch.cat([torch.einsum("bthd,hdc->bthc", p.q_nope, w[:, : attn.nope]), p.q_pe], dim=-1)
    kv = gather_keys(torch.cat([p.latent, p.k_pe], dim=-1), keys)
    return torch.einsum("bthc,btkc->bhtk", q.float(), kv.float()) * attn.softmax_scale


def selected_index_logits(state: IndexerState, keys: torch.Tensor) -> torch.Tensor:
    """I(t, s) = Σ_j w(t, j)·ReLU(q(t, j)·k(s)) at the selected keys. Returns (B, T, K)."""
    k = gather_keys(state.k.float(), keys)
    scores = torch.einsum("bthd,btkd->bthk", state.q.float(), k).relu()
    return (scores * state.weights.float()[..., None]).sum(dim=2)


def causal_mask(batch: int, t: int, device: torch.device) -> torch.Tensor:
    """(batch, t, t) bool, True where key s ≤ query t."""
    return torch.ones(t, t, dtype=torch.bool, device=device).tril().expand(batch, t, t)


class AttentionProbe:
    """Context manager that records a `LayerAttention` per MLA layer of each forward.

    Usage:
        with AttentionProbe(model) as probe:
            out = model(tokens, mode="dense")
        kl = sum(indexer_kl(l.target, l.index_logits, l.allowed, mask) for l in probe.layers)
    """

    def __init__(self, model: Transformer):
        self.model = model
        self.layers: list[LayerAttention] = []
        self._handles: list[RemovableHandle] = []

    def __enter__(self) -> AttentionProbe:
        for block in cast(Iterable[Block], self.model.layers):
            self._handles.append(block.attn.register_forward_hook(self._record, with_kwargs=True))
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def _record(
        self,
        module: torch.nn.Module,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        output: AttentionOutput,
    ) -> None:
        attn = cast(MLA, module)
        x = args[0] if args else kwargs["x"]
        rope: Rope = args[1] if len(args) > 1 else kwargs["rope"]
        b, t = x.shape[:2]
        x = x.detach()
        with torch.no_grad():
            p = attn.project(x, rope)
        state = attn.indexer(x, p.qr, rope)
        if output.indices is None:
            allowed = causal_mask(b, t, x.device)
            with torch.no_grad():
                target = attention_target(attention_scores(attn, p), allowed)
            self.layers.append(LayerAttention(target, attn.indexer.logits(state), allowed))
            return
        keys = output.indices.long()
        allowed = keys >= 0
        keys = keys.clamp(min=0)
        with torch.no_grad():
            target = attention_target(selected_scores(attn, p, keys), allowed)
        logits = selected_index_logits(state, keys).masked_fill(~allowed, float("-inf"))
        self.layers.append(LayerAttention(target, logits, allowed, keys))
