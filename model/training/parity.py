"""Dense-vs-sparse parity: the same weights evaluated in both attention modes.

For every held-out set: loss over the target tokens, next-token accuracy over them, and
exact match over answer spans (a retrieved value, an assistant turn) under teacher
forcing — every token of the span the argmax. The issue's target: sparse held-out loss
within 2% of dense.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict

from model.mla import AttentionMode
from model.tokenizer import Tokenizer
from model.training.examples import Example, collate
from model.transformer import Transformer

LOSS_GAP_TARGET = 0.02


class SplitMetrics(BaseModel):
    """One held-out set in one mode.

    Attributes:
        loss: mean cross-entropy (nats) over target tokens.
        token_accuracy: share of target tokens whose argmax prediction is right.
        exact_match: share of spans with every target token right.
        tokens: target tokens counted.
        spans: spans counted.
    """

    model_config = ConfigDict(extra="forbid")

    loss: float
    token_accuracy: float
    exact_match: float
    tokens: int
    spans: int


class ParityReport(BaseModel):
    """Both modes on every held-out set, and the relative loss gap (b - a) / a per set.

    Attributes:
        modes: the two modes (a, b), usually ("dense", "sparse").
        metrics: per set, the metrics in mode a and in mode b.
        loss_gap: per set, (loss_b - loss_a) / loss_a.
        target: the largest gap that counts as parity.
    """

    model_config = ConfigDict(extra="forbid")

    modes: tuple[AttentionMode, AttentionMode]
    metrics: dict[str, tuple[SplitMetrics, SplitMetrics]]
    loss_gap: dict[str, float]
    target: float = LOSS_GAP_TARGET

    @property
    def within_target(self) -> bool:
        """Whether every set's loss gap is at most `target`."""
        return all(gap <= self.target for gap in self.loss_gap.values())

    def markdown(self) -> str:
        """The report as a markdown table."""
        a, b = self.modes
        lines = [
            f"| set | loss {a} | loss {b} | gap | token acc {a} | token acc {b} | "
            f"exact {a} | exact {b} |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for name, (x, y) in self.metrics.items():
            lines.append(
                f"| {name} | {x.loss:.4f} | {y.loss:.4f} | {self.loss_gap[name]:+.2%} | "
                f"{x.token_accuracy:.3f} | {y.token_accuracy:.3f} | "
                f"{x.exact_match:.3f} | {y.exact_match:.3f} |"
            )
        return "\n".join(lines)


@torch.no_grad()
def evaluate(
    model: Transformer, examples: Sequence[Example], mode: AttentionMode, batch_size: int = 16
) -> SplitMetrics:
    """Loss, token accuracy and span exact match of `examples` in `mode`."""
    model.eval()
    device = next(model.parameters()).device
    loss_sum, right, tokens, spans_right, spans = 0.0, 0, 0, 0, 0
    for i in range(0, len(examples), batch_size):
        batch = collate(examples[i : i + batch_size], Tokenizer.pad_id).to(device)
        logits = model(batch.tokens, mode=mode).logits[:, :-1]
        gold = batch.tokens[:, 1:]
        mask = batch.targets[:, 1:]
        ce = F.cross_entropy(logits.flatten(0, 1), gold.flatten(), reduction="none")
        correct = logits.argmax(-1) == gold
        loss_sum += float(ce[mask.flatten()].sum())
        right += int(correct[mask].sum())
        tokens += int(mask.sum())
        for row, row_spans in enumerate(batch.spans):
            for start, end in row_spans:
                # Token t is predicted at position t-1 (the shifted index).
                span_mask = mask[row, start - 1 : end - 1]
                spans += 1
                spans_right += bool(correct[row, start - 1 : end - 1][span_mask].all())
    return SplitMetrics(
        loss=loss_sum / max(tokens, 1),
        token_accuracy=right / max(tokens, 1),
        exact_match=spans_right / max(spans, 1),
        tokens=tokens,
        spans=spans,
    )


def parity(
    model: Transformer,
    heldout: Mapping[str, Sequence[Example]],
    modes: tuple[AttentionMode, AttentionMode] = ("dense", "sparse"),
    batch_size: int = 16,
) -> ParityReport:
    """Evaluate every held-out set in both modes and compare their losses."""
    metrics = {
        name: (
            evaluate(model, examples, modes[0], batch_size),
            evaluate(model, examples, modes[1], batch_size),
        )
        for name, examples in heldout.items()
    }
    gap = {name: (b.loss - a.loss) / a.loss if a.loss else 0.0 for name, (a, b) in metrics.items()}
    return ParityReport(modes=modes, metrics=metrics, loss_gap=gap)
