"""The training recipe: stages run in order, each with its own trainable set, mode and loss.

DeepSeek-V3.2 introduces DSA by continued training of a dense model (seed 000, §4; seed
001, "Optimizer and schedule notes"); at our scale the dense model is trained first:

- `dense`: whole model but the indexer (unused in dense mode), dense attention, LM loss —
  the dense checkpoint DSA starts from. The indexer can only learn to find what the dense
  attention already attends to, so long-range retrieval has to be learnt here.
- `dense_warmup` (Stage A): every parameter frozen but the indexers', dense attention,
  indexer KL over all visible keys only; learning rate 1e-3 as in the report.
- `sparse` (Stage B): the whole model with top-k selection; LM loss for the main model,
  indexer KL over the selected set for the indexer, whose input is detached, so neither
  loss reaches the other's parameters.
- `sft`: as `sparse`, on the distilled trajectories (post-training keeps sparse attention).

Each stage has a fresh AdamW (linear warm-up, cosine decay to 10%); every step's batch is a
pure function of (seed, stage, step), and each finished stage is checkpointed, so a run
stopped at any point resumes from the last finished stage and ends bit-identical.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from envsynth.errors import ConfigError
from model.args import ModelArgs
from model.mla import AttentionMode
from model.tokenizer import Tokenizer
from model.training.checkpoint import checkpoint_extra, load_checkpoint, save_checkpoint
from model.training.data import DataConfig, TrainingData
from model.training.examples import Batch, collate
from model.training.losses import indexer_kl, lm_loss
from model.training.probe import AttentionProbe
from model.transformer import Transformer

StageKind = Literal["dense", "dense_warmup", "sparse", "sft"]
MODE: dict[StageKind, AttentionMode] = {
    "dense": "dense",
    "dense_warmup": "dense",
    "sparse": "sparse",
    "sft": "sparse",
}


class StageConfig(BaseModel):
    """One stage of the recipe.

    Attributes:
        kind: see the module docstring.
        steps: optimizer steps.
        lr: peak learning rate of the main model (of the indexer in `dense_warmup`).
        indexer_lr: peak learning rate of the indexers in `sparse` and `sft` (default `lr`).
        batch_size: retrieval sequences per step.
        sft_batch_size: SFT windows per step (they are longer than retrieval sequences).
        retrieval_fraction: share of steps drawing retrieval batches, the rest SFT; by
            default 1 for every kind but `sft`, 0 for `sft`.
        kl_weight: weight of the indexer KL in the summed loss (it reaches only the
            indexers, so this scales their learning rate under SGD, not under Adam).
        warmup_steps: linear learning-rate warm-up.
        grad_clip: max gradient norm per parameter group (0: none).
        weight_decay: AdamW decoupled weight decay.
    """

    model_config = ConfigDict(extra="forbid")

    kind: StageKind
    steps: int = Field(ge=0)
    lr: float = Field(gt=0)
    indexer_lr: float | None = Field(None, gt=0)
    batch_size: int = Field(16, ge=1)
    sft_batch_size: int = Field(4, ge=1)
    retrieval_fraction: float | None = Field(None, ge=0, le=1)
    kl_weight: float = Field(1.0, ge=0)
    warmup_steps: int = Field(10, ge=0)
    grad_clip: float = Field(1.0, ge=0)
    weight_decay: float = Field(0.0, ge=0)

    @model_validator(mode="after")
    def _default_mix(self) -> StageConfig:
        if self.retrieval_fraction is None:
            self.retrieval_fraction = 0.0 if self.kind == "sft" else 1.0
        return self


def default_stages() -> list[StageConfig]:
    """The CPU recipe of the first real run (about 15 minutes on one shared thread).

    The warm-up's learning rate is 1e-2, not the report's 1e-3: the report's steps hold
    16 × 128K tokens, ours 16K. Measured on this recipe's dense checkpoint, 40 warm-up
    steps at 1e-3 left the indexer KL on SFT data at 0.15 and sparse held-out SFT loss 23%
    above dense; 30 steps at 1e-2 brought the KL to 0.02 and the gap to 10%. The warm-up
    leans on SFT data, whose dense attention has structure to imitate.
    """
    return [
        StageConfig(kind="dense", steps=100, lr=3e-3, retrieval_fraction=0.5),
        StageConfig(kind="dense_warmup", steps=30, lr=1e-2, retrieval_fraction=0.25),
        StageConfig(kind="sparse", steps=40, lr=1e-3, retrieval_fraction=0.5),
        StageConfig(kind="sft", steps=16, lr=5e-4, retrieval_fraction=0.25),
    ]


class TrainConfig(BaseModel):
    """A whole training run.

    Attributes:
        model: the model's shapes; max_seq_len bounds inference prompts, not training data.
        data: the sources and held-out sets.
        stages: run in order.
        seed: seeds the initialization (data have their own seeds).
        threads: torch CPU threads.
        eval_batch_size: sequences per evaluation forward.
        parity_after_warmup: also report parity of the checkpoint each `dense_warmup`
            stage left (how well the indexer alone stands in for dense attention).
        device: where to train: "cpu", "cuda", "cuda:N", or "auto" (CUDA when present).
            The weights are initialized on the CPU whatever the device, so one seed gives
            one initial model; on CUDA the sparse stages run the Triton kernels.
    """

    model_config = ConfigDict(extra="forbid")

    model: ModelArgs = Field(default_factory=lambda: ModelArgs(max_seq_len=8192))
    data: DataConfig = Field(default_factory=DataConfig)
    stages: list[StageConfig] = Field(default_factory=default_stages)
    seed: int = 0
    threads: int = Field(1, ge=1)
    eval_batch_size: int = Field(16, ge=1)
    parity_after_warmup: bool = True
    device: str = "cpu"

    @field_validator("device")
    @classmethod
    def _known_device(cls, value: str) -> str:
        if value != "auto":
            try:
                kind = torch.device(value).type
            except RuntimeError:
                kind = ""
            if kind not in ("cpu", "cuda"):
                raise ValueError(f'device must be "cpu", "cuda", "cuda:N" or "auto", got {value!r}')
        return value

    def torch_device(self) -> torch.device:
        """The device to train on.

        Raises:
            ConfigError: CUDA was asked for on a machine without it.
        """
        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        device = torch.device(self.device)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ConfigError(f"device {self.device!r}: this machine has no CUDA device")
        return device


@dataclass(frozen=True)
class StepLog:
    """One optimizer step."""

    stage: int
    kind: StageKind
    step: int
    source: str
    loss: float
    lm: float | None
    kl: float | None
    lr: float
    seconds: float


@dataclass
class StageResult:
    """One finished stage: its per-step logs and wall time (zero if resumed)."""

    kind: StageKind
    steps: int
    seconds: float
    resumed: bool
    logs: list[StepLog] = field(default_factory=list)


def is_indexer(name: str) -> bool:
    """Whether a parameter name belongs to a lightning indexer."""
    return ".indexer." in name


def trainable(model: Transformer, kind: StageKind) -> tuple[list[torch.nn.Parameter], ...]:
    """(main, indexer) parameters `kind` trains; the rest get requires_grad=False."""
    main: list[torch.nn.Parameter] = []
    index: list[torch.nn.Parameter] = []
    for name, p in model.named_parameters():
        indexer = is_indexer(name)
        use = kind != "dense" if indexer else kind != "dense_warmup"
        p.requires_grad_(use)
        if use:
            (index if indexer else main).append(p)
    return main, index


def stage_loss(
    model: Transformer, batch: Batch, kind: StageKind
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """(total, lm, kl) of one batch; lm is None in `dense_warmup`, kl None in `dense`."""
    mode = MODE[kind]
    if kind == "dense":
        out = model(batch.tokens, mode=mode)
        lm = lm_loss(out.logits, batch.tokens, batch.targets)
        return lm, lm, None
    with AttentionProbe(model) as probe:
        out = model(batch.tokens, mode=mode)
    kl = torch.stack(
        [indexer_kl(a.target, a.index_logits, a.allowed, batch.valid) for a in probe.layers]
    ).mean()
    if kind == "dense_warmup":
        return kl, None, kl
    lm = lm_loss(out.logits, batch.tokens, batch.targets)
    return lm + kl, lm, kl


def _schedule(step: int, stage: StageConfig) -> float:
    if step < stage.warmup_steps:
        return (step + 1) / (stage.warmup_steps + 1)
    span = max(stage.steps - stage.warmup_steps, 1)
    progress = (step - stage.warmup_steps) / span
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))


def run_stage(
    model: Transformer,
    data: TrainingData,
    stage: StageConfig,
    index: int,
    on_step: Callable[[StepLog], None] | None = None,
) -> StageResult:
    """Train `model` in place for one stage."""
    main, index_params = trainable(model, stage.kind)
    groups = []
    if stage.kind == "dense_warmup":
        groups.append({"params": index_params, "lr": stage.lr})
    else:
        groups.append({"params": main, "lr": stage.lr})
        if index_params:
            groups.append({"params": index_params, "lr": stage.indexer_lr or stage.lr})
    opt = torch.optim.AdamW(groups, weight_decay=stage.weight_decay, betas=(0.9, 0.95))
    peaks = [g["lr"] for g in opt.param_groups]
    pad = Tokenizer.pad_id
    device = next(model.parameters()).device
    result = StageResult(stage.kind, stage.steps, 0.0, resumed=False)
    model.train()
    start = time.perf_counter()
    for step in range(stage.steps):
        t0 = time.perf_counter()
        scale = _schedule(step, stage)
        for g, peak in zip(opt.param_groups, peaks, strict=True):
            g["lr"] = peak * scale
        source = data.source(stage.retrieval_fraction or 0.0, index, step)
        size = stage.batch_size if source == "retrieval" else stage.sft_batch_size
        batch = collate(data.batch(source, index, step, size), pad).to(device)
        total, lm, kl = stage_loss(model, batch, stage.kind)
        opt.zero_grad(set_to_none=True)
        total.backward()
        if stage.grad_clip:
            for g in opt.param_groups:
                torch.nn.utils.clip_grad_norm_(g["params"], stage.grad_clip)
        opt.step()
        log = StepLog(
            stage=index,
            kind=stage.kind,
            step=step,
            source=source,
            loss=float(total.detach()),
            lm=None if lm is None else float(lm.detach()),
            kl=None if kl is None else float(kl.detach()),
            lr=peaks[0] * scale,
            seconds=time.perf_counter() - t0,
        )
        result.logs.append(log)
        if on_step is not None:
            on_step(log)
    result.seconds = time.perf_counter() - start
    for p in model.parameters():
        p.requires_grad_(True)
    model.eval()
    return result


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run with `n` torch CPU threads, restoring the previous count."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _same_run(config: object) -> object:
    # A run may resume on another device: where it runs is not what it computes.
    if isinstance(config, dict):
        return {k: v for k, v in config.items() if k != "device"}
    return config


def stage_path(out_dir: Path, index: int, kind: StageKind) -> Path:
    """Where stage `index`'s checkpoint goes."""
    return out_dir / f"stage-{index}-{kind}.safetensors"


def train(
    config: TrainConfig,
    data: TrainingData,
    out_dir: Path | None = None,
    *,
    resume: bool = False,
    on_step: Callable[[StepLog], None] | None = None,
) -> tuple[Transformer, list[StageResult]]:
    """Initialize a model from `config.seed` and run every stage in order.

    Args:
        config: the run.
        data: its data (`TrainingData.build(config.data)`).
        out_dir: where each finished stage's checkpoint is written (None: nowhere).
        resume: start after the last stage whose checkpoint is in `out_dir`.
        on_step: called after every optimizer step.

    Returns:
        The trained model (eval mode) and one result per stage.
    """
    device = config.torch_device()
    with torch_threads(config.threads):
        torch.manual_seed(config.seed)
        model = Transformer(config.model).to(device)
        results: list[StageResult] = []
        first = 0
        if resume and out_dir is not None:
            for i in reversed(range(len(config.stages))):
                path = stage_path(out_dir, i, config.stages[i].kind)
                if path.is_file():
                    if _same_run(checkpoint_extra(path).get("config")) != _same_run(
                        config.model_dump(mode="json")
                    ):
                        raise ConfigError(
                            f"{path} was written by a run with another config; give a fresh "
                            "output directory or run without resume"
                        )
                    model = load_checkpoint(path, expected_args=config.model, device=str(device))
                    first = i + 1
                    break
            results = [
                StageResult(s.kind, s.steps, 0.0, resumed=True) for s in config.stages[:first]
            ]
        for i in range(first, len(config.stages)):
            results.append(run_stage(model, data, config.stages[i], i, on_step))
            if out_dir is not None:
                save_checkpoint(
                    model,
                    stage_path(out_dir, i, config.stages[i].kind),
                    extra={"stage": i, "config": config.model_dump(mode="json")},
                )
        return model.eval(), results
