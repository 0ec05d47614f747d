"""Exports to JSONL, Parquet and SWE-bench JSONL, and import of JSONL back into a store.

One row per accepted task. `tools` (a list of OpenAI function schemas) and `payload` are
JSON text: their JSON Schemas differ from task to task, and a column of heterogeneous
nested structs is something neither Arrow nor `datasets` can type. Everything else is a
plain column, so `datasets.load_dataset("json"|"parquet", …)` and pyarrow read the files
as they are.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import ValidationError

from envsynth.errors import ConfigError, ImportFormatError
from envsynth.ids import content_hash
from envsynth.schema import CodeInstance, Task
from envsynth.store import Store

Format = Literal["jsonl", "parquet", "swebench"]

SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("kind", pa.string()),
        ("family", pa.string()),
        ("env_id", pa.string()),
        ("dataset", pa.string()),
        ("instruction", pa.string()),
        ("system_prompt", pa.string()),
        ("tools", pa.string()),
        ("payload", pa.string()),
        ("provenance", pa.string()),
        ("difficulty", pa.string()),
        ("pass_at_1", pa.float64()),
    ]
)


def task_row(task: Task) -> dict[str, Any]:
    d = task.difficulty
    return {
        "id": task.id,
        "kind": task.kind,
        "family": task.family,
        "env_id": task.env_id,
        "dataset": task.dataset,
        "instruction": task.instruction,
        "system_prompt": task.system_prompt,
        "tools": orjson.dumps([t.openai_schema() for t in task.tools]).decode(),
        "payload": task.payload.model_dump_json(),
        "provenance": task.provenance.model_dump_json(),
        "difficulty": d.model_dump_json() if d else None,
        "pass_at_1": d.pass_at.get(1) if d else None,
    }


def row_task(row: dict[str, Any]) -> Task:
    """Inverse of `task_row`; raises `ValueError`/`ValidationError` on a malformed row."""
    tools = [
        {
            "name": t["function"]["name"],
            "description": t["function"]["description"],
            "parameters": t["function"]["parameters"],
        }
        for t in orjson.loads(row["tools"])
    ]
    return Task.model_validate(
        {
            "id": row["id"],
            "kind": row["kind"],
            "family": row["family"],
            "env_id": row["env_id"],
            "dataset": row["dataset"],
            "instruction": row["instruction"],
            "system_prompt": row["system_prompt"],
            "tools": tools,
            "payload": orjson.loads(row["payload"]),
            "provenance": orjson.loads(row["provenance"]),
            "difficulty": orjson.loads(row["difficulty"]) if row.get("difficulty") else None,
        }
    )


def swebench_row(task: Task) -> dict[str, Any]:
    """An accepted code task as a SWE-bench instance, plus envsynth's own fields.

    `FAIL_TO_PASS` / `PASS_TO_PASS` are JSON-encoded lists of test ids, as in SWE-bench's
    published datasets; `environment_setup_commit` falls back to the base commit. Ours:
    `envsynth_task_id`, `image` (the instance image), `env_image`, `recipe` (the set-up
    recipe, as JSON text) and `recipe_hash`.
    """
    payload = task.payload
    if not isinstance(payload, CodeInstance):
        raise ConfigError(f"task {task.id} is a {task.kind} task; SWE-bench rows are code tasks")
    extra = payload.extra
    recipe = extra.get("recipe") or {}
    return {
        "instance_id": extra.get("instance_id") or task.id,
        "repo": payload.repo,
        "base_commit": payload.base_commit,
        "patch": payload.patch,
        "test_patch": payload.test_patch,
        "problem_statement": payload.problem_statement,
        "hints_text": extra.get("hints_text", ""),
        "created_at": extra.get("created_at", ""),
        "version": extra.get("version", ""),
        "FAIL_TO_PASS": orjson.dumps(payload.fail_to_pass).decode(),
        "PASS_TO_PASS": orjson.dumps(payload.pass_to_pass).decode(),
        "environment_setup_commit": extra.get("environment_setup_commit") or payload.base_commit,
        "envsynth_task_id": task.id,
        "image": extra.get("image", ""),
        "env_image": extra.get("env_image", ""),
        "recipe": orjson.dumps(recipe, option=orjson.OPT_SORT_KEYS).decode(),
        "recipe_hash": content_hash(recipe) if recipe else "",
    }


def _rows(store: Store, dataset: str | None, fmt: Format = "jsonl") -> Iterator[dict[str, Any]]:
    kind = "code" if fmt == "swebench" else None
    for task in store.iter_tasks(dataset=dataset, accepted=True):
        if kind is None:
            yield task_row(task)
        elif task.kind == kind:
            yield swebench_row(task)


def export(store: Store, out: str | Path, fmt: Format, dataset: str | None = None) -> int:
    """Write accepted tasks to `out`; returns the number of rows. Written to a temp file first."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".partial")
    n = 0
    if fmt in ("jsonl", "swebench"):
        with tmp.open("wb") as f:
            for row in _rows(store, dataset, fmt):
                f.write(orjson.dumps(row) + b"\n")
                n += 1
    elif fmt == "parquet":
        with pq.ParquetWriter(tmp, SCHEMA) as writer:
            batch: list[dict[str, Any]] = []
            for row in _rows(store, dataset):
                batch.append(row)
                if len(batch) == 1000:
                    writer.write_table(pa.Table.from_pylist(batch, SCHEMA))
                    n, batch = n + len(batch), []
            if batch:
                writer.write_table(pa.Table.from_pylist(batch, SCHEMA))
                n += len(batch)
    else:
        raise ConfigError(f"unknown export format {fmt!r}; use jsonl, parquet or swebench")
    tmp.replace(out)
    return n


def import_jsonl(store: Store, path: str | Path, dataset: str | None = None) -> int:
    """Import an exported JSONL file. Every line is checked first; one bad line imports nothing.

    Raises:
        ImportFormatError: with the number and problem of every bad line.
    """
    tasks: list[Task] = []
    problems: list[tuple[int, str]] = []
    with Path(path).open("rb") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = orjson.loads(line)
                if not isinstance(row, dict):
                    raise ValueError("a line must be a JSON object")
                task = row_task(row)
                if Task.build(**task.model_dump(exclude={"id"})).id != task.id:
                    raise ValueError(f"id {task.id} does not match the task's content (edited?)")
            except orjson.JSONDecodeError as e:
                problems.append((n, f"not JSON ({e})"))
            except KeyError as e:
                problems.append((n, f"missing field {e}"))
            except ValidationError as e:
                err = e.errors()[0]
                problems.append((n, f"{'.'.join(map(str, err['loc']))}: {err['msg']}"))
            except (ValueError, TypeError) as e:
                problems.append((n, str(e)))
            else:
                tasks.append(task.model_copy(update={"dataset": dataset}) if dataset else task)
    if problems:
        raise ImportFormatError(str(path), problems)
    for name in sorted({t.dataset for t in tasks}):
        store.ensure_dataset(name, tasks[0].kind, {"imported_from": str(path)}, overwrite=False)
    return store.put_tasks(tasks)
