"""GRPO with V3.2's changes on a small MoE model: the training logprobs replay the sampler's
kept sets and expert routes (they equal the logprobs recorded at sampling), advantages are
group-normalized, drifted negative sequences are masked, the KL estimate is the reweighted
k3, and a few steps move probability toward the rewarded sequence."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from envsynth.errors import ConfigError
from model import ModelArgs, Transformer
from model.generate import Generation, generate
from model.sampling import SamplingConfig
from model.training.grpo import (
    GRPOConfig,
    SampledSequence,
    advantages,
    batch_logprobs,
    grpo_loss,
    sequence_logprobs,
)

PROMPTS = [[5, 9, 14, 3, 7, 11], [2, 4, 6, 8], [13, 1, 12]]


@pytest.fixture(scope="module")
def model() -> Transformer:
    torch.manual_seed(0)
    args = ModelArgs(n_layers=2, moe_layers=(1,), max_seq_len=256, index_topk=4)
    return Transformer(args).eval()


def _sampled(model: Transformer, top_p: float = 0.8, n: int = 4) -> list[SampledSequence]:
    prompts = [p for p in PROMPTS for _ in range(n)]
    gens: list[Generation] = generate(
        model,
        prompts,
        max_tokens=12,
        stop_id=-1,
        pad_id=0,
        sampling=SamplingConfig(temperature=1.0, top_p=top_p),
        seeds=list(range(len(prompts))),
    )
    return [
        SampledSequence(
            prompt=p,
            tokens=g.token_ids,
            logprobs=g.logprobs,
            sampling_mask=g.sampling_mask,
            routing=g.routing,
            reward=float(i % 2),
            group=str(p),
        )
        for i, (p, g) in enumerate(zip(prompts, gens, strict=True))
    ]


def test_advantages_are_normalized_within_each_group() -> None:
    got = advantages([1, 0, 0, 1, 5, 3], ["a", "a", "a", "a", "b", "c"], eps=0.0)
    assert got[:4] == pytest.approx([1, -1, -1, 1]) and got[4:] == [0.0, 0.0]


def test_training_logprobs_replay_the_kept_sets_and_routes_of_sampling(model: Transformer) -> None:
    seqs = _sampled(model)
    truncated = 0
    for seq in seqs:
        got = sequence_logprobs(model, seq)
        assert got.tolist() == pytest.approx(list(seq.logprobs), abs=1e-4)
        truncated += sum(len(m) < model.args.vocab_size for m in seq.sampling_mask)
    assert truncated > 0, "top-p cut some kept sets, so the mask mattered"
    # Controls: without the recorded mask, or with other experts, the logprobs move.
    seq = next(s for s in seqs if any(len(m) < model.args.vocab_size for m in s.sampling_mask))
    everything = [list(range(model.args.vocab_size))] * len(seq.tokens)
    unmasked = sequence_logprobs(
        model, SampledSequence(**{**seq.__dict__, "sampling_mask": everything})
    )
    assert not torch.allclose(unmasked, torch.tensor(seq.logprobs), atol=1e-3)
    n_experts = model.args.n_routed_experts
    other = [[[(e + 1) % n_experts for e in layer] for layer in token] for token in seq.routing]
    rerouted = sequence_logprobs(model, SampledSequence(**{**seq.__dict__, "routing": other}))
    assert not torch.allclose(rerouted, torch.tensor(seq.logprobs), atol=1e-3)


def test_at_the_rollout_policy_the_loss_is_zero_and_steps_favour_the_rewarded(
    model: Transformer,
) -> None:
    trained = copy.deepcopy(model).train()
    seqs = [s for s in _sampled(model) if s.group == str(PROMPTS[0])]
    seqs = [SampledSequence(**{**s.__dict__, "reward": float(i == 0)}) for i, s in enumerate(seqs)]
    loss, stats = grpo_loss(trained, seqs, GRPOConfig())
    assert abs(stats.loss) < 1e-5 and stats.mean_ratio == pytest.approx(1.0, abs=1e-4)
    with torch.no_grad():
        before = [float(sequence_logprobs(trained, s).sum()) for s in seqs]
    opt = torch.optim.Adam(trained.parameters(), lr=3e-3)
    for _ in range(8):
        loss, stats = grpo_loss(trained, seqs, GRPOConfig())
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        after = [float(sequence_logprobs(trained, s).sum()) for s in seqs]
    assert after[0] > before[0]
    assert all(a < b for a, b in zip(after[1:], before[1:], strict=True))


def test_drifted_sequences_with_negative_advantage_are_masked(model: Transformer) -> None:
    seqs = [s for s in _sampled(model) if s.group == str(PROMPTS[1])][:2]
    # Sampled with logprobs 1 nat above the current policy's: log(π_old/π_θ) = 1 > δ.
    drifted = [
        SampledSequence(**{**s.__dict__, "logprobs": [x + 1.0 for x in s.logprobs], "reward": r})
        for s, r in zip(seqs, (1.0, 0.0), strict=True)
    ]
    _, stats = grpo_loss(model, drifted, GRPOConfig(offpolicy_delta=0.5))
    assert stats.masked_sequences == 1  # the negative one; the positive one still counts
    _, stats = grpo_loss(model, drifted, GRPOConfig(offpolicy_delta=2.0))
    assert stats.masked_sequences == 0


def test_the_kl_term_is_the_ratio_weighted_k3(model: Transformer) -> None:
    seq = _sampled(model)[0]
    same = copy.deepcopy(model)
    _, stats = grpo_loss(model, [seq], GRPOConfig(kl_weight=1.0), reference=same)
    assert stats.kl == pytest.approx(0.0, abs=1e-6)
    other = copy.deepcopy(model)
    with torch.no_grad():
        other.head.weight.add_(0.05 * torch.randn_like(other.head.weight))
    _, stats = grpo_loss(model, [seq], GRPOConfig(kl_weight=1.0), reference=other)
    with torch.no_grad():
        logp, ref = sequence_logprobs(model, seq), sequence_logprobs(other, seq)
        ratio = (logp - torch.tensor(seq.logprobs)).exp()
        expected = float((ratio * ((ref - logp).exp() - (ref - logp) - 1)).mean())
    assert stats.kl == pytest.approx(expected, rel=1e-4) and stats.kl > 0


def test_bad_sequences_and_a_kl_without_reference_are_refused(model: Transformer) -> None:
    seq = _sampled(model)[0]
    with pytest.raises(ConfigError, match="outside its recorded sampling mask"):
        SampledSequence(**{**seq.__dict__, "sampling_mask": [[-5]] * len(seq.tokens)})
    with pytest.raises(ConfigError, match="one of each per token"):
        SampledSequence(**{**seq.__dict__, "logprobs": list(seq.logprobs)[:-1]})
    with pytest.raises(ConfigError, match="reference model"):
        grpo_loss(model, [seq], GRPOConfig(kl_weight=0.1))
    assert math.isfinite(grpo_loss(model, [seq], GRPOConfig())[1].loss)


def test_sequences_padded_into_one_forward_come_out_as_they_would_alone(
    model: Transformer,
) -> None:
    seqs = _sampled(model, n=2)
    assert len({len(s.prompt) + len(s.tokens) for s in seqs}) > 1, "rows of several lengths"
    with torch.no_grad():
        together = batch_logprobs(model, seqs)
        for seq, got in zip(seqs, together, strict=True):
            assert torch.allclose(got, sequence_logprobs(model, seq), atol=1e-5)
    one, _ = grpo_loss(model, seqs, GRPOConfig(forward_batch=1))
    many, _ = grpo_loss(model, seqs, GRPOConfig(forward_batch=8))
    assert float(one.detach()) == pytest.approx(float(many.detach()), abs=1e-6)
