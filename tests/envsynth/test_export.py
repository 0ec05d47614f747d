"""Exports load with pyarrow as they are; imports check every line and lose nothing."""

from __future__ import annotations

from pathlib import Path

import orjson
import pyarrow.json as pj
import pyarrow.parquet as pq
import pytest

from envsynth.errors import ImportFormatError
from envsynth.export import export, import_jsonl
from envsynth.store import Store

REQUIRED = {"id", "kind", "family", "env_id", "instruction", "tools", "payload"}


def test_parquet_and_jsonl_load_with_pyarrow(store: Store, tmp_path: Path) -> None:
    n = store.count_tasks("general")
    assert export(store, tmp_path / "g.parquet", "parquet", "general") == n
    assert export(store, tmp_path / "g.jsonl", "jsonl", "general") == n
    table = pq.read_table(tmp_path / "g.parquet")
    assert table.num_rows == n and REQUIRED <= set(table.column_names)
    assert pj.read_json(tmp_path / "g.jsonl").num_rows == n
    row = table.slice(0, 1).to_pylist()[0]
    tools = orjson.loads(row["tools"])
    assert tools[-1]["type"] == "function" and tools[-1]["function"]["name"] == "submit"
    assert orjson.loads(row["payload"])["family"] == row["family"]
    assert set(table.column("id").to_pylist()) == set(store.task_ids("general"))


def test_round_trip_import(store: Store, tmp_path: Path) -> None:
    export(store, tmp_path / "g.jsonl", "jsonl", "general")
    fresh = Store(tmp_path / "fresh.db")
    assert import_jsonl(fresh, tmp_path / "g.jsonl") == store.count_tasks("general")
    some = store.task_ids("general")[:3]
    for tid in some:
        assert fresh.task(tid) == store.task(tid)


def test_garbage_lines_import_nothing(store: Store, tmp_path: Path) -> None:
    export(store, tmp_path / "g.jsonl", "jsonl", "general")
    lines = (tmp_path / "g.jsonl").read_bytes().splitlines()
    tampered = orjson.loads(lines[1])
    tampered["instruction"] += " (edited)"
    missing = orjson.loads(lines[2])
    del missing["payload"]
    bad = [
        lines[0],
        orjson.dumps(tampered),
        b"{not json",
        orjson.dumps(missing),
        b"[1, 2]",
        lines[3],
    ]
    (tmp_path / "bad.jsonl").write_bytes(b"\n".join(bad) + b"\n")
    target = Store(tmp_path / "target.db")
    target.put_tasks([store.task(store.task_ids("general")[5])])
    with pytest.raises(ImportFormatError) as err:
        import_jsonl(target, tmp_path / "bad.jsonl")
    assert [n for n, _ in err.value.problems] == [2, 3, 4, 5]
    assert "does not match" in err.value.problems[0][1]
    assert "payload" in err.value.problems[2][1]
    # Nothing was imported and what was there is still there.
    assert target.task_ids(accepted=None) == [store.task_ids("general")[5]]


def test_unknown_format(store: Store, tmp_path: Path) -> None:
    from envsynth.errors import ConfigError

    with pytest.raises(ConfigError, match="jsonl, parquet or swebench"):
        export(store, tmp_path / "x.csv", "csv", "general")  # type: ignore[arg-type]
    assert not (tmp_path / "x.csv").exists()


def test_hugging_face_datasets_loads_both_formats(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import datasets

    n = export(store, tmp_path / "g.parquet", "parquet", "general")
    export(store, tmp_path / "g.jsonl", "jsonl", "general")
    cache = str(tmp_path / "hf-cache")
    for builder, name in (("parquet", "g.parquet"), ("json", "g.jsonl")):
        ds = datasets.load_dataset(builder, data_files=str(tmp_path / name), split="train",
                                   cache_dir=cache)
        assert ds.num_rows == n and REQUIRED <= set(ds.column_names)
        assert orjson.loads(ds[0]["tools"])[0]["type"] == "function"
