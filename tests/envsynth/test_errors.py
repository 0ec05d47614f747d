"""The problem lists that errors about a file's bad lines or records end with."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from envsynth.errors import ImportFormatError, list_problems
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
