"""The losses of the DSA recipe: masked next-token cross-entropy and the indexer's KL.

The indexer loss follows DeepSeek-V3.2's continued pre-training (seed 000, §4 "Stage A:
Dense Warm-up" and "Stage B: Sparse Training"; seed 001, "Optimizer and schedule notes"):
the target is the main attention distribution summed over heads and L1-normalized per
query, the indexer is trained towards it by KL(target ‖ softmax(indexer logits)), and in
the sparse stage both distributions are taken over the selected top-k set only. The
target carries no gradient, so the KL never trains the main model.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def lm_loss(logits: torch.Tensor, tokens: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of the target tokens, each predicted from the position before it.

    Args:
        logits: (B, T, V) float; position t predicts token t+1.
        tokens: (B, T) int64.
        targets: (B, T) bool; token t counts if targets[b, t] (targets[:, 0] is ignored).

    Returns:
        Scalar; 0 when no token is a target.
    """
    ce = F.cross_entropy(
        logits[:, :-1].flatten(0, 1).float(), tokens[:, 1:].flatten(), reduction="none"
    )
    mask = targets[:, 1:].flatten().float()
    return (ce * mask).sum() / mask.sum().clamp(min=1.0)


def attention_target(scores: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
    """The indexer's target: attention over the allowed keys, summed over heads, L1-normalized.

    Args:
        scores: (B, H, T, S) float attention logits of the main attention (scaled q·k).
        allowed: (B, T, S) bool, the keys the main attention reads (every visible key in
            dense mode, the selected top-k in sparse mode); at least one per query.

    Returns:
        (B, T, S) float32: non-negative, each row summing to 1, zero outside `allowed`.
    """
    probs = scores.float().masked_fill(~allowed[:, None], float("-inf")).softmax(dim=-1)
    summed = probs.sum(dim=1)
    return summed / summed.sum(dim=-1, keepdim=True)


def indexer_kl(
    target: torch.Tensor,
    index_logits: torch.Tensor,
    allowed: torch.Tensor,
    query_mask: torch.Tensor,
) -> torch.Tensor:
    """Mean over queries of KL(target ‖ softmax of the indexer logits over `allowed`).

    Args:
        target: (B, T, S) `attention_target`, no gradient.
        index_logits: (B, T, S) float32 indexer logits I(t, s).
        allowed: (B, T, S) bool, the keys both distributions range over.
        query_mask: (B, T) bool, the queries that count (real tokens, not padding).

    Returns:
        Scalar; 0 when no query counts.
    """
    log_q = index_logits.float().masked_fill(~allowed, float("-inf")).log_softmax(dim=-1)
    log_q = log_q.masked_fill(~allowed, 0.0)  # p is 0 there: keep 0·(-inf) out of the sum
    p = target.detach().masked_fill(~allowed, 0.0)
    per_query = (torch.xlogy(p, p) - p * log_q).sum(dim=-1)
    mask = query_mask.float()
    return (per_query * mask).sum() / mask.sum().clamp(min=1.0)
