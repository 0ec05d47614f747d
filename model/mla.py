"""Multi-head latent attention with decoupled RoPE, in a dense and a DSA-sparse mode.

Queries go through a low-rank latent (wq_a → RMSNorm → wq_b); keys and values through
one KV latent c (wkv_a → RMSNorm), plus one RoPE key shared by all heads. Dense mode
expands c per head (wkv_b) and runs causal attention over every earlier token. Sparse
mode absorbs wkv_b into the query and the output, so that every head attends in the
latent space over the same selected entries [c ‖ k_pe] (MQA), which is what the sparse
kernel reads. Over the same keys both modes compute the same function.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from model.args import ModelArgs
from model.dispatch import Backend, sparse_mla
from model.errors import ModelInputError
from model.indexer import LightningIndexer
from model.norm import RMSNorm
from model.rope import Rope

AttentionMode = Literal["dense", "sparse"]


@dataclass(frozen=True)
class Projection:
    """MLA's projections of one forward call.

    Attributes:
        qr: (B, T, q_lora_rank) normalized query latent, also the indexer's input.
        q_nope: (B, T, H, qk_nope_head_dim).
        q_pe: (B, T, H, qk_rope_head_dim), rotated.
        latent: (B, T, kv_lora_rank) normalized KV latent c.
        k_pe: (B, T, qk_rope_head_dim) shared RoPE key, rotated.
    """

    qr: torch.Tensor
    q_nope: torch.Tensor
    q_pe: torch.Tensor
    latent: torch.Tensor
    k_pe: torch.Tensor


@dataclass(frozen=True)
class AttentionOutput:
    """What an MLA layer returns.

    Attributes:
        out: (B, T, d_model).
        indices: (B, T, K) int32 keys each query attended to in sparse mode, else None.
    """

    out: torch.Tensor
    indices: torch.Tensor | None


class MLA(nn.Module):
    """Multi-head latent attention with its lightning indexer."""

    def __init__(self, args: ModelArgs):
        super().__init__()
        self.n_heads = args.n_heads
        self.nope, self.rope_dim = args.qk_nope_head_dim, args.qk_rope_head_dim
        self.v_dim, self.kv_rank = args.v_head_dim, args.kv_lora_rank
        self.wq_a = nn.Linear(args.d_model, args.q_lora_rank, bias=False)
        self.q_norm = RMSNorm(args.q_lora_rank, args.norm_eps)
        self.wq_b = nn.Linear(args.q_lora_rank, self.n_heads * args.qk_head_dim, bias=False)
        self.wkv_a = nn.Linear(args.d_model, self.kv_rank + self.rope_dim, bias=False)
        self.kv_norm = RMSNorm(self.kv_rank, args.norm_eps)
        self.wkv_b = nn.Linear(self.kv_rank, self.n_heads * (self.nope + self.v_dim), bias=False)
        self.wo = nn.Linear(self.n_heads * self.v_dim, args.d_model, bias=False)
        self.indexer = LightningIndexer(args)
        self.softmax_scale = args.qk_head_dim**-0.5

    def project(self, x: torch.Tensor, rope: Rope) -> Projection:
        """Queries, KV latent and RoPE key of hidden states x (B, T, d_model)."""
        qr = self.q_norm(self.wq_a(x))
        q = self.wq_b(qr).unflatten(-1, (self.n_heads, self.nope + self.rope_dim))
        q_nope, q_pe = q.split([self.nope, self.rope_dim], dim=-1)
        latent, k_pe = self.wkv_a(x).split([self.kv_rank, self.rope_dim], dim=-1)
        return Projection(qr, q_nope, rope.apply(q_pe), self.kv_norm(latent), rope.apply(k_pe))

    def dense(self, p: Projection) -> torch.Tensor:
        """Causal attention over every earlier token, heads expanded. Returns (B, T, H, v)."""
        kv = self.wkv_b(p.latent).unflatten(-1, (self.n_heads, self.nope + self.v_dim))
        k_nope, v = kv.split([self.nope, self.v_dim], dim=-1)
        k = torch.cat([k_nope, p.k_pe[:, :, None].expand(-1, -1, self.n_heads, -1)], dim=-1)
        q = torch.cat([p.q_nope, p.q_pe], dim=-1)
        out = F.scaled_dot_product_attention(
            q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2),
            is_causal=True, scale=self.softmax_scale,
        )  # fmt: skip
        return out.transpose(1, 2)

    def _absorbed_query(self, p: Projection) -> tuple[torch.Tensor, torch.Tensor]:
        # wkv_b folded into the query (w_uk) and the output (w_uv): every head then reads
        # the same latent entries [c ‖ k_pe]. Returns the latent part of the query, w_uv.
        w = self.wkv_b.weight.view(self.n_heads, self.nope + self.v_dim, self.kv_rank)
        w_uk, w_uv = w.split([self.nope, self.v_dim], dim=1)
        return torch.einsum("bthd,hdc->bthc", p.q_nope, w_uk), w_uv

    def sparse(self, p: Projection, indices: torch.Tensor, backend: Backend) -> torch.Tensor:
        """Absorbed attention over the selected latent entries. Returns (B, T, H, v)."""
        q_latent, w_uv = self._absorbed_query(p)
        q = torch.cat([q_latent, p.q_pe], dim=-1)
        kv = torch.cat([p.latent, p.k_pe], dim=-1)
        out = sparse_mla(q, kv, indices, self.softmax_scale, self.kv_rank, backend)
        return torch.einsum("bthc,hvc->bthv", out, w_uv)

    def masked(self, p: Projection, allowed: torch.Tensor) -> torch.Tensor:
        """Absorbed attention over the entries `allowed` (B, T, S) marks. Returns (B, T, H, v).

        The same function as `sparse` over the same entries, with the selection as a mask:
        what the CPU runs. Every head reads the same entries (MQA), so the heads fold into
        the query rows of one batched product, and the latent and RoPE parts of the score
        are summed rather than concatenated: the cache is read in place, never copied per
        head or per step. Every row must allow at least one entry.
        """
        q_latent, w_uv = self._absorbed_query(p)
        b, t, h, c = q_latent.shape
        q_latent = q_latent.transpose(1, 2).reshape(b, h * t, c)
        q_pe = p.q_pe.transpose(1, 2).reshape(b, h * t, -1)
        scores = torch.baddbmm(
            torch.bmm(q_latent, p.latent.transpose(1, 2)), q_pe, p.k_pe.transpose(1, 2)
        ).view(b, h, t, -1)
        scores = (scores * self.softmax_scale).masked_fill_(~allowed[:, None], float("-inf"))
        out = torch.bmm(scores.softmax(dim=-1).view(b, h * t, -1), p.latent)
        return torch.einsum("bhtc,hvc->bthv", out.view(b, h, t, c), w_uv)

    def forward(
        self, x: torch.Tensor, rope: Rope, mode: AttentionMode = "sparse", backend: Backend = "auto"
    ) -> AttentionOutput:
        """Attend in `mode`.

        Args:
            x: (B, T, d_model) hidden states.
            rope: the RoPE tables of these T positions.
            mode: "dense" (every earlier token) or "sparse" (the indexer's top-k).
            backend: where the sparse path runs (see `model.dispatch`).
        """
        p = self.project(x, rope)
        if mode == "dense":
            heads, indices = self.dense(p), None
        elif mode == "sparse":
            indices = self.indexer.select(self.indexer(x, p.qr, rope), backend=backend)
            heads = self.sparse(p, indices, backend)
        else:
            raise ModelInputError(f"unknown attention mode {mode!r}; use 'dense' or 'sparse'")
        return AttentionOutput(self.wo(heads.flatten(2)), indices)
