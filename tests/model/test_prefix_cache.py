"""Prefix reuse: generation with a `PrefixCache` is generation without one, only cheaper."""

from __future__ import annotations

import pytest
import torch

from model import ModelArgs, ModelInputError, Transformer
from model.generate import Generation, generate
from model.kv_cache import KVCache
from model.prefix_cache import MIN_REUSE, PrefixCache
from model.sampling import SamplingConfig
from model.tokenizer import Tokenizer

TOK = Tokenizer()


@pytest.fixture(scope="module")
def model() -> Transformer:
    torch.manual_seed(0)
    # top_k 8 is far below the prompt lengths, so sparse selection really is sparse.
    args = ModelArgs(n_layers=2, moe_layers=(1,), max_seq_len=256, index_topk=8)
    return Transformer(args).eval()


def _ids(n: int, seed: int) -> list[int]:
    return torch.randint(0, 256, (n,), generator=torch.Generator().manual_seed(seed)).tolist()


def _gen(model: Transformer, prompts: list[list[int]], mode: str, **kw: object) -> list[Generation]:
    return generate(
        model,
        prompts,
        max_tokens=10,
        stop_id=TOK.end_id,
        pad_id=TOK.pad_id,
        sampling=SamplingConfig(temperature=1.0),
        seeds=list(range(len(prompts))),
        mode=mode,  # type: ignore[arg-type]
        **kw,  # type: ignore[arg-type]
    )


def _same(a: list[Generation], b: list[Generation]) -> None:
    assert [g.token_ids for g in a] == [g.token_ids for g in b]
    assert [g.routing for g in a] == [g.routing for g in b]
    for x, y in zip(a, b, strict=True):
        torch.testing.assert_close(torch.tensor(x.logprobs), torch.tensor(y.logprobs))


@pytest.mark.parametrize("mode", ["dense", "sparse"])
def test_an_episodes_turns_reuse_the_previous_turn_and_sample_the_same(
    model: Transformer, mode: str
) -> None:
    system = _ids(60, 1)  # shared by both samples, as a task's system prompt is
    cache = PrefixCache()
    turn1 = [system + _ids(5, 2), system + _ids(9, 3)]
    first = _gen(model, turn1, mode, prefix_cache=cache)
    _same(first, _gen(model, turn1, mode))
    # The second row reused the first row's system prompt, prefilled earlier in the call.
    assert cache.hits == 1 and 60 <= cache.reused_tokens < len(turn1[1])
    assert len(cache) == 4  # each prompt, then each prompt with its completion
    reused = cache.reused_tokens
    turn2 = [
        p + g.token_ids + _ids(7, 4 + i) for i, (p, g) in enumerate(zip(turn1, first, strict=True))
    ]
    second = _gen(model, turn2, mode, prefix_cache=cache)
    _same(second, _gen(model, turn2, mode))
    assert cache.hits == 3
    # Everything but each row's last drawn token and the new tool result was reused.
    assert cache.reused_tokens - reused == sum(
        len(p) + len(g.token_ids) - 1 for p, g in zip(turn1, first, strict=True)
    )


@pytest.mark.parametrize("mode", ["dense", "sparse"])
def test_a_prompt_that_diverges_from_the_cache_reuses_only_the_common_prefix(
    model: Transformer, mode: str
) -> None:
    cache = PrefixCache()
    base = _ids(80, 5)
    _gen(model, [base], mode, prefix_cache=cache)
    # As when the template re-renders a completion differently: the match ends at token 50.
    changed = base[:50] + [(base[50] + 1) % 256] + base[51:] + _ids(6, 6)
    with_cache = _gen(model, [changed], mode, prefix_cache=cache)
    _same(with_cache, _gen(model, [changed], mode))
    assert cache.reused_tokens == 50


def test_short_matches_are_not_reused_and_the_oldest_entries_go_first(model: Transformer) -> None:
    # Each call keeps two entries (the prompt, the prompt and its completion).
    cache = PrefixCache(capacity=4)
    prompts = [_ids(MIN_REUSE - 1, 7) + _ids(20, 8 + i) for i in range(3)]
    for p in prompts:
        _gen(model, [p], "sparse", prefix_cache=cache)
    assert cache.hits == 0 and len(cache) == 4
    # The first call's entries were evicted: its own prompt again finds nothing to reuse.
    _gen(model, [prompts[0]], "sparse", prefix_cache=cache)
    assert cache.hits == 0
    _gen(model, [prompts[2]], "sparse", prefix_cache=cache)
    assert cache.hits == 1


def test_bad_entries_and_capacities_are_refused(model: Transformer) -> None:
    with pytest.raises(ModelInputError, match="at least one entry"):
        PrefixCache(0)
    with pytest.raises(ModelInputError, match="one slot per token"):
        PrefixCache().insert([1, 2, 3], KVCache(model, 2, 3))


def test_rows_that_stop_leave_the_batch_and_still_leave_their_entries(
    model: Transformer,
) -> None:
    # Eight rows stop at different steps on a common token, so the batch is compacted
    # several times; each row must still draw what it draws alone, and the cache entry of
    # each (taken when it left the batch) must hold its exact sequence.
    prompts = [_ids(30 + 3 * i, 20 + i) for i in range(8)]
    free = _gen(model, prompts, "sparse")
    counts: dict[int, int] = {}
    for g in free:
        for tok in set(g.token_ids[1:-1]):
            counts[tok] = counts.get(tok, 0) + 1
    stop = max(counts, key=lambda tok: counts[tok])
    assert counts[stop] >= 2  # at least two rows stop early, at their own steps

    def run(
        batch: list[list[int]], seeds: list[int], cache: PrefixCache | None
    ) -> list[Generation]:
        return generate(
            model,
            batch,
            max_tokens=10,
            stop_id=stop,
            pad_id=TOK.pad_id,
            sampling=SamplingConfig(temperature=1.0),
            seeds=seeds,
            prefix_cache=cache,
        )

    cache = PrefixCache(capacity=64)
    together = run(prompts, list(range(8)), cache)
    assert sum(g.stopped for g in together) >= 2
    for i, (prompt, g) in enumerate(zip(prompts, together, strict=True)):
        alone = run([prompt], [i], None)[0]
        assert g.token_ids == alone.token_ids and g.stopped == alone.stopped
        torch.testing.assert_close(torch.tensor(g.logprobs), torch.tensor(alone.logprobs))
    # Each sequence's entry is exact: extending it reuses all of it but the last token drawn.
    for prompt, g in zip(prompts, together, strict=True):
        reused = cache.reused_tokens
        run([prompt + g.token_ids + [1, 2]], [0], cache)
        assert cache.reused_tokens - reused == len(prompt) + len(g.token_ids) - 1
