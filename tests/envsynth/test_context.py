"""Context management: tool-call turns are discarded whole, a summary replaces the history,
a rewritten view is where the episode goes on from, and the stored trajectory keeps all."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

import pytest
from typer.testing import CliRunner

from envsynth.cli import app
from envsynth.errors import ConfigError
from envsynth.policy.base import PolicyOutput, PolicyRequest
from envsynth.policy.baselines import RandomPolicy
from envsynth.policy.context import (
    SUMMARY_HEADER,
    SUMMARY_PROMPT,
    ContextManaged,
    discard,
    size,
    split_turns,
)
from envsynth.rollout import EpisodeSpec, rollout
from envsynth.schema import Message, PolicyInfo, ToolCall


def _turn(i: int, results: int = 1) -> list[Message]:
    calls = [
        ToolCall(id=f"c{i}.{j}", name="look", arguments=f'{{"n": {i}}}') for j in range(results)
    ]
    return [
        Message(role="assistant", content="", tool_calls=calls),
        *(
            Message(role="tool", content=f"result {i}.{j} " * 5, tool_call_id=f"c{i}.{j}")
            for j in range(results)
        ),
    ]


HEAD = [Message(role="system", content="rules"), Message(role="user", content="the task")]
HISTORY = HEAD + _turn(1) + _turn(2, results=2) + _turn(3) + _turn(4)


def _well_formed(messages: Sequence[Message]) -> bool:
    open_calls: set[str] = set()
    for m in messages:
        if m.role == "assistant":
            open_calls = {c.id for c in m.tool_calls or ()}
        elif m.role == "tool" and m.tool_call_id not in open_calls:
            return False
    return True


def test_turns_are_an_assistant_call_with_its_results() -> None:
    head, turns = split_turns(HISTORY)
    assert head == HEAD and [len(t) for t in turns] == [2, 3, 2, 2]


def test_discarding_drops_the_oldest_tool_turns_whole() -> None:
    kept = discard(HISTORY, 0.75)  # 3 of 4 turns, rounded up
    assert kept == HEAD + _turn(4) and _well_formed(kept)
    assert discard(HISTORY, 0.5) == HEAD + _turn(3) + _turn(4)
    assert discard(HISTORY, 1.0) == HEAD
    assert discard(HEAD, 0.75) == HEAD


class _Recorder:
    """Answers with a fixed call and remembers every history it was given."""

    def __init__(self, reply: str = "noted") -> None:
        self.info = PolicyInfo(name="recorder")
        self.seen: list[list[Message]] = []
        self.reply = reply

    async def agenerate(self, requests: Sequence[PolicyRequest]) -> list[PolicyOutput]:
        self.seen += [list(r.messages) for r in requests]
        text = f"{self.reply} after {len(requests[0].messages)} messages"
        return [PolicyOutput(Message(role="assistant", content=text)) for _ in requests]


def _ask(policy: ContextManaged, messages: list[Message]) -> list[Message]:
    asyncio.run(policy.agenerate([PolicyRequest(messages=messages)]))
    inner = policy.inner
    assert isinstance(inner, _Recorder)
    return inner.seen[-1]


def test_a_history_under_budget_or_kept_whole_reaches_the_policy_unchanged() -> None:
    assert _ask(ContextManaged(_Recorder(), "discard_75", budget=10**6), HISTORY) == HISTORY
    assert _ask(ContextManaged(_Recorder(), "keep_all", budget=1), HISTORY) == HISTORY


def test_the_episode_goes_on_from_the_rewritten_view() -> None:
    budget = size(HEAD + _turn(1) + _turn(2, results=2)) + 1
    policy = ContextManaged(_Recorder(), "discard_75", budget=budget)
    assert _ask(policy, HISTORY) == HEAD + _turn(4)
    # One more turn: appended to the view, which is still under budget, not re-discarded.
    longer = HISTORY + _turn(5)
    assert _ask(policy, longer) == HEAD + _turn(4) + _turn(5)
    # Growing past the budget again discards again, from the view.
    longest = longer + _turn(6) + _turn(7)
    assert _ask(policy, longest) == HEAD + _turn(7)
    assert _ask(ContextManaged(_Recorder(), "discard_all", budget=budget), HISTORY) == HEAD


def test_a_summary_replaces_the_tool_history() -> None:
    summarizer = _Recorder(reply="S")
    policy = ContextManaged(_Recorder(), "summary", budget=50, summarizer=summarizer)
    view = _ask(policy, HISTORY)
    assert view[:2] == HEAD and len(view) == 3 and view[2].role == "user"
    assert view[2].content == f"{SUMMARY_HEADER} (4 turns):\nS after {len(HISTORY) + 1} messages"
    asked = summarizer.seen[-1]
    assert asked[:-1] == HISTORY and asked[-1].content == SUMMARY_PROMPT
    # A second overflow summarizes the summary and what came after: one note, not two.
    again = _ask(policy, HISTORY + _turn(5) + _turn(6))
    assert [m.content.startswith(SUMMARY_HEADER) for m in again] == [False, False, True]


def test_bad_strategies_and_budgets_are_refused() -> None:
    with pytest.raises(ConfigError, match="unknown context strategy"):
        ContextManaged(_Recorder(), "discard_50", budget=10)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="at least 1"):
        ContextManaged(_Recorder(), "summary", budget=0)


class _Spy:
    """Wraps a policy and records the size of every history it is given."""

    def __init__(self, inner: RandomPolicy) -> None:
        self.inner, self.info, self.sizes = inner, inner.info, []

    async def agenerate(self, requests: Sequence[PolicyRequest]) -> list[PolicyOutput]:
        self.sizes += [size(r.messages) for r in requests]
        return await self.inner.agenerate(requests)


def test_a_rollout_stores_the_whole_history_while_the_policy_sees_the_budget(
    small_db: Path,
) -> None:
    spy = _Spy(RandomPolicy(submit_prob=0.0, max_turns=12))
    budget = 6000
    policy = ContextManaged(spy, "discard_all", budget=budget)  # type: ignore[arg-type]
    specs = [
        EpisodeSpec({"dataset": "general", "db": str(small_db), "max_turns": 12}, seed=s)
        for s in range(3)
    ]
    trajectories = rollout("envsynth/General-v0", policy, specs)
    assert max(size(t.messages) for t in trajectories) > budget, "histories outgrew the budget"
    assert max(spy.sizes) <= budget and len(spy.sizes) == sum(
        sum(m.role == "assistant" for m in t.messages) for t in trajectories
    )
    assert trajectories[0].policy.version.endswith("+discard_all@6000")


def test_cli_rollout_takes_a_context_strategy(small_db: Path) -> None:
    runner = CliRunner()
    common = ["rollout", "--db", str(small_db), "--policy", "random", "--episodes", "2"]
    ok = runner.invoke(
        app, [*common, "--context-strategy", "discard_75", "--context-budget", "3000"]
    )
    assert ok.exit_code == 0, ok.output
    bad = runner.invoke(app, [*common, "--context-strategy", "discard_50"])
    assert bad.exit_code != 0
