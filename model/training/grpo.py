"""GRPO with DeepSeek-V3.2's changes, over sequences the policy sampled.

For a group of G sequences sampled for one prompt, with rewards R_i, the advantage keeps
GRPO's normalization, Â_i = (R_i − mean R) / (std R + eps), shared by every token of o_i.
The objective, maximized, is

    J = 1/G Σ_i M_i · 1/|o_i| Σ_t [ min(ρ_t Â_i, clip(ρ_t, 1 − ε, 1 + ε) Â_i) − β · KL_t ]

with these changes from the original (seed 003, "GRPO Updates"):

- **Keep Sampling Mask**: π_θ, π_old and π_ref of a token are taken over the token set the
  sampler kept (top-p / top-k), renormalized, so training sees the action space sampling
  had. ρ_t = π_θ(o_t) / π_old(o_t), with π_old the logprob recorded at sampling.
- **Keep Routing**: the forward replays the expert ids the rollout used for each sampled
  token (`Transformer(routes=…)`), so the update is for the experts that produced it.
- **Unbiased KL estimate**: the k3 estimator is reweighted by the same ratio,
  KL_t = ρ_t · (π_ref/π_θ − log(π_ref/π_θ) − 1), since the tokens come from π_old.
- **Off-policy sequence masking**: M_i = 0 when Â_i < 0 and the sequence has drifted,
  1/|o_i| Σ_t log(π_old/π_θ) > δ; else 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from pydantic import BaseModel, ConfigDict, Field

from envsynth.errors import ConfigError
from model.mla import AttentionMode
from model.transformer import Transformer


class GRPOConfig(BaseModel):
    """The objective's constants.

    Attributes:
        clip_eps: ε of the clipped ratio.
        kl_weight: β; zero drops the KL term (and the reference model).
        offpolicy_delta: δ of off-policy sequence masking.
        temperature: the sampling temperature the logprobs were recorded at.
        adv_eps: added to the group's reward std.
        forward_batch: sequences per forward pass (right-padded; see `batch_logprobs`).
    """

    model_config = ConfigDict(extra="forbid")

    clip_eps: float = Field(0.2, gt=0)
    kl_weight: float = Field(0.0, ge=0)
    offpolicy_delta: float = Field(0.5, gt=0)
    temperature: float = Field(1.0, gt=0)
    adv_eps: float = Field(1e-6, gt=0)
    # One sequence per forward: on this CPU, padded batches of 4 and 8 were 0.64× and 0.46×
    # as fast (`envsynth bench grpo`); a GPU may well prefer batches.
    forward_batch: int = Field(1, ge=1)


@dataclass(frozen=True)
class SampledSequence:
    """One sampled completion and what its rollout recorded.

    Attributes:
        prompt: the prompt's token ids.
        tokens: the sampled token ids.
        logprobs: per token, its logprob under the kept distribution at sampling (π_old).
        sampling_mask: per token, the ids the sampler kept.
        routing: per token, per MoE layer in layer order, the expert ids it used (empty
            lists for a model without MoE).
        reward: the sequence's reward.
        group: the prompt (task) it was sampled for; advantages are relative within it.
    """

    prompt: Sequence[int]
    tokens: Sequence[int]
    logprobs: Sequence[float]
    sampling_mask: Sequence[Sequence[int]]
    routing: Sequence[Sequence[Sequence[int]]]
    reward: float
    group: str

    def __post_init__(self) -> None:
        n = len(self.tokens)
        if not self.prompt or not n:
            raise ConfigError("a sampled sequence needs a prompt and at least one token")
        if not len(self.logprobs) == len(self.sampling_mask) == len(self.routing) == n:
            raise ConfigError(
                f"{n} tokens but {len(self.logprobs)} logprobs, {len(self.sampling_mask)} "
                f"masks and {len(self.routing)} routes: one of each per token"
            )
        if any(t not in m for t, m in zip(self.tokens, self.sampling_mask, strict=True)):
            raise ConfigError("a sampled token is outside its recorded sampling mask")


@dataclass(frozen=True)
class GRPOStats:
    """What one loss evaluation saw."""

    loss: float
    mean_ratio: float
    clipped_fraction: float
    kl: float
    masked_sequences: int


def advantages(rewards: Sequence[float], groups: Sequence[str], eps: float = 1e-6) -> list[float]:
    """GRPO's group-normalized advantages: (R − group mean) / (group std + eps).

    A group whose rewards are all alike, a single sequence included, gets 0.
    """
    out = [0.0] * len(rewards)
    for g in set(groups):
        idx = [i for i, x in enumerate(groups) if x == g]
        r = torch.tensor([rewards[i] for i in idx], dtype=torch.float64)
        std = r.std(unbiased=False)
        if float(std) == 0.0:
            continue  # all alike (or alone): no signal, advantage 0
        for i, a in zip(idx, ((r - r.mean()) / (std + eps)).tolist(), strict=True):
            out[i] = a
    return out


def sequence_logprobs(
    model: Transformer,
    seq: SampledSequence,
    temperature: float = 1.0,
    mode: AttentionMode = "sparse",
) -> torch.Tensor:
    """(n,) logprobs of the sampled tokens under `model`, over each token's kept set.

    The routes of the positions that predicted the sampled tokens are the recorded ones
    (Keep Routing); the prompt's earlier positions route by the gates, as at sampling.
    """
    return batch_logprobs(model, [seq], temperature, mode)[0]


def batch_logprobs(
    model: Transformer,
    seqs: Sequence[SampledSequence],
    temperature: float = 1.0,
    mode: AttentionMode = "sparse",
) -> list[torch.Tensor]:
    """`sequence_logprobs` of several sequences in one forward, right-padded.

    Padding sits after every real position, so causal attention never lets it in, and each
    token's expert choice is its own: the rows come out as they would alone.
    """
    device = model.embed.weight.device
    rows = [[*s.prompt, *s.tokens[:-1]] for s in seqs]
    ids = torch.zeros(len(rows), max(map(len, rows)), dtype=torch.long)
    for b, row in enumerate(rows):
        ids[b, : len(row)] = torch.tensor(row)
    ids = ids.to(device)
    firsts = [len(s.prompt) - 1 for s in seqs]  # the positions that drew the first tokens
    routes: list[torch.Tensor | None] | None = None
    if any(seqs[0].routing[0]):
        with torch.no_grad():
            gated = model(ids, mode=mode).routes
        routes, moe_index = [], 0
        for layer_routes in gated:
            if layer_routes is None:
                routes.append(None)
                continue
            replay = layer_routes.clone()
            for b, (seq, first) in enumerate(zip(seqs, firsts, strict=True)):
                recorded = torch.tensor([r[moe_index] for r in seq.routing], device=device)
                replay[b, first : first + len(seq.tokens)] = recorded
            routes.append(replay)
            moe_index += 1
    logits = model(ids, mode=mode, routes=routes).logits.float() / temperature
    out = []
    for b, (seq, first) in enumerate(zip(seqs, firsts, strict=True)):
        row = logits[b, first : first + len(seq.tokens)]
        kept = torch.zeros_like(row, dtype=torch.bool)
        for t, mask in enumerate(seq.sampling_mask):
            kept[t, list(mask)] = True
        logp = row.masked_fill(~kept, float("-inf")).log_softmax(-1)
        out.append(logp.gather(-1, torch.tensor(seq.tokens, device=device)[:, None])[:, 0])
    return out


def grpo_loss(
    model: Transformer,
    batch: Sequence[SampledSequence],
    config: GRPOConfig,
    reference: Transformer | None = None,
    mode: AttentionMode = "sparse",
) -> tuple[torch.Tensor, GRPOStats]:
    """The negated objective over `batch` (minimize it), and what it saw.

    Raises:
        ConfigError: a KL weight without a reference model.
    """
    if config.kl_weight > 0 and reference is None:
        raise ConfigError("kl_weight > 0 needs the reference model")
    adv = advantages([s.reward for s in batch], [s.group for s in batch], config.adv_eps)
    chunks = [
        batch[i : i + config.forward_batch] for i in range(0, len(batch), config.forward_batch)
    ]
    logps = [lp for c in chunks for lp in batch_logprobs(model, c, config.temperature, mode)]
    refs: list[torch.Tensor] = []
    if config.kl_weight > 0:
        assert reference is not None
        with torch.no_grad():
            refs = [
                lp for c in chunks for lp in batch_logprobs(reference, c, config.temperature, mode)
            ]
    terms, ratios, clipped, kls, masked = [], [], [], [], 0
    for i, (seq, a, logp) in enumerate(zip(batch, adv, logps, strict=True)):
        old = torch.tensor(seq.logprobs, dtype=logp.dtype, device=logp.device)
        ratio = (logp - old).exp()
        if a < 0 and float((old - logp.detach()).mean()) > config.offpolicy_delta:
            masked += 1
            continue
        surrogate = torch.minimum(
            ratio * a, ratio.clamp(1 - config.clip_eps, 1 + config.clip_eps) * a
        )
        term = surrogate
        if refs:
            log_ref_over = refs[i] - logp
            # The ratio is not detached: its gradient is what makes the estimate unbiased.
            kl = ratio * (log_ref_over.exp() - log_ref_over - 1)
            term = term - config.kl_weight * kl
            kls.append(float(kl.detach().mean()))
        terms.append(term.mean())
        ratios.append(float(ratio.detach().mean()))
        clipped.append(float(((ratio.detach() - 1).abs() > config.clip_eps).float().mean()))
    if terms:
        loss = -torch.stack(terms).sum() / len(batch)
    else:
        loss = next(model.parameters()).sum() * 0.0  # every sequence masked: no update
    stats = GRPOStats(
        loss=float(loss.detach()),
        mean_ratio=sum(ratios) / max(len(ratios), 1),
        clipped_fraction=sum(clipped) / max(len(clipped), 1),
        kl=sum(kls) / max(len(kls), 1),
        masked_sequences=masked,
    )
    return loss, stats
