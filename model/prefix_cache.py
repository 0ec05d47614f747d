"""Reuse of cached prefixes across calls: an agent's next turn re-sends its whole history.

Every turn of an episode is a new request whose prompt starts with the previous prompt and
completion, and every sample of a task starts with the same system prompt and tool schemas
(1.4K–4.8K tokens here). Without reuse each turn prefills all of it again. `PrefixCache`
keeps a one-row `KVCache` per prompt as soon as it is prefilled (so the next rows of the same
batch find it) and per finished sequence; a new prompt takes the entry sharing its longest
common prefix and prefills only the rest. Entries for a position
depend only on the tokens up to it (causal attention, per-row RoPE positions), so any
common prefix is exact, even when the chat template re-renders a completion differently
from how it was sampled: the match just ends there.

Rows are prefilled one at a time on their own caches, then merged right-aligned (left
padding) into the batch cache that decoding steps together.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from model.errors import ModelInputError
from model.kv_cache import KVCache
from model.transformer import Transformer

# A shorter match saves less than the lookup and the copy cost.
MIN_REUSE = 16


@dataclass
class _Entry:
    tokens: np.ndarray  # the ids whose entries `cache` holds, in order
    cache: KVCache  # one row, exactly len(tokens) slots, all real


def row_cache(model: Transformer, capacity: int, source: KVCache | None, keep: int) -> KVCache:
    """A one-row cache of `capacity` slots holding the first `keep` entries of `source`."""
    cache = KVCache(model, 1, capacity)
    if source is not None and keep:
        for mine, theirs in zip(cache.layers, source.layers, strict=True):
            mine.latent[:, :keep] = theirs.latent[:, :keep]
            mine.k_pe[:, :keep] = theirs.k_pe[:, :keep]
            mine.index_k[:, :keep] = theirs.index_k[:, :keep]
        cache.valid[:, :keep] = source.valid[:, :keep]
        cache.positions[:, :keep] = source.positions[:, :keep]
        cache.length = keep
    return cache


def merge_right_aligned(model: Transformer, rows: Sequence[KVCache], capacity: int) -> KVCache:
    """One batch cache of `rows` (one-row caches of real slots), each ending at the same slot.

    Row i's entries land in the last `rows[i].length` slots before the common end; the
    slots in front of them are left padding, never visible to real tokens.
    """
    width = max(r.length for r in rows)
    if capacity < width:
        raise ModelInputError(f"capacity {capacity} is below the longest row ({width} slots)")
    batch = KVCache(model, len(rows), capacity)
    for i, row in enumerate(rows):
        a, n = width - row.length, row.length
        for mine, theirs in zip(batch.layers, row.layers, strict=True):
            mine.latent[i, a:width] = theirs.latent[0, :n]
            mine.k_pe[i, a:width] = theirs.k_pe[0, :n]
            mine.index_k[i, a:width] = theirs.index_k[0, :n]
        batch.valid[i, a:width] = row.valid[0, :n]
        batch.positions[i, a:width] = row.positions[0, :n]
    batch.length = width
    return batch


class PrefixCache:
    """The caches of the last `capacity` prompts and sequences, looked up by common prefix.

    Args:
        capacity: sequences kept (least recently used first out). One entry holds
            n_layers × tokens × (kv_lora_rank + qk_rope_head_dim + index_head_dim) floats:
            6.4 MB for 5K tokens of the bundled model.
    """

    def __init__(self, capacity: int = 64):
        if capacity < 1:
            raise ModelInputError(f"a prefix cache holds at least one entry, got {capacity}")
        self.capacity = capacity
        self._entries: OrderedDict[int, _Entry] = OrderedDict()
        self._next = 0
        self.hits = self.reused_tokens = self.prefilled_tokens = 0

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        """Forget every entry: after the weights change, their keys and values are stale."""
        self._entries.clear()

    def lookup(self, prompt: Sequence[int]) -> tuple[KVCache | None, int]:
        """The entry sharing the longest prefix with `prompt`, and how many slots to reuse.

        At most len(prompt) - 1 slots are reused: the last prompt token is always fed, since
        its logits draw the first new token.
        """
        ids = np.asarray(prompt, dtype=np.int64)
        best, best_len = None, 0
        for key, entry in self._entries.items():
            n = min(len(entry.tokens), len(ids) - 1)
            if n <= best_len:
                continue
            differ = np.flatnonzero(entry.tokens[:n] != ids[:n])
            common = int(differ[0]) if differ.size else n
            if common > best_len:
                best, best_len = key, common
        if best is None or best_len < MIN_REUSE:
            self.prefilled_tokens += len(ids)
            return None, 0
        self._entries.move_to_end(best)
        self.hits += 1
        self.reused_tokens += best_len
        self.prefilled_tokens += len(ids) - best_len
        return self._entries[best].cache, best_len

    def insert(self, tokens: Sequence[int], cache: KVCache) -> None:
        """Keep `cache` (one row, one real slot per token of `tokens`)."""
        if cache.batch != 1 or cache.length != len(tokens):
            raise ModelInputError(
                f"a prefix entry is one row with one slot per token; got batch {cache.batch}, "
                f"{cache.length} slots for {len(tokens)} tokens"
            )
        self._entries[self._next] = _Entry(np.asarray(tokens, dtype=np.int64), cache)
        self._next += 1
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)
