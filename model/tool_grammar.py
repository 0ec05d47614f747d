"""Guided decoding of an assistant turn: its tool calls follow the tools' JSON schemas.

A small model writes the envelope of a call long before it writes JSON (the bundled one
opened 814 calls of 816 and closed none with valid JSON, see `data_cards/model.md`). Here
each generated row carries a grammar matcher: before a token is drawn, the tokens that
cannot continue a valid turn get probability zero. The grammar of a turn is written in
Lark and compiled by llguidance, whose `%json` embeds each tool's parameter schema:

    required:   <tool_call> {"name": "f", "arguments": ARGS_f} </tool_call>  (one or more)
    a name:     exactly one call of that tool
    auto:       free text, then any number of calls
    none:       free text only; no call can open

then `<|end|>`. In thinking mode the turn starts inside `<think>`, so free reasoning and
`</think>` come first. The envelope is the chat template's (`render_assistant`), and the
arguments are the project's canonical JSON (`envsynth.ids.canonical_json`: compact, keys
sorted), which is how the reference solvers, and so the distilled turns, write them.

Masked tokens are outside the sampler's kept set, so the recorded sampling mask (Keep
Sampling Mask) is the grammar's set cut by top-k/top-p: a trainer that replays the mask
replays the constrained distribution exactly.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from typing import Any

import llguidance
import orjson
import torch

from envsynth.chat_template import CALL_CLOSE, CALL_OPEN, THINK_CLOSE
from envsynth.schema import ToolSpec
from model.errors import ModelInputError
from model.tokenizer import N_BYTES, SPECIAL_IDS, SPECIAL_TOKENS, Tokenizer

TOOL_CHOICES = ("none", "auto", "required")
# Compact JSON, as `canonical_json` writes tool arguments.
_JSON_OPTIONS = {"whitespace_flexible": False, "item_separator": ",", "key_separator": ":"}
_TEXT = r"TEXT: /(?s:.+)/"


@functools.cache
def _lltokenizer() -> llguidance.LLTokenizer:
    tok = Tokenizer()

    class _Vocab:
        # llguidance's view of the byte-level vocabulary: one byte per id, then the special
        # tokens, marked by the 0xFF prefix its token trie reserves for them.
        eos_token_id = tok.end_id
        bos_token_id = tok.bos_id
        tokens = [bytes([i]) for i in range(N_BYTES)] + [
            b"\xff" + s.encode() for s in SPECIAL_TOKENS
        ]
        special_token_ids = [SPECIAL_IDS[s] for s in SPECIAL_TOKENS]

        def __call__(self, text: bytes | str) -> list[int]:
            raw = text.encode() if isinstance(text, str) else text
            return list(raw)

    # No slices: they speed up masks over 100K-token vocabularies, and this one has 267.
    return llguidance.LLTokenizer(llguidance.TokenizerWrapper(_Vocab()), slices=[])


def turn_grammar(tools: Sequence[ToolSpec], choice: str, *, thinking: bool) -> str:
    """The Lark grammar of an assistant turn under a tool choice (see the module doc).

    Args:
        tools: the tools the turn may call.
        choice: "none", "auto", "required", or the name of one of `tools`.
        thinking: the turn starts inside an open `<think>` block.

    Raises:
        ModelInputError: an unknown choice, a name no tool has, or "required" without tools.
    """
    by_name = {t.name: t for t in tools}
    if choice not in TOOL_CHOICES and choice not in by_name:
        known = ", ".join([*TOOL_CHOICES, *by_name]) or "none"
        raise ModelInputError(
            f"tool_choice {choice!r} is neither a mode nor a tool (known: {known})"
        )
    if choice == "required" and not tools:
        raise ModelInputError('tool_choice "required" needs at least one tool')
    callable_ = [] if choice == "none" else [by_name[choice]] if choice in by_name else list(tools)
    rules = [_call_rule(i, t) for i, t in enumerate(callable_)]
    calls = " | ".join(f"call{i}" for i in range(len(callable_)))
    body = {
        "none": "TEXT?",
        "auto": f"TEXT? ({calls})*" if callable_ else "TEXT?",
        "required": f"({calls})+",
    }.get(choice, calls)
    head = f"TEXT? {_special(THINK_CLOSE)} " if thinking else ""
    return "\n".join([f"start: {head}{body}", *(r for pair in rules for r in pair), _TEXT])


def _call_rule(i: int, tool: ToolSpec) -> tuple[str, str]:
    opening = '{"name": ' + orjson.dumps(tool.name).decode() + ', "arguments": '
    schema: dict[str, Any] = {**tool.parameters, "x-guidance": _JSON_OPTIONS}
    # llguidance emits properties in the order the schema lists them; sorting every key of
    # the schema sorts them (no other keyword's meaning depends on order).
    return (
        f'call{i}: {_special(CALL_OPEN)} {json.dumps(opening)} args{i} "}}" {_special(CALL_CLOSE)}',
        f"args{i}: %json {json.dumps(schema, sort_keys=True)}",
    )


def _special(token: str) -> str:
    return f"<[{SPECIAL_IDS[token]}]>"


@functools.lru_cache(maxsize=256)
def _compiled(grammar: str) -> str:
    # Once per grammar: a task's samples and an episode's turns share their tools.
    compiled = llguidance.LLMatcher.grammar_from_lark(grammar)
    failed, messages = llguidance.LLMatcher.validate_grammar_with_warnings(compiled, _lltokenizer())
    if failed:
        raise ModelInputError(f"the tools' schemas do not compile to a grammar: {messages[0]}")
    return compiled


class TurnConstraint:
    """One row's grammar state: which tokens may come next, advanced by each drawn token.

    Args:
        grammar: a Lark grammar from `turn_grammar`.

    Raises:
        ModelInputError: the grammar does not compile (e.g. a schema llguidance rejects).
    """

    def __init__(self, grammar: str):
        self._matcher = llguidance.LLMatcher(_lltokenizer(), _compiled(grammar), log_level=0)

    @classmethod
    def for_turn(cls, tools: Sequence[ToolSpec], choice: str, *, thinking: bool) -> TurnConstraint:
        """The constraint of one turn (see `turn_grammar`)."""
        return cls(turn_grammar(tools, choice, thinking=thinking))

    def allowed(self, vocab_size: int) -> torch.Tensor:
        """(vocab_size,) bool: the ids that keep the turn valid; ids past the tokenizer's, never."""
        if self._matcher.is_error():
            raise ModelInputError(f"guided decoding left its grammar: {self._error()}")
        bias = self._matcher.compute_logit_bias()
        mask = torch.zeros(vocab_size, dtype=torch.bool)
        mask[: len(bias)] = torch.frombuffer(bytearray(bias), dtype=torch.uint8)[:vocab_size] > 0
        return mask

    def advance(self, token: int) -> None:
        """Consume a drawn token.

        Raises:
            ModelInputError: the token was not allowed (the mask was not applied).
        """
        if not self._matcher.consume_token(token):
            raise ModelInputError(
                f"token {token} does not continue the turn's grammar: {self._error()}"
            )

    def _error(self) -> str:
        # llguidance appends its parser state and the whole grammar; the first line says it.
        return self._matcher.get_error().splitlines()[0]

    def accepting(self) -> bool:
        """Whether the turn could end here."""
        return self._matcher.is_accepting()
