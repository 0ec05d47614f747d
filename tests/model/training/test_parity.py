"""Parity evaluation: exact against itself, close when sparse cannot differ, and metrics
that agree with a per-example recomputation."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from model import ModelArgs, Transformer
from model.tokenizer import Tokenizer
from model.training.examples import Example, collate
from model.training.parity import evaluate, parity
from model.training.retrieval import RetrievalConfig, retrieval_examples

RETRIEVAL = RetrievalConfig(seq_len=60, n_queries=2, min_distance=20)


def _model(top_k: int) -> Transformer:
    torch.manual_seed(0)
    return Transformer(ModelArgs(n_layers=2, moe_layers=(1,), max_seq_len=64, index_topk=top_k))


def _ragged() -> list[Example]:
    # Examples of different lengths, so that batches are padded.
    long = retrieval_examples(RETRIEVAL, 0, "heldout", 0, 3)
    shorter = RetrievalConfig(seq_len=40, n_queries=1, min_distance=10)
    short = retrieval_examples(shorter, 0, "h", 0, 2)
    return long + short


def test_dense_against_itself_is_exactly_equal() -> None:
    report = parity(_model(8), {"r": _ragged()}, modes=("dense", "dense"), batch_size=2)

    a, b = report.metrics["r"]
    assert a == b
    assert report.loss_gap == {"r": 0.0} and report.within_target
    assert "| r |" in report.markdown() and "+0.00%" in report.markdown()


def test_sparse_matches_dense_when_top_k_covers_every_key() -> None:
    report = parity(_model(64), {"r": _ragged()}, batch_size=2)

    dense, sparse = report.metrics["r"]
    assert math.isclose(dense.loss, sparse.loss, rel_tol=1e-5)
    assert abs(report.loss_gap["r"]) < 1e-5


def test_sparse_differs_from_dense_when_top_k_is_small() -> None:
    report = parity(_model(2), {"r": _ragged()}, batch_size=2)

    dense, sparse = report.metrics["r"]
    assert abs(dense.loss - sparse.loss) > 1e-4


def test_metrics_agree_with_one_example_at_a_time() -> None:
    model = _model(8).eval()
    examples = _ragged()
    losses, right, total, spans_right, spans = [], 0, 0, 0, 0
    with torch.no_grad():
        for e in examples:
            tokens = torch.tensor([e.tokens])
            logits = model(tokens, mode="sparse").logits[0]
            for t, is_target in enumerate(e.targets):
                if is_target:
                    losses.append(float(F.cross_entropy(logits[t - 1], tokens[0, t])))
                    right += int(logits[t - 1].argmax() == tokens[0, t])
                    total += 1
            for start, end in e.spans:
                spans += 1
                spans_right += all(
                    int(logits[t - 1].argmax()) == e.tokens[t] for t in range(start, end)
                )

    m = evaluate(model, examples, "sparse", batch_size=3)

    assert m.tokens == total and m.spans == spans
    assert math.isclose(m.loss, sum(losses) / total, rel_tol=1e-5)
    assert m.token_accuracy == right / total
    assert m.exact_match == spans_right / spans
    assert collate(examples, Tokenizer.pad_id).tokens.shape[0] == len(examples)
