"""The typed exceptions of envsynth. Messages say what to do next.

Only `ToolError` is ever shown to an agent; anything else is a bug or a user error and
propagates to the caller.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from typing import Any

import orjson


class EnvsynthError(Exception):
    """Base of every error envsynth raises on purpose."""


def list_problems(problems: Sequence[tuple[object, str]], shown: int = 10) -> str:
    """The first `shown` (where, message) problems, one indented line each, and how many more.

    Every error that reports a file's bad lines or records ends with this list, so all read
    alike and a file with thousands of bad lines still gives a short message.
    """
    lines = [f"  {where}: {message}" for where, message in problems[:shown]]
    if len(problems) > shown:
        lines.append(f"  … and {len(problems) - shown} more")
    return "\n".join(lines)


class ConfigError(EnvsynthError):
    """A configuration value is missing or invalid."""


class UnknownIdError(EnvsynthError, KeyError):
    """A registry lookup failed; the message suggests close matches."""

    def __init__(self, kind: str, name: str, known: Iterable[str]):
        known = sorted(known)
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        listing = ", ".join(known) if len(known) <= 30 else f"{len(known)} known"
        super().__init__(f"unknown {kind} {name!r}.{hint} Known: {listing}.")
        self.kind, self.name = kind, name

    def __str__(self) -> str:  # KeyError would quote the message otherwise
        return str(self.args[0])


class StoreError(EnvsynthError):
    """The store cannot be opened or holds something unexpected."""


class NotFoundError(StoreError):
    """A record asked for by id is not in the store."""


class ImportFormatError(EnvsynthError):
    """An import file has invalid lines; nothing was imported.

    Attributes:
        problems: (line number, message) for each bad line.
    """

    def __init__(self, path: str, problems: list[tuple[int, str]]):
        self.problems = problems
        super().__init__(
            f"{path}: {len(problems)} invalid line(s); nothing was imported. "
            "Fix or remove them and import again.\n"
            + list_problems([(f"line {n}", msg) for n, msg in problems])
        )


class PolicyError(EnvsynthError):
    """A policy backend failed in a way retries could not fix (bad endpoint, bad reply)."""


class ToolError(EnvsynthError):
    """An error the agent caused and should see: bad arguments, unknown record, a rule broken.

    Environments turn it into an error observation; it never ends a training run.
    """


def tool_arguments(raw: str | dict[str, Any], tool: str) -> dict[str, Any]:
    """A tool call's arguments as a dict, from their JSON text (empty text: no arguments).

    Raises:
        ToolError: the text is not JSON, or not a JSON object.
    """
    if isinstance(raw, str):
        try:
            raw = orjson.loads(raw or "{}")
        except orjson.JSONDecodeError as e:
            raise ToolError(f"arguments of {tool} are not valid JSON: {e}") from None
    if not isinstance(raw, dict):
        raise ToolError(f"arguments of {tool} must be a JSON object")
    return raw
