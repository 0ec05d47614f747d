"""Batched generation from the KV cache, with what GRPO needs recorded per token.

Prompts are left-padded into one batch and prefilled in one cached step; each decoding
step then feeds one token per row. Per generated token we keep its id, its logprob under
the kept distribution, the kept set (Keep Sampling Mask) and the MoE routing of the
forward step that produced it (Keep Routing): expert ids per MoE layer, read at the
position before the token, which is where the trainer's forward pass predicts it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from model.dispatch import Backend
from model.errors import ModelInputError
from model.kv_cache import KVCache, StepOutput, forward_cached
from model.mla import AttentionMode
from model.prefix_cache import PrefixCache, merge_right_aligned, row_cache
from model.sampling import Sample, SamplingConfig, sample
from model.tool_grammar import TurnConstraint
from model.transformer import Transformer


@dataclass(frozen=True)
class Generation:
    """One sequence's completion.

    Attributes:
        token_ids: generated ids, the stop id included when it was drawn.
        logprobs: per token, its log-probability under the kept distribution.
        sampling_mask: per token, the ids the sampler could have drawn, increasing.
        routing: per token, per MoE layer (in layer order), the expert ids it used.
        stopped: True if it ended on the stop id, False if it reached max_tokens.
    """

    token_ids: list[int]
    logprobs: list[float]
    sampling_mask: list[list[int]]
    routing: list[list[list[int]]]
    stopped: bool


@torch.no_grad()
def generate(
    model: Transformer,
    prompts: Sequence[Sequence[int]],
    *,
    max_tokens: int,
    stop_id: int,
    pad_id: int,
    sampling: SamplingConfig | None = None,
    seeds: Sequence[int] | None = None,
    mode: AttentionMode = "sparse",
    backend: Backend = "auto",
    prefix_cache: PrefixCache | None = None,
    constraints: Sequence[TurnConstraint | None] | None = None,
) -> list[Generation]:
    """Continue every prompt until it draws `stop_id` or has `max_tokens` tokens.

    Args:
        model: the transformer, in eval mode.
        prompts: token ids per sequence, each non-empty.
        max_tokens: most tokens to generate per sequence, ≥ 1.
        stop_id: the id that ends a sequence (`Tokenizer.end_id`).
        pad_id: the id fed at left padding and after a sequence stopped (never attended).
        sampling: temperature / top-p / top-k; default plain sampling at temperature 1.
        seeds: one seed per prompt for its generator; default 0, 1, 2, ….
        mode: "dense" or "sparse" attention.
        backend: where the sparse attention runs (see `model.dispatch`).
        prefix_cache: reuse its entries for the prompts' common prefixes, and keep each
            prompt and each finished sequence in it (see `model.prefix_cache`); None
            prefills each prompt whole, as one batch.
        constraints: per prompt, a grammar its tokens must follow (guided decoding, see
            `model.tool_grammar`) or None; each is advanced by the row's drawn tokens.

    Raises:
        ModelInputError: on an empty prompt, bad max_tokens, seeds or constraints, or when
            the longest prompt plus max_tokens exceeds the model's max_seq_len.
    """
    sampling = sampling or SamplingConfig()
    n = len(prompts)
    seeds = list(range(n)) if seeds is None else list(seeds)
    guides = [None] * n if constraints is None else list(constraints)
    _check(model, prompts, max_tokens, seeds)
    if len(guides) != n:
        raise ModelInputError(f"{len(guides)} constraints for {n} prompts; give one (or None) each")
    device = model.embed.weight.device
    width = max(len(p) for p in prompts)
    if prefix_cache is None:
        tokens, valid = _left_padded(prompts, pad_id, device)
        cache = KVCache(model, n, width + max_tokens - 1)
        step = forward_cached(model, tokens, cache, valid, mode, backend)
    else:
        cache, step = _prefill_reusing(model, prompts, prefix_cache, max_tokens, mode, backend)
    generators = [torch.Generator(device=device).manual_seed(s) for s in seeds]
    out = [_Draft() for _ in range(n)]
    live = list(range(n))  # the prompt index of each row still in the batch

    def keep(rows: Sequence[int]) -> None:
        # Batch row b (prompt live[b]) fed every token it drew but the last, at slots
        # width, width+1, …: its prompt and those tokens become one prefix-cache entry.
        if prefix_cache is None:
            return
        for b in rows:
            prompt, draft = prompts[live[b]], out[live[b]]
            fed = len(draft.token_ids) - 1
            entry = cache.select([b], width - len(prompt), width + fed)
            prefix_cache.insert([*prompt, *draft.token_ids[:fed]], entry)

    for t in range(max_tokens):
        logits = step.logits[:, -1]
        # Rows that stopped but still sit in the batch draw freely; their draws are dropped.
        row_guides = [None if out[i].stopped else guides[i] for i in live]
        if any(g is not None for g in row_guides):
            logits = logits.masked_fill(~_allowed(row_guides, logits), float("-inf"))
        drawn = sample(logits, sampling, [generators[i] for i in live])
        for b, guide in enumerate(row_guides):
            if guide is not None:
                guide.advance(int(drawn.tokens[b]))
        routes = [r[:, -1].tolist() for r in step.routes if r is not None]
        for b, i in enumerate(live):
            out[i].add(drawn, b, [r[b] for r in routes], stop_id)
        running = [b for b, i in enumerate(live) if not out[i].stopped]
        if not running or t == max_tokens - 1:
            break
        if len(running) <= len(live) * 3 // 4:
            # Stopped rows leave the batch, so later steps cost only the rows still going.
            # Rarely (a quarter at a time), since each compaction copies the cache.
            still = set(running)
            keep([b for b in range(len(live)) if b not in still])
            cache = cache.select(running)
            live = [live[b] for b in running]
        feed = [[out[i].token_ids[-1] if not out[i].stopped else pad_id] for i in live]
        step = forward_cached(model, torch.tensor(feed, device=device), cache, None, mode, backend)
    keep(range(len(live)))
    return [d.finish() for d in out]


def _allowed(guides: Sequence[TurnConstraint | None], logits: torch.Tensor) -> torch.Tensor:
    """(rows, V) bool: each guided row's grammar mask; every id for the unguided ones."""
    mask = torch.ones(logits.shape, dtype=torch.bool)
    for b, guide in enumerate(guides):
        if guide is not None:
            mask[b] = guide.allowed(logits.shape[-1])
    return mask.to(logits.device)


def _prefill_reusing(
    model: Transformer,
    prompts: Sequence[Sequence[int]],
    prefix_cache: PrefixCache,
    max_tokens: int,
    mode: AttentionMode,
    backend: Backend,
) -> tuple[KVCache, StepOutput]:
    """Prefill each prompt past its longest cached prefix, then merge into one batch cache."""
    device = model.embed.weight.device
    rows, steps = [], []
    for prompt in prompts:
        source, keep = prefix_cache.lookup(prompt)
        row = row_cache(model, len(prompt), source, keep)
        new = torch.tensor([list(prompt[keep:])], dtype=torch.long, device=device)
        steps.append(forward_cached(model, new, row, None, mode, backend))
        rows.append(row)
        # Kept at once, so the next rows of this call (a task's other samples) reuse it.
        prefix_cache.insert(prompt, row)
    width = max(len(p) for p in prompts)
    cache = merge_right_aligned(model, rows, width + max_tokens - 1)
    routes = tuple(
        None if layer[0] is None else torch.cat([r[:, -1:] for r in layer if r is not None])
        for layer in zip(*(s.routes for s in steps), strict=True)
    )
    return cache, StepOutput(torch.cat([s.logits[:, -1:] for s in steps]), routes)


class _Draft:
    def __init__(self) -> None:
        self.token_ids: list[int] = []
        self.logprobs: list[float] = []
        self.sampling_mask: list[list[int]] = []
        self.routing: list[list[list[int]]] = []
        self.stopped = False

    def add(self, drawn: Sample, row: int, routing: list[list[int]], stop_id: int) -> None:
        if self.stopped:
            return
        token = int(drawn.tokens[row])
        self.token_ids.append(token)
        self.logprobs.append(float(drawn.logprobs[row]))
        self.sampling_mask.append(drawn.kept[row].nonzero()[:, 0].tolist())
        self.routing.append(routing)
        self.stopped = token == stop_id

    def finish(self) -> Generation:
        return Generation(
            self.token_ids, self.logprobs, self.sampling_mask, self.routing, self.stopped
        )


def _check(
    model: Transformer, prompts: Sequence[Sequence[int]], max_tokens: int, seeds: list[int]
) -> None:
    if not prompts or any(len(p) == 0 for p in prompts):
        raise ModelInputError("generate needs at least one prompt, and every prompt a token")
    if max_tokens < 1:
        raise ModelInputError(f"max_tokens must be ≥ 1, got {max_tokens}")
    if len(seeds) != len(prompts):
        raise ModelInputError(f"{len(seeds)} seeds for {len(prompts)} prompts; give one each")
    longest = max(len(p) for p in prompts)
    if longest + max_tokens - 1 > model.args.max_seq_len:
        raise ModelInputError(
            f"a prompt of {longest} tokens plus {max_tokens} new ones exceeds max_seq_len "
            f"{model.args.max_seq_len}; shorten the prompt or lower max_tokens"
        )


def _left_padded(
    prompts: Sequence[Sequence[int]], pad_id: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(p) for p in prompts)
    tokens = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    valid = torch.zeros(len(prompts), width, dtype=torch.bool)
    for row, p in enumerate(prompts):
        tokens[row, width - len(p) :] = torch.tensor(list(p), dtype=torch.long)
        valid[row, width - len(p) :] = True
    return tokens.to(device), valid.to(device)
