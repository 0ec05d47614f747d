"""`envsynth train run` end to end on a tiny config: checkpoint, report and parity table."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from typer.testing import CliRunner

from model.training.checkpoint import load_checkpoint
from model.training.cli import load_config, train_app
from model.training.loop import TrainConfig

TINY = {
    "model": {
        "d_model": 32,
        "n_layers": 2,
        "n_heads": 2,
        "q_lora_rank": 16,
        "kv_lora_rank": 16,
        "qk_nope_head_dim": 8,
        "qk_rope_head_dim": 8,
        "v_head_dim": 8,
        "inter_dim": 32,
        "index_n_heads": 2,
        "index_head_dim": 16,
        "index_topk": 8,
        "n_routed_experts": 2,
        "n_activated_experts": 1,
        "moe_inter_dim": 16,
        "moe_layers": [1],
        "max_seq_len": 1024,
    },
    "data": {
        "retrieval": {"seq_len": 48, "n_queries": 1, "min_distance": 16},
        "retrieval_near": {"seq_len": 48, "n_queries": 1, "min_distance": 4, "max_distance": 8},
        "heldout_retrieval": 4,
        "sft": {"envs": 4, "heldout_envs": 1, "max_len": 256},
        "heldout_sft": 4,
    },
    "stages": [
        {"kind": "dense", "steps": 2, "lr": 1e-3, "batch_size": 2},
        {"kind": "dense_warmup", "steps": 2, "lr": 1e-3, "batch_size": 2},
        {"kind": "sparse", "steps": 2, "lr": 1e-3, "batch_size": 2},
        {"kind": "sft", "steps": 2, "lr": 1e-3, "batch_size": 2},
    ],
}


def test_run_writes_a_loadable_checkpoint_and_a_report(tmp_path: Path) -> None:
    config = tmp_path / "train.yaml"
    config.write_text(yaml.safe_dump(TINY))
    out = tmp_path / "run"

    result = CliRunner().invoke(
        train_app, ["run", "--config", str(config), "--out", str(out), "--seed", "3"]
    )

    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    assert report["config"]["seed"] == 3
    assert [s["kind"] for s in report["stages"]] == ["dense", "dense_warmup", "sparse", "sft"]
    assert all(len(s["logs"]) == 2 and s["seconds"] > 0 for s in report["stages"])
    assert report["stages"][1]["summary"]["retrieval"]["lm_first"] is None  # warm-up: KL only
    assert report["stages"][1]["summary"]["retrieval"]["kl_first"] > 0
    assert {s["source"] for s in report["stages"][3]["logs"]} == {"sft"}
    assert set(report["parity"]["metrics"]) == {"retrieval", "retrieval_near", "sft"}
    assert report["data"]["sft_envs"]["heldout"] == 1
    model = load_checkpoint(out / "model.safetensors")
    assert model.args.index_topk == 8
    tables = (out / "parity.md").read_text()
    assert tables.startswith("## final model") and "## after the warm-up (stage-1)" in tables
    assert set(report["parity_after_warmup"]) == {"stage-1"}


def test_config_prints_the_defaults_and_load_config_reads_them_back(tmp_path: Path) -> None:
    result = CliRunner().invoke(train_app, ["config"])
    path = tmp_path / "default.yaml"
    path.write_text(result.output)

    assert load_config(path) == TrainConfig()
    assert load_config(path, {"threads": 2, "seed": None}).threads == 2


def test_a_bad_config_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"stages": [{"kind": "sparse", "steps": 1}]}))

    result = CliRunner().invoke(train_app, ["run", "--config", str(path), "--out", str(tmp_path)])

    assert result.exit_code != 0
    assert "invalid training config" in str(result.exception)
