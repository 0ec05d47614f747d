"""The store against real SQLite files: idempotent upserts, resume after SIGKILL, bad URLs."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from envsynth.errors import NotFoundError, StoreError
from envsynth.store import Store
from pipelines.general.pipeline import GeneralConfig, run_general


def _rows(path: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(path) as con:
        return con.execute(sql).fetchall()


def test_rerun_is_idempotent(tmp_path: Path) -> None:
    store = Store(tmp_path / "a.db")
    cfg = GeneralConfig(envs=30, workers=1)
    run_general(cfg, store)
    first = _rows(tmp_path / "a.db", "select id, accepted, rejection from tasks order by id")
    run_general(cfg, store)  # every chunk is already done: nothing is redone or duplicated
    assert (
        _rows(tmp_path / "a.db", "select id, accepted, rejection from tasks order by id") == first
    )
    assert len(first) == len({r[0] for r in first}) > 0
    tasks = list(store.iter_tasks(dataset="general", accepted=None))
    store.put_tasks(tasks[:5], rejection=None)  # upsert of existing ids adds no row
    assert store.count_tasks("general", accepted=None) == len(first)


def test_killed_run_resumes_with_nothing_lost_or_duplicated(tmp_path: Path) -> None:
    envs = "400"
    clean = tmp_path / "clean.db"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "envsynth",
            "generate",
            "general",
            "--db",
            str(clean),
            "--envs",
            envs,
            "--workers",
            "1",
        ],
        check=True,
        capture_output=True,
    )
    killed = tmp_path / "killed.db"
    cmd = [
        sys.executable,
        "-m",
        "envsynth",
        "generate",
        "general",
        "--db",
        str(killed),
        "--envs",
        envs,
        "--workers",
        "1",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while time.time() < deadline:  # kill it once some, but not all, chunks are written
        time.sleep(0.05)
        if killed.exists():
            try:
                done = _rows(killed, "select count(*) from run_chunks")[0][0]
            except sqlite3.OperationalError:
                continue
            if done >= 2:
                break
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    partial = _rows(killed, "select count(*) from run_chunks")[0][0]
    assert 0 < partial < 10, "the kill should land mid-run"
    subprocess.run(cmd, check=True, capture_output=True)
    query = "select id, accepted, rejection from tasks order by id"
    assert _rows(killed, query) == _rows(clean, query)
    assert _rows(killed, "select count(*), count(distinct id) from environments") == _rows(
        clean, "select count(*), count(distinct id) from environments"
    )
    a, b = Store(killed), Store(clean)
    assert [r.model_dump(exclude={"seconds"}) for r in a.run_reports(a.runs()[0]["id"])] == [
        r.model_dump(exclude={"seconds"}) for r in b.run_reports(b.runs()[0]["id"])
    ]
    assert a.runs()[0]["status"] == "done"


def test_bad_urls_and_missing_records(tmp_path: Path) -> None:
    with pytest.raises(StoreError):
        Store("nosuchdialect://x/y")
    store = Store(tmp_path / "e.db")
    with pytest.raises(NotFoundError, match="no task"):
        store.task("t-missing")
    with pytest.raises(NotFoundError, match="no dataset"):
        store.dataset_config("nope")


def test_blobs_are_content_addressed(tmp_path: Path) -> None:
    store = Store(tmp_path / "b.db")
    digest = store.put_blob(b"log line\n")
    assert store.put_blob(b"log line\n") == digest
    assert store.get_blob(digest) == b"log line\n"
    assert (tmp_path / "b.db.blobs" / digest[:2] / digest).exists()


def test_iter_tasks_narrows_by_kind(store: Store) -> None:
    every = [t.id for t in store.iter_tasks(accepted=None)]
    assert every and {t.kind for t in store.iter_tasks(accepted=None)} == {"general"}
    assert [t.id for t in store.iter_tasks(accepted=None, kind="general")] == every
    assert list(store.iter_tasks(accepted=None, kind="code")) == []
