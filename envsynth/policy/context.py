"""Context management for long episodes: what a policy sees once its history overflows.

DeepSeek-V3.2 (search agents) keeps an agent going past its context window by rewriting the
history when it grows over a budget, with one of these strategies:

- `keep_all`: no change (the baseline; the prompt may overflow);
- `summary`: the tool-call history is replaced by a summary of it, written by a policy,
  and the episode goes on from the task and that summary;
- `discard_75`: the oldest 75% of the tool-call turns are dropped;
- `discard_all`: every tool-call turn is dropped, as a fresh context would.

A tool-call turn is an assistant message and the tool results that answer it, dropped or
kept together, so the history stays well formed. The system and user messages stay.
`ContextManaged` wraps any Policy with a strategy; the environment and the stored
trajectory keep the whole history, only the policy's view is rewritten.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Literal

from envsynth.errors import ConfigError
from envsynth.ids import content_hash
from envsynth.policy.base import Policy, PolicyOutput, PolicyRequest
from envsynth.schema import Message, PolicyInfo, SamplingParams

Strategy = Literal["keep_all", "summary", "discard_75", "discard_all"]
STRATEGIES: tuple[Strategy, ...] = ("keep_all", "summary", "discard_75", "discard_all")
SUMMARY_HEADER = "Summary of your work so far"
# Rewritten views remembered at once: far more than the episodes a rollout keeps alive.
MAX_VIEWS = 4096
SUMMARY_PROMPT = (
    "Your context is full. Summarize, for yourself, everything you have learnt so far from "
    "your tool calls that you still need to finish the task: facts, ids, values, what is done "
    "and what is left. Write only the summary."
)


def size(messages: Sequence[Message]) -> int:
    """Characters a history holds: contents, reasoning and tool-call arguments."""
    return sum(
        len(m.content)
        + len(m.reasoning or "")
        + sum(len(c.name) + len(c.arguments) for c in m.tool_calls or ())
        for m in messages
    )


def split_turns(messages: Sequence[Message]) -> tuple[list[Message], list[list[Message]]]:
    """(the leading system and user messages, the turns after them).

    A turn is an assistant message with every tool message that follows it; a later user
    message starts a turn of its own.
    """
    head: list[Message] = []
    i = 0
    while i < len(messages) and messages[i].role in ("system", "user"):
        head.append(messages[i])
        i += 1
    turns: list[list[Message]] = []
    for m in messages[i:]:
        if m.role == "tool" and turns:
            turns[-1].append(m)
        else:
            turns.append([m])
    return head, turns


def discard(messages: Sequence[Message], fraction: float) -> list[Message]:
    """The history without its oldest `fraction` of tool-call turns (rounded up)."""
    head, turns = split_turns(messages)
    tool_turns = [i for i, t in enumerate(turns) if t[0].role == "assistant" and t[0].tool_calls]
    drop = set(tool_turns[: math.ceil(len(tool_turns) * fraction)])
    return head + [m for i, t in enumerate(turns) if i not in drop for m in t]


class ContextManaged:
    """A policy that sees its history rewritten by `strategy` once it exceeds `budget`.

    Args:
        inner: the policy that answers.
        strategy: see the module doc.
        budget: the history size (`size`, in characters) past which the strategy applies.
        summarizer: the policy that writes summaries (default: `inner`).
        measure: how a history's size is counted (default: `size`).
    """

    def __init__(
        self,
        inner: Policy,
        strategy: Strategy,
        budget: int,
        summarizer: Policy | None = None,
        measure: Callable[[Sequence[Message]], int] = size,
    ):
        if strategy not in STRATEGIES:
            raise ConfigError(f"unknown context strategy {strategy!r}; use one of {STRATEGIES}")
        if budget < 1:
            raise ConfigError(f"the context budget must be at least 1, got {budget}")
        self.inner, self.strategy, self.budget = inner, strategy, budget
        self.summarizer = summarizer or inner
        self.measure = measure
        # Rewritten views by the history they were made at (see `context`).
        self._views: OrderedDict[str, list[Message]] = OrderedDict()
        self._lengths: set[int] = set()
        self.info = PolicyInfo(
            name=inner.info.name,
            version=f"{inner.info.version}+{strategy}@{budget}",
        )

    async def agenerate(self, requests: Sequence[PolicyRequest]) -> list[PolicyOutput]:
        managed = [await self.context(r) for r in requests]
        return await self.inner.agenerate(managed)

    async def context(self, request: PolicyRequest) -> PolicyRequest:
        """The request as the inner policy gets it.

        A rewrite is remembered by the history it was made at, so the episode goes on from
        the rewritten view: later turns are appended to it until it overflows again, as in
        a rollout that re-initiated its context.
        """
        messages = list(request.messages)
        view = messages
        for n in sorted(self._lengths, reverse=True):
            if n <= len(messages) and (known := self._views.get(_key(messages[:n]))):
                view = [*known, *messages[n:]]
                break
        if self.strategy != "keep_all" and self.measure(view) > self.budget:
            view = await self._rewrite(request, view)
            self._views[_key(messages)] = view
            self._lengths.add(len(messages))
            while len(self._views) > MAX_VIEWS:  # a long run: the oldest episodes are over
                self._views.popitem(last=False)
        return request if view is messages else replace(request, messages=view)

    async def _rewrite(self, request: PolicyRequest, view: list[Message]) -> list[Message]:
        if self.strategy == "discard_75":
            return discard(view, 0.75)
        if self.strategy == "discard_all":
            return discard(view, 1.0)
        head, turns = split_turns(view)
        # The new summary covers the previous one, which the request below still shows.
        head = [m for m in head if not m.content.startswith(SUMMARY_HEADER)]
        ask = PolicyRequest(
            messages=[*view, Message(role="user", content=SUMMARY_PROMPT)],
            sampling=SamplingParams(
                temperature=request.sampling.temperature, seed=request.sampling.seed
            ),
            task=request.task,
            tool_choice="none",
        )
        (out,) = await self.summarizer.agenerate([ask])
        note = Message(
            role="user",
            content=f"{SUMMARY_HEADER} ({len(turns)} turns):\n{out.message.content}",
        )
        return [*head, note]


def _key(messages: Sequence[Message]) -> str:
    return content_hash([m.model_dump() for m in messages])
