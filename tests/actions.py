"""Actions and observations of the tool gyms, as an RL loop writes and reads them."""

from __future__ import annotations

from typing import Any

import orjson


def call(name: str, **arguments: object) -> dict[str, Any]:
    """An assistant action (OpenAI-format dict) that calls one tool."""
    return {
        "role": "assistant",
        "content": "",
        "tool_calls": [{"id": "c", "name": name, "arguments": orjson.dumps(arguments).decode()}],
    }


def tool_text(obs: str) -> str:
    """The text of the first new message of an observation."""
    return str(orjson.loads(obs)[0]["content"])
