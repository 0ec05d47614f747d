"""The text chat template shared by the bundled model and the gyms' text actions.

Messages + tools render to one string; an assistant completion parses back to a Message.
As in DeepSeek-V3.2, reasoning is kept across tool results within one user turn and dropped
once a new user message arrives; thinking mode opens the assistant turn with `<think>`,
non-thinking mode closes it at once.

    <|system|>…<|end|><|user|>…<|end|><|assistant|><think>…</think>text
    <tool_call>{"name": "f", "arguments": {…}}</tool_call><|end|><|tool|>…<|end|>
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import orjson

from envsynth.errors import EnvsynthError
from envsynth.schema import Message, ToolCall, ToolSpec

BOS, END = "<|begin|>", "<|end|>"
ROLE_TAGS = {
    "system": "<|system|>",
    "user": "<|user|>",
    "assistant": "<|assistant|>",
    "tool": "<|tool|>",
}
THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
CALL_OPEN, CALL_CLOSE = "<tool_call>", "</tool_call>"


class ChatFormatError(EnvsynthError):
    """Model output that does not follow the template; becomes an error observation."""


def _tools_block(tools: Sequence[ToolSpec]) -> str:
    if not tools:
        return ""
    lines = [orjson.dumps(t.openai_schema()["function"]).decode() for t in tools]
    return (
        '\n\n## Tools\nCall a tool with <tool_call>{"name": …, "arguments": {…}}</tool_call>.\n'
        + "\n".join(lines)
    )


def render_assistant(m: Message, keep_reasoning: bool) -> str:
    think = (
        f"{THINK_OPEN}{m.reasoning}{THINK_CLOSE}" if keep_reasoning and m.reasoning else THINK_CLOSE
    )
    calls = "".join(
        f'{CALL_OPEN}{{"name": {orjson.dumps(c.name).decode()}, '
        f'"arguments": {c.arguments or "{}"}}}'
        f"{CALL_CLOSE}"
        for c in m.tool_calls or ()
    )
    return f"{ROLE_TAGS['assistant']}{think}{m.content}{calls}{END}"


def render(
    messages: Sequence[Message],
    tools: Sequence[ToolSpec] = (),
    *,
    thinking: bool = True,
    add_generation_prompt: bool = True,
) -> str:
    """Render a conversation for the model; ends with an open assistant turn by default."""
    last_user = max((i for i, m in enumerate(messages) if m.role == "user"), default=-1)
    parts = [BOS]
    system_done = False
    for i, m in enumerate(messages):
        if m.role == "system":
            parts.append(f"{ROLE_TAGS['system']}{m.content}{_tools_block(tools)}{END}")
            system_done = True
        elif m.role == "assistant":
            parts.append(render_assistant(m, keep_reasoning=i > last_user))
        else:
            parts.append(f"{ROLE_TAGS[m.role]}{m.content}{END}")
    if tools and not system_done:
        parts.insert(1, f"{ROLE_TAGS['system']}{_tools_block(tools).lstrip()}{END}")
    if add_generation_prompt:
        parts.append(ROLE_TAGS["assistant"] + (THINK_OPEN if thinking else THINK_CLOSE))
    return "".join(parts)


_CALL = re.compile(re.escape(CALL_OPEN) + r"(.*?)" + re.escape(CALL_CLOSE), re.S)


def parse_assistant(text: str, *, thinking: bool = True, turn: int = 0) -> Message:
    """Parse a completion (the text after the generation prompt) into an assistant Message.

    Raises:
        ChatFormatError: a tool call is not JSON with a string `name` and object `arguments`.
    """
    text = text.split(END, 1)[0]
    reasoning = None
    if THINK_CLOSE in text:
        head, text = text.split(THINK_CLOSE, 1)
        reasoning = head.removeprefix(THINK_OPEN).strip() or None
    elif thinking and text.startswith(THINK_OPEN):
        raise ChatFormatError("the reasoning block was never closed with </think>")
    calls = []
    for i, raw in enumerate(_CALL.findall(text)):
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError as e:
            raise ChatFormatError(f"tool call {i + 1} is not valid JSON: {e}") from None
        if (
            not isinstance(obj, dict)
            or not isinstance(obj.get("name"), str)
            or not isinstance(obj.get("arguments", {}), dict)
        ):
            raise ChatFormatError(
                f'tool call {i + 1} must be {{"name": string, "arguments": object}}'
            )
        calls.append(
            ToolCall(
                id=f"call_{turn}_{i}",
                name=obj["name"],
                arguments=orjson.dumps(obj.get("arguments", {})).decode(),
            )
        )
    if CALL_OPEN in _CALL.sub("", text):
        raise ChatFormatError("a <tool_call> was opened but never closed")
    content = _CALL.sub("", text).strip()
    return Message(role="assistant", content=content, reasoning=reasoning, tool_calls=calls or None)
