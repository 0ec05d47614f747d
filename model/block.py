"""One transformer block: pre-norm MLA, then a pre-norm dense or MoE feed-forward."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from model.args import ModelArgs
from model.dispatch import Backend
from model.errors import ModelInputError
from model.mla import MLA, AttentionMode
from model.mlp import MLP
from model.moe import MoE
from model.norm import RMSNorm
from model.rope import Rope


@dataclass(frozen=True)
class BlockOutput:
    """What a block returns.

    Attributes:
        x: (B, T, d_model) the updated residual stream.
        routes: (B, T, n_activated_experts) int64 expert ids if the block is MoE, else None.
        indices: (B, T, K) int32 attended keys in sparse mode, else None.
    """

    x: torch.Tensor
    routes: torch.Tensor | None
    indices: torch.Tensor | None


class Block(nn.Module):
    """x + MLA(norm(x)), then + FFN(norm(x)); the FFN is MoE in `args.moe_layers`."""

    def __init__(self, layer_id: int, args: ModelArgs):
        super().__init__()
        self.attn_norm = RMSNorm(args.d_model, args.norm_eps)
        self.attn = MLA(args)
        self.ffn_norm = RMSNorm(args.d_model, args.norm_eps)
        self.ffn: MLP | MoE = (
            MoE(args) if layer_id in args.moe_layers else MLP(args.d_model, args.inter_dim)
        )

    def forward(
        self,
        x: torch.Tensor,
        rope: Rope,
        mode: AttentionMode = "sparse",
        routes: torch.Tensor | None = None,
        backend: Backend = "auto",
    ) -> BlockOutput:
        """Apply the block.

        Args:
            x: (B, T, d_model).
            rope: the RoPE tables of these T positions.
            mode: attention mode, "dense" or "sparse".
            routes: expert ids to replay if the block is MoE, (B, T, n_activated_experts).
            backend: where the sparse path runs (see `model.dispatch`).
        """
        attn = self.attn(self.attn_norm(x), rope, mode, backend)
        x = x + attn.out
        h = self.ffn_norm(x)
        if isinstance(self.ffn, MoE):
            moe = self.ffn(h, routes)
            return BlockOutput(x + moe.out, moe.routes, attn.indices)
        if routes is not None:
            raise ModelInputError("routes were given for a dense (non-MoE) layer; pass None")
        return BlockOutput(x + self.ffn(h), None, attn.indices)
