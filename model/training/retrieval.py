"""Long-range key→value retrieval: the task that needs sparse attention to find far tokens.

A sequence is a run of random `keyvalue;` pairs (letters, then digits) with distinct keys,
then a few queries `?keyvalue;`. Each queried value is a target; its pair lies at least
`min_distance` tokens before the answer, several times the indexer's top-k, so the answer
is reachable only if the indexer selects that far token (the seed 002 summary: "long-range retrieval
remains content-dependent rather than a fixed window"). Item i of a split is drawn from
its own seeded generator (seed, split, i), so any item regenerates alone and the train
and held-out streams never share an item.
"""

from __future__ import annotations

import random
import string
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field, model_validator

from envsynth.errors import ConfigError
from model.tokenizer import Tokenizer
from model.training.examples import Example

KEY_ALPHABET = string.ascii_letters
VALUE_ALPHABET = string.digits


class RetrievalConfig(BaseModel):
    """Shape of the retrieval sequences.

    Attributes:
        seq_len: longest sequence; as many pairs as fit before the queries are written.
        n_queries: queries at the end of each sequence.
        key_len: letters per key (keys in a sequence are distinct).
        value_len: digits per value; exact match needs all of them right.
        min_distance: fewest tokens between a queried value and its answer's first token.
        max_distance: most tokens between them (None: no limit); a small value makes the
            short-range control set.
    """

    model_config = ConfigDict(extra="forbid")

    seq_len: int = Field(448, ge=16)
    n_queries: int = Field(16, ge=1)
    key_len: int = Field(2, ge=1)
    value_len: int = Field(2, ge=1)
    min_distance: int = Field(256, ge=1)
    max_distance: int | None = Field(None, ge=1)

    @property
    def pair_len(self) -> int:
        return self.key_len + self.value_len + 1  # key value ';'

    @property
    def query_len(self) -> int:
        return self.pair_len + 1  # '?' key value ';'

    @property
    def n_pairs(self) -> int:
        return (self.seq_len - 1 - self.n_queries * self.query_len) // self.pair_len

    @model_validator(mode="after")
    def _fits(self) -> RetrievalConfig:
        if self.n_pairs < self.n_queries:
            raise ConfigError(
                f"retrieval: seq_len {self.seq_len} holds {self.n_pairs} pairs, fewer than the "
                f"{self.n_queries} queries; raise seq_len or lower n_queries"
            )
        if len(KEY_ALPHABET) ** self.key_len < self.n_pairs:
            raise ConfigError(f"retrieval: key_len {self.key_len} cannot give {self.n_pairs} keys")
        if self.max_distance is not None and self.max_distance < self.min_distance:
            raise ConfigError("retrieval: max_distance must be at least min_distance")
        # Query q picks a pair no earlier query took, so it needs q+1 eligible pairs. The
        # eligible sets only grow with q when max_distance is None; otherwise ask for more.
        need = self.n_queries if self.max_distance is not None else 1
        for q in range(self.n_queries):
            if len(_eligible(self, q)) < max(need, q + 1):
                raise ConfigError(
                    f"retrieval: query {q} has too few pairs at distance "
                    f"{self.min_distance}…{self.max_distance or 'any'}; raise seq_len, lower "
                    "n_queries or loosen the distances"
                )
        return self


@dataclass(frozen=True)
class Query:
    """Where one query's answer and its source lie (token positions).

    Attributes:
        key_pos: first token of the queried pair's key in the filler.
        value_pos: first token of the queried pair's value in the filler.
        answer_pos: first answer token (the value written after the query).
        key: the queried key.
        value: its value, the answer.
    """

    key_pos: int
    value_pos: int
    answer_pos: int
    key: str
    value: str

    @property
    def distance(self) -> int:
        return self.answer_pos - self.value_pos


@dataclass(frozen=True)
class RetrievalItem:
    """One sequence and where its answers lie."""

    example: Example
    queries: tuple[Query, ...]


def _answer_pos(config: RetrievalConfig, q: int) -> int:
    # BOS, the pairs, q earlier queries, then '?' key.
    return 1 + config.n_pairs * config.pair_len + q * config.query_len + 1 + config.key_len


def _value_pos(config: RetrievalConfig, slot: int) -> int:
    return 1 + slot * config.pair_len + config.key_len


def _eligible(config: RetrievalConfig, q: int) -> list[int]:
    answer = _answer_pos(config, q)
    hi = config.max_distance
    return [
        j
        for j in range(config.n_pairs)
        if answer - _value_pos(config, j) >= config.min_distance
        and (hi is None or answer - _value_pos(config, j) <= hi)
    ]


def retrieval_item(config: RetrievalConfig, seed: int, split: str, index: int) -> RetrievalItem:
    """The `index`-th sequence of `split` (a pure function of its arguments)."""
    rng = random.Random(f"retrieval/{seed}/{split}/{index}")
    keys: list[str] = []
    seen: set[str] = set()
    while len(keys) < config.n_pairs:
        key = "".join(rng.choice(KEY_ALPHABET) for _ in range(config.key_len))
        if key not in seen:
            seen.add(key)
            keys.append(key)
    values = ["".join(rng.choice(VALUE_ALPHABET) for _ in range(config.value_len)) for _ in keys]
    slots: list[int] = []
    for q in range(config.n_queries):
        slots.append(rng.choice([j for j in _eligible(config, q) if j not in slots]))
    text = "".join(f"{k}{v};" for k, v in zip(keys, values, strict=True))
    text += "".join(f"?{keys[j]}{values[j]};" for j in slots)
    tok = Tokenizer()
    tokens = (tok.bos_id, *tok.encode(text))
    targets = [False] * len(tokens)
    queries = []
    for q, j in enumerate(slots):
        answer = _answer_pos(config, q)
        targets[answer : answer + config.value_len] = [True] * config.value_len
        queries.append(
            Query(
                key_pos=1 + j * config.pair_len,
                value_pos=_value_pos(config, j),
                answer_pos=answer,
                key=keys[j],
                value=values[j],
            )
        )
    spans = tuple((q.answer_pos, q.answer_pos + config.value_len) for q in queries)
    example = Example(tuple(tokens), tuple(targets), spans, group="retrieval")
    return RetrievalItem(example, tuple(queries))


def retrieval_examples(
    config: RetrievalConfig, seed: int, split: str, start: int, count: int
) -> list[Example]:
    """Items start … start+count-1 of `split`, as examples."""
    return [retrieval_item(config, seed, split, i).example for i in range(start, start + count)]
