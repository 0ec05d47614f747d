"""Sampling: kept sets and logprobs against hand computations, greedy, seeded draws."""

from __future__ import annotations

import math

import pytest
import torch

from model import ModelInputError
from model.sampling import SamplingConfig, kept_logprobs, sample

# Probabilities at temperature 1, deliberately not in sorted order of their ids.
PROBS = {3: 0.4, 0: 0.3, 4: 0.15, 1: 0.1, 2: 0.05}
LOGITS = torch.tensor([[math.log(PROBS[i]) for i in range(5)]])


def _kept(config: SamplingConfig) -> set[int]:
    return set(torch.nonzero(kept_logprobs(LOGITS, config)[0] > -math.inf)[:, 0].tolist())


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        (SamplingConfig(), {0, 1, 2, 3, 4}),
        (SamplingConfig(top_k=2), {3, 0}),
        (SamplingConfig(top_p=0.5), {3, 0}),  # 0.4 before id 0 is below 0.5
        (SamplingConfig(top_p=0.75), {3, 0, 4}),  # 0.7 before id 4; 0.85 before id 1
        (SamplingConfig(top_p=0.45), {3, 0}),
        # Top-k first: within {3, 0, 4} id 3 has 0.4/0.85 ≈ 0.47 ≥ 0.45, so id 0 is cut.
        (SamplingConfig(top_k=3, top_p=0.45), {3}),
        (SamplingConfig(top_p=0.01), {3}),
        (SamplingConfig(temperature=0), {3}),
    ],
)
def test_kept_set_matches_a_hand_computation(config: SamplingConfig, expected: set[int]) -> None:
    assert _kept(config) == expected


def test_logprobs_are_the_scaled_distribution_renormalized_over_the_kept_set() -> None:
    config = SamplingConfig(temperature=2.0, top_k=3)
    logp = kept_logprobs(LOGITS, config)[0]
    # p^(1/T) over the kept ids {3, 0, 4}, renormalized.
    weights = {i: PROBS[i] ** 0.5 for i in (3, 0, 4)}
    total = sum(weights.values())
    for i in range(5):
        expected = math.log(weights[i] / total) if i in weights else -math.inf
        assert logp[i].item() == pytest.approx(expected, abs=1e-6)


def test_drawn_tokens_report_the_logprob_of_their_id_and_their_kept_set() -> None:
    config = SamplingConfig(temperature=0.7, top_p=0.9)
    logits = torch.randn(6, 40, generator=torch.Generator().manual_seed(1))
    gens = [torch.Generator().manual_seed(i) for i in range(6)]
    drawn = sample(logits, config, gens)
    reference = (logits / 0.7).masked_fill(~drawn.kept, -math.inf).log_softmax(-1)
    torch.testing.assert_close(drawn.logprobs, reference.gather(-1, drawn.tokens[:, None])[:, 0])
    assert drawn.kept.gather(-1, drawn.tokens[:, None]).all()
    torch.testing.assert_close(drawn.kept, kept_logprobs(logits, config) > -math.inf)


def test_greedy_and_top_k_1_pick_the_argmax_with_logprob_0() -> None:
    logits = torch.randn(4, 30, generator=torch.Generator().manual_seed(2))
    for config in (SamplingConfig(temperature=0), SamplingConfig(temperature=1.5, top_k=1)):
        drawn = sample(logits, config, [torch.Generator().manual_seed(i) for i in range(4)])
        assert torch.equal(drawn.tokens, logits.argmax(-1))
        assert torch.equal(drawn.logprobs, torch.zeros(4))
        assert torch.equal(drawn.kept.sum(-1), torch.ones(4, dtype=torch.long))


def test_draws_follow_the_distribution_and_a_row_ignores_its_neighbours() -> None:
    gen = torch.Generator().manual_seed(3)
    counts = torch.zeros(5)
    for _ in range(3000):
        counts[sample(LOGITS, SamplingConfig(), [gen]).tokens[0]] += 1
    expected = torch.tensor([PROBS[i] for i in range(5)])
    assert (counts / 3000 - expected).abs().max() < 0.03

    batch = torch.cat([torch.randn(1, 5), LOGITS, torch.randn(1, 5)])
    seeds = [7, 8, 9]
    together = sample(batch, SamplingConfig(), [torch.Generator().manual_seed(s) for s in seeds])
    alone = sample(LOGITS, SamplingConfig(), [torch.Generator().manual_seed(8)])
    assert together.tokens[1] == alone.tokens[0]


@pytest.mark.parametrize(
    "bad", [{"temperature": -0.1}, {"top_p": 0.0}, {"top_p": 1.5}, {"top_k": -1}]
)
def test_bad_configs_are_refused(bad: dict[str, float]) -> None:
    with pytest.raises(ModelInputError):
        SamplingConfig(**bad)  # type: ignore[arg-type]


def test_one_generator_per_row_is_required() -> None:
    with pytest.raises(ModelInputError, match="generators"):
        sample(LOGITS, SamplingConfig(), [])
