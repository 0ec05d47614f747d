"""GRPO from the gyms with a small MoE model: every sampled turn of a real General-v0
episode is recovered with its prompt re-rendered, and its training logprobs equal those
recorded at sampling; a run steps, clears the stale prefix cache, and moves nothing
when no group has a reward signal."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from envsynth.cli import app
from envsynth.errors import ConfigError
from envsynth.policy.baselines import RandomPolicy
from envsynth.rollout import EpisodeSpec, rollout
from envsynth.store import Store
from model import ModelArgs, Transformer
from model.agent import ModelPolicy
from model.training.checkpoint import load_checkpoint, save_checkpoint
from model.training.grpo import sequence_logprobs
from model.training.rl import GRPORunConfig, run_grpo, sequences_of, turn_sequences


def _policy() -> ModelPolicy:
    torch.manual_seed(0)
    model = Transformer(ModelArgs(n_layers=2, moe_layers=(1,), max_seq_len=8192, index_topk=16))
    return ModelPolicy(model, thinking=False, max_tokens=24, guided=True, context=600)


def test_sampled_turns_replay_with_the_logprobs_they_were_drawn_with(small_db: Path) -> None:
    store, policy = Store(small_db), _policy()
    tasks = {t.id: t for t in list(store.iter_tasks("general"))[:2]}
    specs = [
        EpisodeSpec({"task": t, "max_turns": 2}, seed=0, sample=g)
        for t in tasks.values()
        for g in range(2)
    ]
    trajectories = rollout("envsynth/General-v0", policy, specs)
    seqs = sequences_of(trajectories, tasks, policy)
    turns = sum(m.role == "assistant" for t in trajectories for m in t.messages)
    assert len(seqs) == turns >= 4
    assert {s.group for s in seqs} == set(tasks)
    for seq in seqs:
        got = sequence_logprobs(policy.model, seq)
        assert got.tolist() == pytest.approx(list(seq.logprobs), abs=2e-4)
        assert len(seq.prompt) <= 600 and all(len(r) == 1 for r in seq.routing)
    # Another policy's trajectory has no sampled tokens to learn from.
    played = rollout("envsynth/General-v0", RandomPolicy(), specs[:1])
    assert turn_sequences(played[0], tasks[played[0].task_id], policy) == []


def test_a_run_without_reward_signal_moves_nothing_and_drops_the_stale_cache(
    small_db: Path,
) -> None:
    policy = _policy()
    before = {k: v.clone() for k, v in policy.model.state_dict().items()}
    config = GRPORunConfig(steps=2, tasks=2, group=2, max_turns=2, lr=1e-3)
    logs = run_grpo(config, policy, Store(small_db))
    assert [r["step"] for r in logs] == [0, 1] and all(r["episodes"] == 4 for r in logs)
    assert all(r["turns"] >= 4 for r in logs)
    if all(r["mean_reward"] == 0 for r in logs):  # a random model solves none
        after = policy.model.state_dict()
        assert all(torch.equal(before[k], after[k]) for k in before)
        assert all(r["loss"] == 0 for r in logs)
    assert policy.prefix_cache is not None and len(policy.prefix_cache) == 0


def test_an_empty_dataset_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no accepted tasks"):
        run_grpo(GRPORunConfig(), _policy(), Store(tmp_path / "empty.db"))


def test_cli_writes_the_updated_checkpoint_and_the_step_log(small_db: Path, tmp_path: Path) -> None:
    start = tmp_path / "start.safetensors"
    save_checkpoint(_policy().model, start)
    out = tmp_path / "grpo"
    result = CliRunner().invoke(
        app,
        [
            "train",
            "grpo",
            "--db",
            str(small_db),
            "--checkpoint",
            str(start),
            "--out",
            str(out),
            "--steps",
            "1",
            "--tasks",
            "1",
            "--group",
            "2",
            "--max-turns",
            "1",
            "--max-tokens",
            "16",
        ],
    )
    assert result.exit_code == 0, result.output
    assert load_checkpoint(out / "model.safetensors").args == load_checkpoint(start).args
    assert '"mean_reward"' in (out / "grpo.json").read_text()
