"""Next-token sampling with temperature, top-k and top-p, reporting the kept token set.

GRPO's Keep Sampling Mask needs the set of tokens the sampler could have drawn at each
step, and the logprob of the drawn token under that truncated, renormalized distribution.
Temperature 0 is greedy: the kept set is the argmax alone, whose logprob is 0. Each row
draws from its own seeded generator, so a row samples the same tokens in any batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from model.errors import ModelInputError


@dataclass(frozen=True)
class SamplingConfig:
    """How to pick the next token.

    Attributes:
        temperature: logits are divided by it; 0 means greedy.
        top_p: keep the fewest most likely tokens whose probability reaches top_p (1 = all).
        top_k: keep the top_k most likely tokens (0 = all); applied before top_p.
    """

    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0

    def __post_init__(self) -> None:
        if not self.temperature >= 0:
            raise ModelInputError(f"temperature must be ≥ 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ModelInputError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.top_k < 0:
            raise ModelInputError(f"top_k must be ≥ 0 (0 keeps every token), got {self.top_k}")


@dataclass(frozen=True)
class Sample:
    """One sampling step of a batch.

    Attributes:
        tokens: (B,) int64 drawn ids.
        logprobs: (B,) float32 log-probability of each drawn id under the kept distribution.
        kept: (B, V) bool, the tokens the sampler could have drawn.
    """

    tokens: torch.Tensor
    logprobs: torch.Tensor
    kept: torch.Tensor


def kept_logprobs(logits: torch.Tensor, config: SamplingConfig) -> torch.Tensor:
    """The distribution sampled from: log_softmax of the scaled logits over the kept set.

    Args:
        logits: (B, V) float32 raw next-token logits.
        config: the sampling configuration.

    Returns:
        (B, V) float32 log-probabilities, -inf outside the kept set.
    """
    logits = logits.float()
    order = logits.argsort(dim=-1, descending=True, stable=True)
    rank = torch.empty_like(order).scatter_(
        -1, order, torch.arange(logits.shape[-1], device=logits.device).expand_as(order)
    )
    if config.temperature == 0:
        return torch.where(rank == 0, 0.0, float("-inf"))
    scaled = logits / config.temperature
    if config.top_k:
        scaled = scaled.masked_fill(rank >= config.top_k, float("-inf"))
    if config.top_p < 1:
        probs = scaled.softmax(-1).gather(-1, order)
        mass_before = probs.cumsum(-1) - probs
        drop_sorted = mass_before >= config.top_p
        drop = torch.zeros_like(drop_sorted).scatter_(-1, order, drop_sorted)
        scaled = scaled.masked_fill(drop, float("-inf"))
    return scaled.log_softmax(-1)


def sample(
    logits: torch.Tensor, config: SamplingConfig, generators: Sequence[torch.Generator]
) -> Sample:
    """Draw one token per row.

    Args:
        logits: (B, V) float32 raw next-token logits.
        config: the sampling configuration.
        generators: one seeded generator per row, on logits' device.

    Returns:
        The drawn tokens, their logprobs and the kept sets.
    """
    if len(generators) != logits.shape[0]:
        raise ModelInputError(f"{len(generators)} generators for {logits.shape[0]} rows")
    logp = kept_logprobs(logits, config)
    if config.temperature == 0:
        tokens = logp.argmax(-1)
    else:
        # Gumbel-max with exponential noise: argmax(log p − log E) is a draw from p.
        noise = torch.stack(
            [
                torch.empty_like(row).exponential_(generator=g)
                for row, g in zip(logp, generators, strict=True)
            ]
        )
        tokens = (logp - noise.clamp_min(torch.finfo(noise.dtype).tiny).log()).argmax(-1)
    chosen = logp.gather(-1, tokens[:, None])[:, 0]
    return Sample(tokens, chosen, logp > float("-inf"))
