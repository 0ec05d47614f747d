"""Replaying stored trajectories: identical when nothing changed, the first divergence otherwise."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

from envsynth.policy import make_policy
from envsynth.replay import replay
from envsynth.rollout import EpisodeSpec, rollout
from envsynth.schema import Message
from envsynth.store import Store


def _trajectories(db: Path, policy: str, n: int = 4):  # type: ignore[no-untyped-def]
    specs = [EpisodeSpec({"dataset": "general", "db": str(db)}, seed=s) for s in range(n)]
    return rollout("envsynth/General-v0", make_policy(policy), specs)


def test_identical_replay(small_db: Path) -> None:
    store = Store(small_db)
    for traj in _trajectories(small_db, "random") + _trajectories(small_db, "reference"):
        report = replay(traj, store.task(traj.task_id))
        assert report.identical, report.divergence


def test_first_divergence_is_found(small_db: Path) -> None:
    store = Store(small_db)
    traj = _trajectories(small_db, "reference", 1)[0]
    tool_indices = [i for i, m in enumerate(traj.messages) if m.role == "tool"]
    k = tool_indices[0]
    forged = traj.model_copy(deep=True)
    forged.messages[k] = Message(
        role="tool", content="forged output", tool_call_id=traj.messages[k].tool_call_id
    )
    report = replay(forged, store.task(traj.task_id))
    assert not report.identical and report.divergence is not None
    assert report.divergence.index == k
    assert (
        report.divergence.expected is not None
        and report.divergence.expected.content == "forged output"
    )


def test_replay_cli(small_db: Path, tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    with sqlite3.connect(small_db) as src, sqlite3.connect(db) as dst:
        src.backup(dst)  # a consistent copy, WAL included
    store = Store(db)
    traj = _trajectories(db, "reference", 1)[0]
    store.put_trajectories([traj])
    run = subprocess.run(
        [sys.executable, "-m", "envsynth", "replay", traj.id, "--db", str(db)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0 and "identical" in run.stdout, run.stderr
    bad = traj.model_copy(deep=True)
    bad.messages[2] = bad.messages[2].model_copy(update={"tool_calls": None, "content": "hm"})
    bad.id = "tr-forged"
    store.put_trajectories([bad])
    run = subprocess.run(
        [sys.executable, "-m", "envsynth", "replay", "tr-forged", "--db", str(db)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 1 and "diverges at message 3" in run.stdout, run.stdout + run.stderr
