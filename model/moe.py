"""Mixture of experts: top-k gating over routed experts, plus a shared expert.

The layer returns its routing (the expert ids of every token) so that a rollout can record
it and training can replay it ("Keep Routing"): given `routes`, the gate uses those experts
instead of its own top-k, still weighting them by its current scores.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from model.args import ModelArgs
from model.errors import ModelInputError
from model.mlp import MLP


class Gate(nn.Module):
    """Softmax scores over the routed experts; the top k, renormalized to sum to 1."""

    def __init__(self, args: ModelArgs):
        super().__init__()
        self.top_k = args.n_activated_experts
        self.weight = nn.Parameter(torch.randn(args.n_routed_experts, args.d_model) * 0.02)

    def forward(
        self, x: torch.Tensor, routes: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Route tokens.

        Args:
            x: (N, d_model) tokens.
            routes: (N, k) expert ids to use instead of the top-k, or None.

        Returns:
            weights: (N, k) in x's dtype, summing to 1 per token.
            routes: (N, k) int64 expert ids.
        """
        scores = (x.float() @ self.weight.float().t()).softmax(dim=-1)
        if routes is None:
            routes = scores.topk(self.top_k, dim=-1).indices
        weights = scores.gather(-1, routes)
        return (weights / weights.sum(-1, keepdim=True)).to(x.dtype), routes


@dataclass(frozen=True)
class MoEOutput:
    """What an MoE layer returns.

    Attributes:
        out: (B, T, d_model).
        routes: (B, T, n_activated_experts) int64 expert ids per token.
    """

    out: torch.Tensor
    routes: torch.Tensor


class MoE(nn.Module):
    """Routed experts plus a shared one every token uses."""

    def __init__(self, args: ModelArgs):
        super().__init__()
        self.n_experts, self.top_k = args.n_routed_experts, args.n_activated_experts
        self.gate = Gate(args)
        self.experts = nn.ModuleList(
            MLP(args.d_model, args.moe_inter_dim) for _ in range(self.n_experts)
        )
        self.shared = (
            MLP(args.d_model, args.n_shared_experts * args.moe_inter_dim)
            if args.n_shared_experts
            else None
        )

    def forward(self, x: torch.Tensor, routes: torch.Tensor | None = None) -> MoEOutput:
        """Mix the experts of each token.

        Args:
            x: (B, T, d_model).
            routes: (B, T, n_activated_experts) integer expert ids to replay, or None.
        """
        flat = x.flatten(0, 1)
        if routes is not None:
            routes = self._checked(routes, x)
        weights, chosen = self.gate(flat, None if routes is None else routes.flatten(0, 1))
        y = torch.zeros_like(flat)
        counts = torch.bincount(chosen.flatten(), minlength=self.n_experts).tolist()
        for e, expert in enumerate(self.experts):
            if counts[e]:
                token, slot = torch.where(chosen == e)
                y.index_add_(0, token, expert(flat[token]) * weights[token, slot, None])
        if self.shared is not None:
            y = y + self.shared(flat)
        return MoEOutput(y.view_as(x), chosen.view(*x.shape[:2], self.top_k))

    def _checked(self, routes: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        shape = (*x.shape[:2], self.top_k)
        if tuple(routes.shape) != shape or routes.is_floating_point():
            raise ModelInputError(
                f"routes must be integer expert ids of shape {shape}, got "
                f"{routes.dtype} {tuple(routes.shape)}"
            )
        if routes.numel() and not 0 <= int(routes.min()) <= int(routes.max()) < self.n_experts:
            raise ModelInputError(f"routes must be expert ids in 0…{self.n_experts - 1}")
        return routes.long()
