import pytest

from envsynth.chat_template import ChatFormatError, parse_assistant, render
from envsynth.schema import Message, ToolCall, ToolSpec


def test_round_trip_of_tool_calls_and_reasoning() -> None:
    text = (
        "thinking hard</think>Let me look."
        '<tool_call>{"name": "get", "arguments": {"id": "é中"}}</tool_call>'
    )
    m = parse_assistant(text)
    assert m.reasoning == "thinking hard" and m.content == "Let me look."
    assert m.tool_calls is not None and m.tool_calls[0].name == "get"
    assert '"é中"' in m.tool_calls[0].arguments


def test_reasoning_is_dropped_after_a_new_user_message() -> None:
    call = ToolCall(id="c", name="f", arguments="{}")
    msgs = [
        Message(role="user", content="q1"),
        Message(role="assistant", content="a1", reasoning="OLD-THOUGHT", tool_calls=[call]),
        Message(role="tool", content="r", tool_call_id="c"),
        Message(role="assistant", content="a2", reasoning="KEPT-THOUGHT"),
        Message(role="user", content="q2"),
        Message(role="assistant", content="a3", reasoning="NEW-THOUGHT"),
    ]
    # Within the last user turn reasoning stays; before it, it is dropped.
    assert "NEW-THOUGHT" in render(msgs)
    assert "OLD-THOUGHT" not in render(msgs) and "KEPT-THOUGHT" not in render(msgs)
    assert "KEPT-THOUGHT" in render(msgs[:4]) and "OLD-THOUGHT" in render(msgs[:4])


def test_tools_are_rendered_and_modes_differ() -> None:
    tools = [ToolSpec(name="lookup", description="Find a thing.")]
    msgs = [Message(role="system", content="sys"), Message(role="user", content="hi")]
    assert '"name":"lookup"' in render(msgs, tools)
    assert render(msgs, thinking=True).endswith("<think>")
    assert render(msgs, thinking=False).endswith("</think>")


@pytest.mark.parametrize(
    "text",
    [
        '<tool_call>{"name": "f", "arguments": {</tool_call>',
        '<tool_call>["f"]</tool_call>',
        '<tool_call>{"name": 3}</tool_call>',
        '<tool_call>{"name": "f", "arguments": {}}',
        "<think>never closed",
    ],
)
def test_malformed_output_is_a_format_error(text: str) -> None:
    with pytest.raises(ChatFormatError):
        parse_assistant(text)
