"""The general pipeline at its default size: the counts the dataset promises."""

from __future__ import annotations

from pathlib import Path

import pytest

from envsynth.policy import make_policy
from envsynth.rollout import estimate_difficulty
from envsynth.store import Store
from pipelines.general.family import load_families
from pipelines.general.pipeline import GeneralConfig, run_general
from pipelines.passk_filter import PassKConfig


def test_registry_offers_enough_families_and_toolsets() -> None:
    families = load_families()
    assert len(families) >= 24
    toolsets = {
        tuple(t.model_dump_json() for t in fam.tool_specs(v))
        for _, fam in families.items()
        for v in fam.variants
    }
    assert len(toolsets) >= 100


@pytest.mark.slow
def test_default_run_meets_the_promised_counts(tmp_path: Path) -> None:
    store = Store(tmp_path / "default.db")
    run_id = run_general(GeneralConfig(), store)
    envs, toolsets = store.count_environments("general")
    assert envs >= 1800 and toolsets >= 100
    assert store.count_tasks("general") >= 4400
    reports = {r.stage: r for r in store.run_reports(run_id)}
    assert reports["integrity"].items_out == store.count_tasks("general")
    assert reports["integrity"].items_in == store.count_tasks("general", accepted=None)
    # Every accepted task's reference solves it through gymnasium.make; a no-op never does.
    sample = [store.task(t) for t in store.task_ids("general")[::15]]
    ref = estimate_difficulty(make_policy("reference"), sample, 1, [1])
    assert all(d.pass_at[1] == 1.0 for d in ref.values())
    noop = estimate_difficulty(make_policy("noop"), sample, 1, [1])
    assert all(d.pass_at[1] == 0.0 for d in noop.values())


def test_passk_filter_keeps_only_solved_tasks(tmp_path: Path) -> None:
    store = Store(tmp_path / "p.db")
    run_id = run_general(
        GeneralConfig(
            envs=40,
            workers=1,
            families=["retail_ops", "itinerary"],
            passk=PassKConfig(policy="reference", k=2),
        ),
        store,
    )
    passk = next(r for r in store.run_reports(run_id) if r.stage == "passk")
    assert passk.items_in == passk.items_out == store.count_tasks("general") > 0
    task = store.task(store.task_ids("general")[0])
    assert task.difficulty is not None and task.difficulty.pass_at[2] == 1.0

    cut = Store(tmp_path / "n.db")
    run_id = run_general(
        GeneralConfig(
            envs=40, workers=1, families=["retail_ops"], passk=PassKConfig(policy="noop", k=3)
        ),
        cut,
    )
    passk = next(r for r in cut.run_reports(run_id) if r.stage == "passk")
    assert passk.items_out == 0 and passk.rejections == {"passk_zero": passk.items_in}
    assert cut.count_tasks("general") == 0
    assert cut.rejections("general")["passk_zero"] == passk.items_in
