"""The transformer in dense and sparse modes: parity, causality, gradients, bad input."""

from __future__ import annotations

import pytest
import torch

from model import ModelArgs, ModelInputError, Transformer

SMALL = {"n_layers": 2, "moe_layers": (1,), "max_seq_len": 64}


def _pair(top_k: int) -> tuple[Transformer, torch.Tensor]:
    torch.manual_seed(0)
    model = Transformer(ModelArgs(index_topk=top_k, **SMALL))
    return model, torch.randint(0, model.args.vocab_size, (2, 24))


@pytest.mark.parametrize("top_k", [24, 40])
def test_sparse_equals_dense_when_every_query_sees_at_most_top_k_keys(top_k: int) -> None:
    model, tokens = _pair(top_k)
    with torch.no_grad():
        dense, sparse = model(tokens, mode="dense"), model(tokens, mode="sparse")

    torch.testing.assert_close(sparse.logits, dense.logits, atol=1e-5, rtol=1e-5)
    assert all(i is None for i in dense.indices)
    assert all(i is not None and i.shape == (2, 24, 24) for i in sparse.indices)
    assert torch.equal(sparse.routes[1], dense.routes[1]) and sparse.routes[0] is None


def test_sparse_differs_from_dense_once_queries_see_more_than_top_k_keys() -> None:
    top_k = 6
    model, tokens = _pair(top_k)
    with torch.no_grad():
        dense, sparse = model(tokens, mode="dense"), model(tokens, mode="sparse")

    # Positions < top_k see every earlier key in every layer, so they agree; later ones not.
    early, late = slice(0, top_k), slice(top_k, None)
    torch.testing.assert_close(
        sparse.logits[:, early], dense.logits[:, early], atol=1e-5, rtol=1e-5
    )
    assert (sparse.logits[:, late] - dense.logits[:, late]).abs().amax() > 1e-3
    kept = (sparse.indices[0] >= 0).sum(-1)
    assert torch.equal(kept[0], torch.arange(1, 25).clamp(max=top_k))


@pytest.mark.parametrize("mode", ["dense", "sparse"])
def test_logits_do_not_depend_on_later_tokens(mode: str) -> None:
    model, tokens = _pair(6)
    changed = tokens.clone()
    changed[:, 15] = (changed[:, 15] + 1) % model.args.vocab_size
    with torch.no_grad():
        a, b = model(tokens, mode=mode).logits, model(changed, mode=mode).logits  # type: ignore[arg-type]

    torch.testing.assert_close(a[:, :15], b[:, :15], atol=1e-6, rtol=1e-6)
    assert (a[:, 15:] - b[:, 15:]).abs().amax() > 1e-4


def test_gradients_reach_the_model_but_not_the_indexer() -> None:
    model, tokens = _pair(6)
    out = model(tokens, mode="sparse")
    torch.nn.functional.cross_entropy(
        out.logits[:, :-1].flatten(0, 1), tokens[:, 1:].flatten()
    ).backward()

    for name, p in model.named_parameters():
        if ".indexer." in name:
            assert p.grad is None, name  # selection is discrete: the indexer trains by its own loss
        else:
            assert p.grad is not None and p.grad.isfinite().all(), name


def test_replayed_routes_give_the_same_logits() -> None:
    model, tokens = _pair(6)
    with torch.no_grad():
        first = model(tokens)
        again = model(tokens, routes=first.routes)
    torch.testing.assert_close(again.logits, first.logits)


def test_bad_inputs_are_rejected() -> None:
    model, tokens = _pair(6)
    with pytest.raises(ModelInputError, match="unknown attention mode"):
        model(tokens, mode="flash")  # type: ignore[arg-type]
    with pytest.raises(ModelInputError, match="outside 1…64"):
        model(torch.zeros(1, 65, dtype=torch.long))
    with pytest.raises(ModelInputError, match="integer ids"):
        model(tokens.float())
    with pytest.raises(ModelInputError, match="dense"):
        model(tokens, routes=[torch.zeros(2, 24, 2, dtype=torch.long), None])
    with pytest.raises(ModelInputError, match="one per layer"):
        model(tokens, routes=[None])
