"""`envsynth train`: run a training config, write the checkpoint and a JSON report.

    envsynth train run --config train.yaml --out runs/tiny
    envsynth train config > train.yaml          # the default config, to edit
    envsynth train grpo --db envsynth.db --out runs/grpo   # RL from the gyms (GRPO)

The report holds the config, the data sizes, every step's losses, per-stage wall time and
the dense-vs-sparse parity on the held-out sets; `parity.md` is its table.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from pydantic import ValidationError
from rich.console import Console

from envsynth.errors import ConfigError
from model.training.checkpoint import load_checkpoint, save_checkpoint
from model.training.data import TrainingData
from model.training.loop import (
    StageResult,
    StepLog,
    TrainConfig,
    stage_path,
    torch_threads,
    train,
)
from model.training.parity import ParityReport, parity

train_app = typer.Typer(help="Train the bundled DSA model (dense, warm-up, sparse, SFT).")
console = Console(stderr=True)

CHECKPOINT = "model.safetensors"
REPORT = "report.json"


def load_config(path: Path | None, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """A TrainConfig from a YAML or JSON file (defaults where absent) and top-level overrides."""
    raw: dict[str, Any] = {}
    if path is not None:
        try:
            loaded = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError) as e:
            raise ConfigError(f"cannot read training config {path}: {e}") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path} must hold a mapping of TrainConfig fields")
        raw = loaded
    raw.update({k: v for k, v in (overrides or {}).items() if v is not None})
    try:
        return TrainConfig.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(f"invalid training config: {e}") from None


def summarize(logs: list[StepLog], window: int = 10) -> dict[str, dict[str, float | None]]:
    """Per source, the mean LM loss and KL of the first and the last `window` steps.

    Sources differ in loss scale (retrieval sits near ln 10 until it is learnt), so one
    step's loss says little; each is averaged over its own steps.
    """

    def mean(part: list[StepLog], key: str) -> float | None:
        values = [v for log in part if (v := getattr(log, key)) is not None]
        return sum(values) / len(values) if values else None

    out: dict[str, dict[str, float | None]] = {}
    for source in sorted({log.source for log in logs}):
        own = [log for log in logs if log.source == source]
        first, last = own[:window], own[-window:]
        out[source] = {
            "steps": float(len(own)),
            "lm_first": mean(first, "lm"),
            "lm_last": mean(last, "lm"),
            "kl_first": mean(first, "kl"),
            "kl_last": mean(last, "kl"),
        }
    return out


def build_report(
    config: TrainConfig,
    data: TrainingData,
    results: list[StageResult],
    report: ParityReport,
    seconds: dict[str, float],
) -> dict[str, Any]:
    """The JSON report of a run."""
    return {
        "config": config.model_dump(mode="json"),
        "data": {
            "sft_train_examples": len(data.sft_train),
            "sft_envs": data.sft_envs,
            "heldout_examples": {k: len(v) for k, v in data.heldout.items()},
        },
        "stages": [
            {
                "kind": r.kind,
                "steps": r.steps,
                "seconds": r.seconds,
                "resumed": r.resumed,
                "summary": summarize(r.logs),
                "logs": [asdict(log) for log in r.logs],
            }
            for r in results
        ],
        "parity": report.model_dump(mode="json"),
        "parity_within_target": report.within_target,
        "seconds": seconds,
    }


def run_training(
    config: TrainConfig, out_dir: Path, *, resume: bool = False, verbose: bool = True
) -> dict[str, Any]:
    """Build the data, train, evaluate parity, and write the checkpoint and report.

    Returns:
        The report written to out_dir/report.json.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    data = TrainingData.build(config.data)
    t1 = time.perf_counter()

    def on_step(log: StepLog) -> None:
        if verbose and (log.step % 10 == 0 or log.step == config.stages[log.stage].steps - 1):
            parts = [f"loss {log.loss:.4f}"]
            parts += [f"lm {log.lm:.4f}"] if log.lm is not None else []
            parts += [f"kl {log.kl:.5f}"] if log.kl is not None else []
            console.print(
                f"stage {log.stage} {log.kind} step {log.step} ({log.source}) "
                + " ".join(parts)
                + f" ({log.seconds:.2f}s)"
            )

    stages = out_dir / "stages"
    model, results = train(config, data, stages, resume=resume, on_step=on_step)
    t2 = time.perf_counter()
    with torch_threads(config.threads):
        report = parity(model, data.heldout, batch_size=config.eval_batch_size)
        after_warmup = {
            f"stage-{i}": parity(
                load_checkpoint(
                    stage_path(stages, i, s.kind),
                    expected_args=config.model,
                    device=str(config.torch_device()),
                ),
                data.heldout,
                batch_size=config.eval_batch_size,
            )
            for i, s in enumerate(config.stages)
            if s.kind == "dense_warmup" and config.parity_after_warmup
        }
    t3 = time.perf_counter()
    seconds = {"data": t1 - t0, "train": t2 - t1, "parity": t3 - t2, "total": t3 - t0}
    save_checkpoint(model, out_dir / CHECKPOINT, extra={"config": config.model_dump(mode="json")})
    full = build_report(config, data, results, report, seconds)
    full["parity_after_warmup"] = {k: r.model_dump(mode="json") for k, r in after_warmup.items()}
    (out_dir / REPORT).write_text(json.dumps(full, indent=1))
    tables = [f"## final model\n\n{report.markdown()}"]
    tables += [f"## after the warm-up ({k})\n\n{r.markdown()}" for k, r in after_warmup.items()]
    (out_dir / "parity.md").write_text("\n\n".join(tables) + "\n")
    return full


@train_app.command("run")
def run_command(
    out: Annotated[Path, typer.Option("--out", help="output directory")],
    config: Annotated[
        Path | None, typer.Option(help="YAML or JSON TrainConfig (default: the CPU recipe)")
    ] = None,
    threads: Annotated[int | None, typer.Option(help="torch CPU threads")] = None,
    device: Annotated[
        str | None, typer.Option(help="cpu, cuda, cuda:N or auto (default: the config's, cpu)")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="initialization seed")] = None,
    resume: Annotated[
        bool, typer.Option(help="continue after the last finished stage in --out")
    ] = False,
) -> None:
    """Train, then write OUT/model.safetensors, OUT/report.json and OUT/parity.md."""
    cfg = load_config(config, {"threads": threads, "seed": seed, "device": device})
    report = run_training(cfg, out, resume=resume)
    for stage in report["stages"]:
        console.print(f"{stage['kind']}: {stage['steps']} steps in {stage['seconds']:.1f}s")
        for source, s in stage["summary"].items():
            parts = [
                f"{name} {s[f'{name}_first']:.4f} → {s[f'{name}_last']:.4f}"
                for name in ("lm", "kl")
                if s[f"{name}_first"] is not None
            ]
            console.print(f"  {source} ({s['steps']:.0f} steps): " + ", ".join(parts))
    console.print((out / "parity.md").read_text())
    console.print(f"wrote {out / CHECKPOINT} and {out / REPORT}")


@train_app.command("grpo")
def grpo_command(
    out: Annotated[Path, typer.Option("--out", help="output directory")],
    db: Annotated[str | None, typer.Option("--db", help="the store holding the tasks")] = None,
    dataset: Annotated[str, typer.Option(help="dataset whose tasks are played")] = "general",
    checkpoint: Annotated[
        Path | None, typer.Option(help="weights to start from (default: the bundled ones)")
    ] = None,
    steps: Annotated[int, typer.Option(help="optimizer steps, each on fresh groups")] = 4,
    tasks: Annotated[int, typer.Option(help="tasks per step")] = 2,
    group: Annotated[int, typer.Option(help="episodes per task (G)")] = 4,
    max_turns: Annotated[int, typer.Option(help="turn budget of an episode")] = 6,
    max_tokens: Annotated[int, typer.Option(help="most tokens per turn")] = 128,
    lr: Annotated[float, typer.Option(help="AdamW learning rate")] = 1e-5,
    kl_weight: Annotated[float, typer.Option(help="β of the KL to the starting model")] = 0.0,
    seed: Annotated[int, typer.Option(help="task draw and episode seeds")] = 0,
) -> None:
    """GRPO (V3.2's variant) from the gyms; writes OUT/model.safetensors and OUT/grpo.json."""
    from envsynth.store import Store
    from model.policy import WEIGHTS, BundledPolicy, default_context
    from model.training.grpo import GRPOConfig
    from model.training.rl import GRPORunConfig, run_grpo

    weights = checkpoint or WEIGHTS
    policy = BundledPolicy(weights, max_tokens=max_tokens, context=default_context(weights))
    config = GRPORunConfig(
        dataset=dataset,
        steps=steps,
        tasks=tasks,
        group=group,
        max_turns=max_turns,
        lr=lr,
        seed=seed,
        grpo=GRPOConfig(kl_weight=kl_weight),
    )

    def show(row: dict[str, Any]) -> None:
        console.print(
            f"step {row['step']}: {row['episodes']} episodes, {row['turns']} turns, mean reward "
            f"{row['mean_reward']:.3f}, loss {row['loss']:.5f}, ratio {row['mean_ratio']:.4f}, "
            f"masked {row['masked_sequences']} ({row['rollout_s']:.1f}s + {row['update_s']:.1f}s)"
        )

    logs = run_grpo(config, policy, Store(db), on_step=show)
    out.mkdir(parents=True, exist_ok=True)
    save_checkpoint(policy.model, out / CHECKPOINT, extra={"grpo": config.model_dump(mode="json")})
    (out / "grpo.json").write_text(
        json.dumps({"config": config.model_dump(mode="json"), "steps": logs}, indent=1)
    )
    console.print(f"wrote {out / CHECKPOINT} and {out / 'grpo.json'}")


@train_app.command("config")
def config_command() -> None:
    """Print the default training config as YAML."""
    typer.echo(yaml.safe_dump(TrainConfig().model_dump(mode="json"), sort_keys=False))


if __name__ == "__main__":
    train_app()
