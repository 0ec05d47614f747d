"""The recipe's losses against hand computations."""

from __future__ import annotations

import math

import torch

from model.training.losses import attention_target, indexer_kl, lm_loss


def test_attention_target_sums_heads_and_normalizes_as_by_hand() -> None:
    # Head 0 attends [.5, .25, .25], head 1 [.1, .2, .7]: scores are their logs.
    probs = torch.tensor([[0.5, 0.25, 0.25], [0.1, 0.2, 0.7]])
    scores = probs.log()[None, :, None, :]  # (B=1, H=2, T=1, S=3)
    allowed = torch.ones(1, 1, 3, dtype=torch.bool)

    target = attention_target(scores, allowed)

    torch.testing.assert_close(target[0, 0], torch.tensor([0.3, 0.225, 0.475]))


def test_attention_target_over_a_subset_renormalizes_each_head_first() -> None:
    probs = torch.tensor([[0.5, 0.25, 0.25], [0.1, 0.2, 0.7]])
    scores = probs.log()[None, :, None, :]
    allowed = torch.tensor([[[True, False, True]]])

    target = attention_target(scores, allowed)

    # Head 0 over {0, 2}: [2/3, 1/3]; head 1: [1/8, 7/8]; mean of heads.
    expected = torch.tensor([(2 / 3 + 1 / 8) / 2, 0.0, (1 / 3 + 7 / 8) / 2])
    torch.testing.assert_close(target[0, 0], expected)


def test_attention_target_is_a_distribution_on_the_allowed_keys() -> None:
    torch.manual_seed(0)
    scores = torch.randn(2, 4, 7, 7) * 5
    allowed = torch.rand(2, 7, 7) < 0.5
    allowed[..., 0] = True

    target = attention_target(scores, allowed)

    assert (target >= 0).all()
    torch.testing.assert_close(target.sum(-1), torch.ones(2, 7))
    assert (target[~allowed] == 0).all()


def test_indexer_kl_matches_the_definition_by_hand() -> None:
    p = torch.tensor([[[0.3, 0.225, 0.475]]])
    logits = torch.tensor([[[1.0, 0.0, 2.0]]])
    allowed = torch.ones(1, 1, 3, dtype=torch.bool)
    z = math.exp(1) + 1 + math.exp(2)
    q = [math.exp(1) / z, 1 / z, math.exp(2) / z]
    expected = sum(pi * math.log(pi / qi) for pi, qi in zip(p[0, 0].tolist(), q, strict=True))

    kl = indexer_kl(p, logits, allowed, torch.ones(1, 1, dtype=torch.bool))

    assert math.isclose(float(kl), expected, rel_tol=1e-5)


def test_indexer_kl_over_the_selected_set_ignores_unselected_keys() -> None:
    p = torch.tensor([[[0.4, 0.0, 0.6]]])
    allowed = torch.tensor([[[True, False, True]]])
    # The unselected logit is huge: over all keys the KL would be large, over the set it is 0.
    logits = torch.tensor([[[math.log(0.4), 50.0, math.log(0.6)]]])

    kl = indexer_kl(p, logits, allowed, torch.ones(1, 1, dtype=torch.bool))

    assert abs(float(kl)) < 1e-6


def test_indexer_kl_averages_only_the_counted_queries() -> None:
    p = torch.tensor([[[1.0, 0.0], [0.5, 0.5]]])
    logits = torch.tensor([[[0.0, 0.0], [0.0, 3.0]]])
    allowed = torch.tensor([[[True, False], [True, True]]])
    second = 0.5 * math.log(0.5 / (1 / (1 + math.exp(3)))) + 0.5 * math.log(
        0.5 / (math.exp(3) / (1 + math.exp(3)))
    )

    both = indexer_kl(p, logits, allowed, torch.tensor([[True, True]]))
    only_first = indexer_kl(p, logits, allowed, torch.tensor([[True, False]]))

    assert abs(float(only_first)) < 1e-6  # one visible key: the KL is 0
    assert math.isclose(float(both), second / 2, rel_tol=1e-5)


def test_indexer_kl_gradient_reaches_the_logits_not_the_target() -> None:
    p = torch.tensor([[[0.2, 0.8]]], requires_grad=True)
    logits = torch.zeros(1, 1, 2, requires_grad=True)

    every = torch.ones(1, 1, 2, dtype=torch.bool)
    indexer_kl(p, logits, every, torch.ones(1, 1, dtype=torch.bool)).backward()

    assert p.grad is None
    assert logits.grad is not None
    # d KL / d logit_s = softmax_s - p_s = [0.5 - 0.2, 0.5 - 0.8].
    torch.testing.assert_close(logits.grad[0, 0], torch.tensor([0.3, -0.3]))


def test_lm_loss_counts_only_target_tokens_shifted_by_one() -> None:
    v = 5
    logits = torch.zeros(1, 3, v)
    logits[0, 0, 2] = 10.0  # position 0 strongly predicts token 2
    tokens = torch.tensor([[0, 2, 4]])
    targets = torch.tensor([[False, True, False]])
    expected = -torch.log_softmax(logits[0, 0], -1)[2]

    loss = lm_loss(logits, tokens, targets)
    uniform = lm_loss(torch.zeros(1, 3, v), tokens, torch.tensor([[False, True, True]]))

    torch.testing.assert_close(loss, expected)
    assert math.isclose(float(uniform), math.log(v), rel_tol=1e-6)
