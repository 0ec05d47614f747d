"""The byte-level tokenizer: round trips, special tokens as single ids, invalid bytes."""

from __future__ import annotations

import pytest

from envsynth.chat_template import render
from envsynth.schema import Message, ToolCall, ToolSpec
from model import ModelArgs, ModelInputError
from model.tokenizer import N_BYTES, SPECIAL_TOKENS, VOCAB_SIZE, Tokenizer

TOK = Tokenizer()
TEXTS = [
    "",
    "plain ascii, with punctuation: {}[]<>|/\\",
    "héllo wörld — ¿qué? 你好，世界 こんにちは 🙂🚀 e\u0301 \u200b\x00\x7f",
    "near misses: <|begin <think </tool_call <|nope|> <|ENd|>",
    "a" * 3 + "\n\t\r",
]


@pytest.mark.parametrize("text", TEXTS)
def test_any_text_round_trips(text: str) -> None:
    ids = TOK.encode(text)
    assert all(0 <= i < N_BYTES for i in ids)  # none of these contains a special tag
    assert ids == list(text.encode())
    assert TOK.decode(ids) == text


@pytest.mark.parametrize("special", SPECIAL_TOKENS)
def test_every_special_token_is_one_id_and_round_trips(special: str) -> None:
    text = f"x{special}é{special}{special}"
    ids = TOK.encode(text)
    sid = TOK.special_ids[special]
    assert ids == [ord("x"), sid, *"é".encode(), sid, sid]
    assert TOK.decode(ids) == text
    assert TOK.decode([sid]) == special


def test_special_ids_are_distinct_after_the_bytes_and_fill_the_vocab() -> None:
    ids = sorted(TOK.special_ids.values())
    assert ids == list(range(N_BYTES, VOCAB_SIZE))
    assert len(SPECIAL_TOKENS) == 11 and TOK.pad_id == VOCAB_SIZE - 1
    assert TOK.vocab_size == VOCAB_SIZE == ModelArgs().vocab_size


def test_invalid_utf8_is_replaced_and_a_split_character_survives_a_special() -> None:
    assert TOK.decode([0xFF, ord("a")]) == "\ufffda"
    euro = list("€".encode())
    # The lead byte, then two stray continuation bytes: three replacement characters.
    assert TOK.decode([euro[0], TOK.end_id, *euro[1:]]) == "\ufffd<|end|>\ufffd\ufffd"


def test_ids_outside_the_vocabulary_are_refused() -> None:
    with pytest.raises(ModelInputError, match="outside the vocabulary"):
        TOK.decode([VOCAB_SIZE])
    with pytest.raises(ModelInputError):
        TOK.decode([-1])


def test_encode_chat_is_the_rendered_template() -> None:
    tools = [ToolSpec(name="add", description="Add two ints.", parameters={"type": "object"})]
    messages = [
        Message(role="system", content="Be brief."),
        Message(role="user", content="1+1? ünïcode"),
        Message(
            role="assistant",
            content="",
            reasoning="use the tool",
            tool_calls=[ToolCall(id="c0", name="add", arguments='{"a": 1, "b": 1}')],
        ),
        Message(role="tool", content="2", tool_call_id="c0"),
    ]
    for thinking in (True, False):
        ids = TOK.encode_chat(messages, tools, thinking=thinking)
        text = render(messages, tools, thinking=thinking)
        assert TOK.decode(ids) == text
        assert ids[0] == TOK.bos_id
        # One in the tools block's instructions, one in the assistant's call.
        assert ids.count(TOK.special_ids["<tool_call>"]) == 2
        opener = TOK.special_ids["<think>" if thinking else "</think>"]
        assert ids[-2:] == [TOK.special_ids["<|assistant|>"], opener]
