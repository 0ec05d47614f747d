"""The retrieval task: the answer is really at the stated distance, and only there."""

from __future__ import annotations

import pytest

from envsynth.errors import ConfigError
from model.tokenizer import Tokenizer
from model.training.retrieval import RetrievalConfig, retrieval_item

CONFIG = RetrievalConfig(seq_len=200, n_queries=3, min_distance=120)


@pytest.mark.parametrize("index", range(5))
def test_each_answer_is_its_keys_value_at_least_min_distance_back(index: int) -> None:
    item = retrieval_item(CONFIG, 7, "train", index)
    tokens = item.example.tokens
    # The text as decoded: one BOS token, then one byte per token, so text offset = pos - 1.
    text = Tokenizer().decode(tokens[1:])
    pairs = [p for p in text.split(";") if p and not p.startswith("?")]
    queries = [p[1:] for p in text.split(";") if p.startswith("?")]
    k = CONFIG.key_len
    table = {p[:k]: p[k:] for p in pairs}

    assert len(table) == len(pairs)  # keys are distinct
    assert len(queries) == CONFIG.n_queries == len(item.queries)
    for q, written in zip(item.queries, queries, strict=True):
        key, value = written[:k], written[k:]
        assert (key, value) == (q.key, q.value) and table[key] == value
        assert len(value) == CONFIG.value_len and value.isdigit() and key.isalpha()
        source = text.index(f"{key}{value};") + 1  # the pair, before any query
        assert source == q.key_pos
        assert text[q.value_pos - 1 : q.value_pos - 1 + len(value)] == value
        assert text[q.answer_pos - 1 : q.answer_pos - 1 + len(value)] == value
        assert q.answer_pos - q.value_pos >= CONFIG.min_distance
        assert text.count(f"{key}{value};") == 2  # the pair and the query, nowhere else


def test_only_the_answers_are_targets_and_spans_cover_them() -> None:
    item = retrieval_item(CONFIG, 0, "train", 0)
    ex = item.example
    target_positions = [i for i, t in enumerate(ex.targets) if t]
    expected = sorted(q.answer_pos + j for q in item.queries for j in range(CONFIG.value_len))

    assert target_positions == expected
    assert ex.spans == tuple((q.answer_pos, q.answer_pos + CONFIG.value_len) for q in item.queries)
    assert len(ex.tokens) <= CONFIG.seq_len


def test_items_are_pure_functions_of_seed_split_and_index() -> None:
    a = retrieval_item(CONFIG, 0, "train", 3)
    assert a == retrieval_item(CONFIG, 0, "train", 3)
    assert a.example.tokens != retrieval_item(CONFIG, 0, "heldout", 3).example.tokens
    assert a.example.tokens != retrieval_item(CONFIG, 1, "train", 3).example.tokens


def test_a_near_set_keeps_every_answer_within_max_distance() -> None:
    near = RetrievalConfig(seq_len=200, n_queries=3, min_distance=8, max_distance=40)
    for i in range(5):
        for q in retrieval_item(near, 0, "heldout", i).queries:
            assert 8 <= q.distance <= 40


@pytest.mark.parametrize(
    "fields",
    [
        {"seq_len": 40, "n_queries": 8},
        {"seq_len": 100, "min_distance": 500},
        {"min_distance": 50, "max_distance": 10},
    ],
)
def test_impossible_configs_are_refused(fields: dict[str, int]) -> None:
    with pytest.raises(ConfigError):
        RetrievalConfig(**fields)
