"""The shared record lookup the families use for their tables."""

from __future__ import annotations

import pytest

from envsynth.errors import ToolError
from pipelines.general.tools import find_record

ROWS = [
    {"id": "a", "email": "x@e.org", "n": 1},
    {"id": "b", "email": "y@e.org", "n": 2},
    {"id": "a", "email": "z@e.org", "n": 3},
]


def test_the_first_matching_row_is_returned_itself() -> None:
    row = find_record(ROWS, "a", "missing")
    assert row is ROWS[0]


def test_another_key_is_compared_when_named() -> None:
    assert find_record(ROWS, "y@e.org", "missing", key="email") is ROWS[1]
    assert find_record(iter(ROWS), 3, "missing", key="n") is ROWS[2]


def test_no_match_raises_the_given_message_exactly() -> None:
    with pytest.raises(ToolError) as err:
        find_record(ROWS, "c", "no thing 'c'; list_things shows the ids")
    assert str(err.value) == "no thing 'c'; list_things shows the ids"
    with pytest.raises(ToolError):
        find_record([], "a", "none")
