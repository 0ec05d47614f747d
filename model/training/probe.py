"""What the indexer loss reads from a forward pass, captured by hooks on every MLA layer.

The model's forward returns logits, routes and the selected keys, not attention
probabilities, and in dense mode it never runs the indexer. `AttentionProbe` hooks each
`MLA` module and, from the layer's own input, recomputes (without gradient) the main
attention scores over the keys that layer read — every visible key in dense mode, its
selected top-k in sparse mode — and runs the indexer on a detached copy of the input, so
that the indexer is trained only by its KL and the main model never by it (seed 000, §4:
"they detach the indexer input from the computational graph"). Nothing in `model/`
changes; the cost is one more projection and indexer pass per layer.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, cast

import torch
from torch.utils.hooks import RemovableHandle

from model.block import Block
from model.mla import MLA, AttentionOutput, Projection
from model.rope import Rope
from model.training.losses import attention_target
from model.transformer import Transformer


@dataclass(frozen=True)
class LayerAttention:
    """One layer's indexer-loss inputs.

    Attributes:
        target: (B, T, T) float32, main attention over `allowed` summed over heads and
            L1-normalized; no gradient.
        index_logits: (B, T, T) float32 indexer logits, -inf where s > t; differentiable
            in the indexer's parameters only.
        allowed: (B, T, T) bool, the keys the main attention read.
    """

    target: torch.Tensor
    index_logits: torch.Tensor
    allowed: torch.Tensor


def attention_scores(attn: MLA, p: Projection) -> torch.Tensor:
    """Every head's scaled q·k, heads expanded as in `MLA.dense`. Returns (B, H, T, T)."""
    kv = attn.wkv_b(p.latent).unflatten(-1, (attn.n_heads, attn.nope + attn.v_dim))
    k_nope = kv[..., : attn.nope]
    q = torch.cat([p.q_nope, p.q_pe], dim=-1)
    k = torch.cat([k_nope, p.k_pe[:, :, None].expand(-1, -1, attn.n_heads, -1)], dim=-1)
    return torch.einsum("bthd,bshd->bhts", q.float(), k.float()) * attn.softmax_scale


def selected_mask(indices: torch.Tensor, n_keys: int) -> torch.Tensor:
    """(B, T, K) int32 selected keys, -1-padded → (B, T, n_keys) bool."""
    slots = torch.where(indices >= 0, indices, n_keys).long()
    allowed = torch.zeros(*indices.shape[:2], n_keys + 1, dtype=torch.bool, device=indices.device)
    return allowed.scatter_(-1, slots, True)[..., :n_keys]


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
            if output.indices is None:
                allowed = causal_mask(b, t, x.device)
            else:
                allowed = selected_mask(output.indices, t) & causal_mask(b, t, x.device)
            target = attention_target(attention_scores(attn, p), allowed)
        index_logits = attn.indexer.logits(attn.indexer(x, p.qr, rope))
        self.layers.append(LayerAttention(target, index_logits, allowed))
