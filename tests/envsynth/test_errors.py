"""Error helpers: the problem lists of bad files, and tool-call arguments parsed or refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from envsynth.errors import ImportFormatError, ToolError, list_problems, tool_arguments
from envsynth.export import import_jsonl
from envsynth.store import Store


def test_a_short_list_is_shown_whole() -> None:
    assert list_problems([("line 2", "bad json"), ("line 5", "no id")]) == (
        "  line 2: bad json\n  line 5: no id"
    )


def test_a_long_list_shows_the_first_and_counts_the_rest() -> None:
    problems = [(f"line {n}", "bad") for n in range(1, 26)]
    lines = list_problems(problems).splitlines()
    assert lines[:10] == [f"  line {n}: bad" for n in range(1, 11)]
    assert lines[10:] == ["  … and 15 more"]


def test_an_import_of_many_bad_lines_reports_each_and_imports_nothing(tmp_path: Path) -> None:
    path = tmp_path / "tasks.jsonl"
    path.write_text("\n".join(["{not json"] * 12 + [json.dumps({"id": "x"})]) + "\n")
    store = Store(tmp_path / "s.db")
    with pytest.raises(ImportFormatError) as err:
        import_jsonl(store, path)
    assert [n for n, _ in err.value.problems] == list(range(1, 14))
    message = str(err.value)
    assert "  line 1: " in message and "  line 10: " in message and "line 11" not in message
    assert message.endswith("  … and 3 more")
    assert store.task_ids(accepted=None) == []


def test_tool_arguments_are_a_json_object_or_a_tool_error() -> None:
    assert tool_arguments('{"a": 1}', "f") == {"a": 1}
    assert tool_arguments("", "f") == {} and tool_arguments({"b": 2}, "f") == {"b": 2}
    with pytest.raises(ToolError, match="arguments of f are not valid JSON"):
        tool_arguments("{a", "f")
    with pytest.raises(ToolError, match="arguments of f must be a JSON object"):
        tool_arguments("[1, 2]", "f")
