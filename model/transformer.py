"""The DSA transformer: embedding, blocks, final norm and output head."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from model.args import ModelArgs
from model.block import Block
from model.dispatch import Backend
from model.errors import ModelInputError
from model.mla import AttentionMode
from model.norm import RMSNorm
from model.rope import Rope, rope_tables


@dataclass(frozen=True)
class TransformerOutput:
    """What the transformer returns.

    Attributes:
        logits: (B, T, vocab_size) float32.
        routes: per layer, (B, T, n_activated_experts) int64 expert ids, or None if dense.
        indices: per layer, (B, T, K) int32 attended keys in sparse mode, else None.
    """

    logits: torch.Tensor
    routes: tuple[torch.Tensor | None, ...]
    indices: tuple[torch.Tensor | None, ...]


class Transformer(nn.Module):
    """DeepSeek-V3.2-style decoder: MLA with the lightning indexer, dense or MoE FFNs."""

    rope_cos: torch.Tensor
    rope_sin: torch.Tensor

    def __init__(self, args: ModelArgs):
        super().__init__()
        self.args = args
        self.embed = nn.Embedding(args.vocab_size, args.d_model)
        self.layers = nn.ModuleList(Block(i, args) for i in range(args.n_layers))
        self.norm = RMSNorm(args.d_model, args.norm_eps)
        self.head = nn.Linear(args.d_model, args.vocab_size, bias=False)
        cos, sin = rope_tables(args.qk_rope_head_dim, args.max_seq_len, args.rope_theta)
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)
        self.apply(_init_weights)

    def forward(
        self,
        tokens: torch.Tensor,
        mode: AttentionMode = "sparse",
        routes: Sequence[torch.Tensor | None] | None = None,
        backend: Backend = "auto",
    ) -> TransformerOutput:
        """Next-token logits of every position.

        Args:
            tokens: (B, T) int64 token ids, T ≤ max_seq_len.
            mode: "dense" (full causal attention) or "sparse" (DSA: each query attends to
                its indexer's top index_topk earlier tokens).
            routes: per layer, expert ids to replay in MoE layers (None elsewhere), as a
                previous output's `routes`; None routes by the gates.
            backend: where the sparse path runs (see `model.dispatch`).

        Raises:
            ModelInputError: on a bad token shape or length, mode or routes.
        """
        if tokens.dim() != 2 or tokens.is_floating_point():
            raise ModelInputError(f"tokens must be (B, T) integer ids, got {tuple(tokens.shape)}")
        t = tokens.shape[1]
        if not 1 <= t <= self.args.max_seq_len:
            raise ModelInputError(f"sequence length {t} is outside 1…{self.args.max_seq_len}")
        if routes is not None and len(routes) != len(self.layers):
            raise ModelInputError(f"routes has {len(routes)} entries, one per layer needed")
        rope = Rope(self.rope_cos[:t], self.rope_sin[:t])
        x = self.embed(tokens)
        all_routes, all_indices = [], []
        for i, layer in enumerate(self.layers):
            out = layer(x, rope, mode, None if routes is None else routes[i], backend)
            x = out.x
            all_routes.append(out.routes)
            all_indices.append(out.indices)
        logits = self.head(self.norm(x)).float()
        return TransformerOutput(logits, tuple(all_routes), tuple(all_indices))


def _init_weights(module: nn.Module) -> None:
    if isinstance(module, nn.Linear | nn.Embedding):
        nn.init.normal_(module.weight, std=0.02)
