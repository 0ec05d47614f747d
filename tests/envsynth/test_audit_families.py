"""An audit of some families draws the same tasks a whole audit would, and names a wrong one."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from envsynth.audit import run_audit
from envsynth.errors import UnknownIdError
from envsynth.policy import make_policy
from envsynth.store import Store


def test_a_family_filter_keeps_the_whole_audits_draw(store: Store) -> None:
    policy = make_policy("reference")
    whole = run_audit(store, "general", policy, 1, per_family=2, seed=3)
    some = run_audit(
        store, "general", policy, 1, per_family=2, seed=3, families=["retail_ops", "itinerary"]
    )
    assert set(some.per_family) == {"retail_ops", "itinerary"}
    family = {t.id: t.family for t in store.iter_tasks(dataset="general", accepted=True)}
    expected = {t for t in whole.per_task if family[t] in {"retail_ops", "itinerary"}}
    assert set(some.per_task) == expected and len(expected) == 4
    assert some.id != whole.id


def test_an_unknown_family_is_named_with_a_suggestion(store: Store) -> None:
    with pytest.raises(UnknownIdError, match="Did you mean 'retail_ops'"):
        run_audit(store, "general", make_policy("reference"), 1, per_family=1, families=["retail"])


def test_the_command_line_takes_a_comma_list(small_db: Path, tmp_path: Path) -> None:
    def audit(families: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "envsynth", "audit", "--db", str(small_db), "--policy",
             "reference", "--samples", "1", "--per-family", "1", "--families", families,
             "--out", str(tmp_path)],
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip

    ok = audit("payroll,inventory")
    assert ok.returncode == 0, ok.stderr
    rows = [line.split("|")[1].strip() for line in ok.stdout.splitlines() if line.startswith("| ")]
    assert rows == ["family", "---", "inventory", "payroll"]
    bad = audit("payrol")
    assert bad.returncode != 0 and "unknown family" in bad.stderr and "payroll" in bad.stderr
