"""Distilled SFT data: assistant-only targets, windows, and a split by environment."""

from __future__ import annotations

import pytest

from envsynth.chat_template import END
from envsynth.errors import ConfigError
from envsynth.schema import Message, ToolCall
from model.tokenizer import Tokenizer
from model.training.distill import (
    DistillConfig,
    assistant_targets,
    distill_split,
    reference_tasks,
    split_by_environment,
    windows,
)

TOK = Tokenizer()


def _conversation() -> list[int]:
    call = ToolCall(id="c0", name="lookup", arguments='{"id": "r1"}')
    messages = [
        Message(role="system", content="be brief " * 5),
        Message(role="user", content="find r1"),
        Message(role="assistant", content="", tool_calls=[call]),
        Message(role="tool", content='{"id": "r1", "x": 3}'),
        Message(role="assistant", content="x is 3"),
    ]
    return TOK.encode_chat(messages, thinking=False, add_generation_prompt=False)


def _target_text(ids: list[int], targets: list[bool]) -> list[str]:
    runs, run = [], []
    for tok, t in zip(ids, targets, strict=True):
        if t:
            run.append(tok)
        elif run:
            runs.append(TOK.decode(run))
            run = []
    if run:
        runs.append(TOK.decode(run))
    return runs


def test_targets_are_exactly_what_the_non_thinking_model_generates() -> None:
    ids = _conversation()

    runs = _target_text(ids, assistant_targets(ids))

    assert runs == [
        '<tool_call>{"name": "lookup", "arguments": {"id": "r1"}}</tool_call>' + END,
        "x is 3" + END,
    ]


def test_windows_fit_end_at_an_assistant_end_and_target_each_turn_once() -> None:
    ids = _conversation()
    full = _target_text(ids, assistant_targets(ids))

    for keep_system in (True, False):
        cut = windows(ids, max_len=60, keep_system=keep_system, group="g")
        assert all(len(w.tokens) <= 60 for w in cut)
        assert all(w.tokens[-1] == TOK.end_id and w.targets[-1] for w in cut)
        assert [t for w in cut for t in _target_text(list(w.tokens), list(w.targets))] == full
    whole = windows(ids, max_len=len(ids), keep_system=True, group="g")
    assert len(whole) == 1 and list(whole[0].tokens) == ids


def test_a_window_keeps_the_system_turn_when_it_fits_in_half() -> None:
    ids = _conversation()
    head = ids.index(TOK.end_id) + 1  # BOS, <|system|> … <|end|>

    cut = windows(ids, max_len=2 * head, keep_system=True, group="g")

    assert len(ids) > 2 * head
    assert list(cut[-1].tokens[:head]) == ids[:head]
    assert list(cut[-1].tokens[head:]) == ids[len(ids) - (2 * head - head) :]


@pytest.fixture(scope="module")
def split_config() -> DistillConfig:
    return DistillConfig(envs=6, heldout_envs=2, seed=3, max_len=512)


def test_heldout_environments_never_appear_in_training(split_config: DistillConfig) -> None:
    split = distill_split(split_config)

    assert split.failed_references == 0
    assert len(split.heldout_envs) == 2 and len(split.train_envs) == 4
    assert not split.train_envs & split.heldout_envs
    assert {e.group for e in split.train} <= split.train_envs
    assert {e.group for e in split.heldout} <= split.heldout_envs
    assert split.train and split.heldout
    assert all(len(e.tokens) <= 512 and any(e.targets) for e in split.train + split.heldout)


def test_the_split_is_deterministic_by_seed(split_config: DistillConfig) -> None:
    tasks = reference_tasks(split_config)
    a = split_by_environment(tasks, 2, seed=0)
    b = split_by_environment(tasks, 2, seed=0)
    others = [split_by_environment(tasks, 2, seed=s)[1] for s in range(1, 6)]

    assert [t.id for t in a[1]] == [t.id for t in b[1]]
    assert any({t.env_id for t in o} != {t.env_id for t in a[1]} for o in others)
    with pytest.raises(ConfigError, match="hold out"):
        split_by_environment(tasks, len({t.env_id for t in tasks}), seed=0)
