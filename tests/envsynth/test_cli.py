"""The `envsynth` command line, run as a user runs it (a subprocess per command)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml
from PIL import Image

from envsynth.store import Store


def envsynth(*args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "envsynth", *args], capture_output=True, text=True, timeout=300
    )
    if ok:
        assert result.returncode == 0, result.stderr
    return result


def test_main_job_end_to_end(tmp_path: Path) -> None:
    db, out = str(tmp_path / "e.db"), tmp_path / "out"
    gen = envsynth(
        "generate",
        "general",
        "--db",
        db,
        "--envs",
        "60",
        "--families",
        "retail_ops,itinerary",
        "--dataset",
        "mini",
    )
    store = Store(db)
    accepted = store.count_tasks("mini")
    assert f"{accepted} accepted tasks, 60 environments" in gen.stdout
    envsynth(
        "export",
        "--db",
        db,
        "--format",
        "parquet",
        "--out",
        str(out / "m.parquet"),
        "--dataset",
        "mini",
    )
    assert pq.read_table(out / "m.parquet").num_rows == accepted
    audit = envsynth(
        "audit",
        "--db",
        db,
        "--dataset",
        "mini",
        "--policy",
        "reference",
        "--samples",
        "2",
        "--keep-trajectories",
        "--out",
        str(out),
    )
    assert "| retail_ops |" in audit.stdout and "| itinerary |" in audit.stdout
    assert f"Tasks with pass@2 > 0: {accepted}/{accepted}" in audit.stdout
    audited = Store(db).trajectories(limit=10 * accepted)
    assert len(audited) == 2 * accepted and all(t.verdict and t.verdict.passed for t in audited)
    with Image.open(out / "audit-mini.png") as png:
        assert png.size[0] > 500
    envsynth("card", "--db", db, "--dataset", "mini", "--out", str(out / "card.md"))
    card = (out / "card.md").read_text()
    header = yaml.safe_load(card.split("---")[1])
    assert (
        header["license"] == "apache-2.0" and "reinforcement-learning" in header["task_categories"]
    )
    report = {r.stage: r for r in store.run_reports(store.runs("mini")[0]["id"])}
    integrity = report["integrity"]
    assert "passk" not in report  # the filter runs only when its policy is named
    assert f"| integrity | {integrity.items_in} | {integrity.items_out} |" in card
    assert f"{accepted}/{accepted} tasks have pass@2 > 0" in card
    listing = envsynth("list", "tasks", "--db", db, "--dataset", "mini", "--limit", "3")
    first = store.task_ids("mini")[0]
    assert first in listing.stdout
    shown = envsynth("show", first, "--db", db)
    assert '"check": "perturbed:wrong_value"' in shown.stdout
    roll = envsynth(
        "rollout", "--policy", "reference", "--episodes", "3", "--db", db, "--dataset", "mini"
    )
    assert "mean reward 1.000" in roll.stdout
    # Trajectory ids are content hashes: an episode identical to an audited one (same task,
    # seed and policy) is stored once.
    assert 2 * accepted < Store(db).count_trajectories() <= 2 * accepted + 3


@pytest.mark.parametrize(
    "args,message",
    [
        (
            ["generate", "general", "--families", "retail_opz", "--envs", "3"],
            "Did you mean 'retail_ops'",
        ),
        (["generate", "general", "--envs", "0"], "envs"),
        (["rollout", "--policy", "randm"], "Did you mean 'random'"),
        (["list", "gizmos"], "cannot list 'gizmos'"),
        (["show", "t-missing"], "no task 't-missing'"),
    ],
)
def test_bad_input_gets_a_clear_error(tmp_path: Path, args: list[str], message: str) -> None:
    result = envsynth(*args, "--db", str(tmp_path / "x.db"), ok=False)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr


def test_wrong_family_config_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "overrides.json"
    bad.write_text('{"retail_ops": {"customers": -3}}')
    result = envsynth(
        "generate",
        "general",
        "--db",
        str(tmp_path / "y.db"),
        "--envs",
        "3",
        "--config",
        str(bad),
        ok=False,
    )
    assert result.returncode == 2 and "invalid config for family retail_ops" in result.stderr
    assert Store(tmp_path / "y.db").count_tasks(accepted=None) == 0
