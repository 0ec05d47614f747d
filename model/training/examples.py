"""One training example (tokens, which of them are targets, what counts as a correct answer)
and the padded batch the loop and the evaluation read.

Every data source — the retrieval task, the distilled trajectories — yields `Example`s, so
losses and metrics never need to know where a sequence came from.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from envsynth.errors import ConfigError


@dataclass(frozen=True)
class Example:
    """A token sequence with its loss mask.

    Attributes:
        tokens: the ids, first to last.
        targets: per token, whether it is a training target (predicted from the tokens
            before it); the first token never is.
        spans: half-open [start, end) token ranges that form one answer each (a retrieved
            value, an assistant turn); exact match asks every target token of a span right.
        group: what the example was drawn from (an environment id, "retrieval"); the
            train/held-out split never puts one group on both sides.
    """

    tokens: tuple[int, ...]
    targets: tuple[bool, ...]
    spans: tuple[tuple[int, int], ...]
    group: str

    def __post_init__(self) -> None:
        if len(self.tokens) != len(self.targets) or not self.tokens:
            raise ConfigError(
                f"an example needs one target flag per token and at least one token; got "
                f"{len(self.tokens)} tokens and {len(self.targets)} flags"
            )
        if self.targets[0]:
            raise ConfigError("an example's first token cannot be a target; nothing precedes it")
        for start, end in self.spans:
            if not 0 < start < end <= len(self.tokens):
                raise ConfigError(f"span [{start}, {end}) is outside 1…{len(self.tokens)}")


@dataclass(frozen=True)
class Batch:
    """Examples right-padded to one length.

    Attributes:
        tokens: (B, T) int64, padded with `pad_id`.
        targets: (B, T) bool, False at padding.
        valid: (B, T) bool, True at real tokens.
        spans: per row, the example's spans.
    """

    tokens: torch.Tensor
    targets: torch.Tensor
    valid: torch.Tensor
    spans: tuple[tuple[tuple[int, int], ...], ...]

    def to(self, device: torch.device | str) -> Batch:
        """The batch with its tensors on `device` (itself when they are there already)."""
        return Batch(
            self.tokens.to(device), self.targets.to(device), self.valid.to(device), self.spans
        )


def collate(examples: Sequence[Example], pad_id: int) -> Batch:
    """Right-pad `examples` into one batch (causal attention never lets padding leak left)."""
    if not examples:
        raise ConfigError("cannot collate an empty batch; give at least one example")
    width = max(len(e.tokens) for e in examples)
    tokens = torch.full((len(examples), width), pad_id, dtype=torch.long)
    targets = torch.zeros(len(examples), width, dtype=torch.bool)
    valid = torch.zeros(len(examples), width, dtype=torch.bool)
    for row, e in enumerate(examples):
        n = len(e.tokens)
        tokens[row, :n] = torch.tensor(e.tokens, dtype=torch.long)
        targets[row, :n] = torch.tensor(e.targets, dtype=torch.bool)
        valid[row, :n] = True
    return Batch(tokens, targets, valid, tuple(e.spans for e in examples))
