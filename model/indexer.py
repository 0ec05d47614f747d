"""The lightning indexer: which earlier tokens each query should attend to.

I(t,s) = Σ_j w(t,j) · ReLU(q(t,j) · k(s)): per-head queries from the query latent, one
key per token shared by all heads, per-head weights from the hidden state, scaled as in
DeepSeek-V3.2-Exp by H_i^-1/2 and the softmax scale D_i^-1/2. The reference also applies
a Hadamard rotation to q and k before FP8 quantization; a rotation leaves q·k unchanged,
and we do not quantize, so it is left out.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from kernels import indexer_logits_reference
from model.args import ModelArgs
from model.dispatch import Backend, select_topk
from model.rope import Rope


@dataclass(frozen=True)
class IndexerState:
    """The indexer's projections of one forward call.

    Attributes:
        q: (B, T, H_i, D_i) queries, RoPE on the first qk_rope_head_dim columns.
        weights: (B, T, H_i) float32 per-head weights, scaled.
        k: (B, T, D_i) keys, one per token, RoPE on the first qk_rope_head_dim columns.
    """

    q: torch.Tensor
    weights: torch.Tensor
    k: torch.Tensor


class LightningIndexer(nn.Module):
    """Scores and selects keys for sparse attention."""

    def __init__(self, args: ModelArgs):
        super().__init__()
        self.n_heads, self.head_dim = args.index_n_heads, args.index_head_dim
        self.rope_dim = args.qk_rope_head_dim
        self.top_k = args.index_topk
        self.wq_b = nn.Linear(args.q_lora_rank, self.n_heads * self.head_dim, bias=False)
        self.wk = nn.Linear(args.d_model, self.head_dim, bias=False)
        self.k_norm = nn.LayerNorm(self.head_dim)
        self.weights_proj = nn.Linear(args.d_model, self.n_heads, bias=False)
        self.weight_scale = self.n_heads**-0.5 * self.head_dim**-0.5

    def forward(self, x: torch.Tensor, qr: torch.Tensor, rope: Rope) -> IndexerState:
        """Project the indexer's queries, keys and weights.

        Args:
            x: (B, T, d_model) hidden states.
            qr: (B, T, q_lora_rank) the normalized query latent of MLA.
            rope: the RoPE tables of these T positions.
        """
        q = self.wq_b(qr).unflatten(-1, (self.n_heads, self.head_dim))
        k = self.k_norm(self.wk(x))
        r = self.rope_dim
        q = torch.cat([rope.apply(q[..., :r]), q[..., r:]], dim=-1)
        k = torch.cat([rope.apply(k[..., :r]), k[..., r:]], dim=-1)
        weights = self.weights_proj(x).float() * self.weight_scale
        return IndexerState(q=q, weights=weights, k=k)

    def logits(self, state: IndexerState, start_pos: int = 0) -> torch.Tensor:
        """I(t,s) for all visible pairs, differentiable (the dense warm-up's input).

        Returns:
            (B, T, start_pos+T) float32, -inf where s > start_pos + t.
        """
        return indexer_logits_reference(state.q, state.weights, state.k, start_pos)

    def select(
        self, state: IndexerState, start_pos: int = 0, backend: Backend = "auto"
    ) -> torch.Tensor:
        """The min(top_k, p+1) best keys of each query at position p.

        Returns:
            (B, T, min(top_k, start_pos+T)) int32 key positions, increasing, -1-padded.
        """
        return select_topk(state.q, state.weights, state.k, self.top_k, start_pos, backend)
