"""The data of one training run: where each step's batch comes from, and the held-out sets.

Two sources: the retrieval task (an endless seeded stream; the held-out items come from a
different split name, so never from the training stream) and the distilled trajectories
(a fixed list split by environment). A step's batch is a pure function of the seed, the
stage and the step, so a run — or a run resumed at a stage boundary — sees the same data.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from envsynth.errors import ConfigError
from model.training.distill import DistillConfig, distill_split
from model.training.examples import Example
from model.training.retrieval import RetrievalConfig, retrieval_examples

Source = Literal["retrieval", "sft"]


class DataConfig(BaseModel):
    """Both sources and the size of the held-out sets.

    Attributes:
        seed: seed of the retrieval streams (the distillation has its own, `sft.seed`).
        retrieval: the long-range retrieval sequences.
        retrieval_near: the short-range control set (None: none); evaluated, and trained on
            only when `near_fraction` asks for it.
        near_fraction: share of the retrieval training batches drawn with `retrieval_near`'s
            shapes: copying from a few tokens back is learnt first, the far lookup builds
            on it (0: every batch is long-range).
        heldout_retrieval: held-out retrieval sequences per retrieval set.
        sft: the distilled trajectories (None: no SFT data; stages must not ask for it).
        heldout_sft: at most this many held-out SFT examples are evaluated.
    """

    model_config = ConfigDict(extra="forbid")

    seed: int = 0
    retrieval: RetrievalConfig = Field(default_factory=RetrievalConfig)
    retrieval_near: RetrievalConfig | None = Field(
        default_factory=lambda: RetrievalConfig(n_queries=4, min_distance=8, max_distance=64)
    )
    near_fraction: float = Field(0.0, ge=0, le=1)
    heldout_retrieval: int = Field(32, ge=1)
    sft: DistillConfig | None = Field(default_factory=DistillConfig)
    heldout_sft: int = Field(32, ge=1)

    @model_validator(mode="after")
    def _near_needs_its_shapes(self) -> DataConfig:
        if self.near_fraction and self.retrieval_near is None:
            raise ConfigError("near_fraction trains on retrieval_near, which is None; set it")
        return self


@dataclass(frozen=True)
class TrainingData:
    """The materialized data of a run (the retrieval training stream is generated lazily)."""

    config: DataConfig
    sft_train: list[Example]
    heldout: dict[str, list[Example]]
    sft_envs: dict[str, int]

    @classmethod
    def build(cls, config: DataConfig) -> TrainingData:
        """Synthesize and distill the SFT data and draw the held-out sets."""
        heldout = {
            "retrieval": retrieval_examples(
                config.retrieval, config.seed, "heldout", 0, config.heldout_retrieval
            )
        }
        if config.retrieval_near is not None:
            heldout["retrieval_near"] = retrieval_examples(
                config.retrieval_near, config.seed, "heldout", 0, config.heldout_retrieval
            )
        sft_train: list[Example] = []
        envs = {"train": 0, "heldout": 0, "failed_references": 0}
        if config.sft is not None:
            split = distill_split(config.sft)
            sft_train = split.train
            rng = random.Random(f"heldout-sft/{config.sft.seed}")
            n = min(config.heldout_sft, len(split.heldout))
            picked = sorted(rng.sample(range(len(split.heldout)), n))
            heldout["sft"] = [split.heldout[i] for i in picked]
            envs = {
                "train": len(split.train_envs),
                "heldout": len(split.heldout_envs),
                "failed_references": split.failed_references,
            }
            if not sft_train:
                raise ConfigError("the distillation produced no training examples; raise sft.envs")
        return cls(config, sft_train, heldout, envs)

    def batch(self, source: Source, stage: int, step: int, size: int) -> list[Example]:
        """The examples of step `step` of stage `stage` drawn from `source`."""
        if source == "retrieval":
            start = (stage * 1_000_003 + step) * size
            shapes = self.config.retrieval
            near = random.Random(f"near/{self.config.seed}/{stage}/{step}").random()
            if self.config.retrieval_near is not None and near < self.config.near_fraction:
                shapes = self.config.retrieval_near
            return retrieval_examples(shapes, self.config.seed, "train", start, size)
        if not self.sft_train:
            raise ConfigError("a stage asks for SFT data but data.sft is None; set data.sft")
        rng = random.Random(f"sft-batch/{self.config.seed}/{stage}/{step}")
        return [self.sft_train[rng.randrange(len(self.sft_train))] for _ in range(size)]

    def source(self, retrieval_fraction: float, stage: int, step: int) -> Source:
        """Which source step `step` of stage `stage` draws from."""
        draw = random.Random(f"source/{self.config.seed}/{stage}/{step}").random()
        return "retrieval" if draw < retrieval_fraction else "sft"
