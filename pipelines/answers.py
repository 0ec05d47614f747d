"""Grading a short answer: numbers within a tolerance, anything else as normalized text.

The interpreter and search pipelines accept a task with this check and their gyms grade
the agent with it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import orjson

from envsynth.schema import Verdict

# Thousands separators, a trailing period and surrounding quotes never change an answer.
_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


def parse_number(text: str) -> float | None:
    """The number `text` writes ("1,234.5", " 42. "), or None when it is not one number."""
    cleaned = text.strip().strip("\"'`").rstrip(".").replace(",", "").replace("_", "")
    if not _NUMBER.fullmatch(cleaned):
        return None
    value = float(cleaned)
    return value if math.isfinite(value) else None


def check_answer(
    given: str, expected: str, tolerance: float = 0.0, aliases: Sequence[str] = ()
) -> Verdict:
    """Whether `given` is the `expected` answer (or, for text, one of its `aliases`).

    Args:
        given: the agent's answer text.
        expected: the task's answer.
        tolerance: for numeric answers, the largest accepted absolute difference.
        aliases: other accepted spellings of a text answer.
    """
    want, got = parse_number(expected), parse_number(given)
    if want is not None:
        if got is None:
            return Verdict(reward=0.0, reason=f"the answer {given.strip()[:80]!r} is not a number")
        # The slack absorbs binary rounding (219904.885 − 219904.88 is 0.0050000000047) and
        # stays far below 1 for integers up to 10^11, which must match exactly.
        ok = abs(got - want) <= tolerance + 1e-12 * max(1.0, abs(want))
        reason = "correct" if ok else f"the answer {got:.12g} is not {want:.12g} (± {tolerance:g})"
        return Verdict(reward=float(ok), components={"correct": float(ok)}, reason=reason)
    ok = _text(given) in {_text(a) for a in (expected, *aliases)}
    reason = "correct" if ok else f"the answer {given.strip()[:80]!r} is not the expected one"
    return Verdict(reward=float(ok), components={"correct": float(ok)}, reason=reason)


def _text(value: str) -> str:
    return " ".join(value.strip().strip("\"'`").rstrip(".").lower().split())


def answer_of(arguments: str) -> str:
    """The `answer` argument of an answer tool call's JSON arguments ("" when it has none)."""
    try:
        args = orjson.loads(arguments or "{}")
    except orjson.JSONDecodeError:
        return ""
    value = args.get("answer", "") if isinstance(args, dict) else ""
    return "" if value is None else str(value)
