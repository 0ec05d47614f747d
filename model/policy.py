"""`bundled`: the project's own DSA model as a Policy, from the weights shipped in the repo.

The weights are `model/weights/bundled.safetensors`, trained by `envsynth train run` (the
command and its report are in `data_cards/model.md`). Until that file exists the policy is not
available: `envsynth.policy.bundled_available()` says so, and pipelines fall back or skip the
stages that default to it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from envsynth.errors import ConfigError
from model.agent import ModelPolicy
from model.dispatch import Backend
from model.mla import AttentionMode
from model.training.checkpoint import load_checkpoint

WEIGHTS = Path(__file__).parent / "weights" / "bundled.safetensors"


def available() -> bool:
    """Whether the bundled weights are present."""
    return WEIGHTS.is_file()


# The tokens of a prompt the bundled model sees: it was trained on windows of 1,024 that
# end with the turn being written (see `BundledPolicy`).
DEFAULT_CONTEXT = 896


def default_context(weights: Path) -> int | None:
    """The context window to serve `weights` with: the bundled one's, else the whole prompt."""
    return DEFAULT_CONTEXT if weights.resolve() == WEIGHTS.resolve() else None


class BundledPolicy(ModelPolicy):
    """The bundled checkpoint behind the `ModelPolicy` interface.

    Args:
        weights: another checkpoint in the same format (default: the bundled one).
        mode: "sparse" (as trained) or "dense" attention.
        thinking: render prompts in thinking mode.
        top_k: top-k sampling cut (0 = none).
        backend: where the sparse attention runs (see `model.dispatch`).
        max_tokens: most tokens per turn. The distilled assistant turns are 59 tokens at
            the median and 97 at p95 (the longest, a bulk submission, 890); a model that
            rambles stops here, where on the CPU each token costs ~13 ms at 5K context.
        prefix_cache: sequences kept for prefix reuse (see `ModelPolicy`).
        guided: decode tool calls by the tools' schemas (see `ModelPolicy`). On by
            default: unguided, the bundled model writes JSON but invents tool names.
        context: the last tokens of a prompt the model sees (see `ModelPolicy`); None: all.
            896 by default: it was trained on windows of 1,024 tokens that end with the turn,
            and past that position (whole prompts run 2K–5K) it only ever called `submit`.
    """

    def __init__(
        self,
        weights: str | Path | None = None,
        *,
        mode: AttentionMode = "sparse",
        thinking: bool = False,
        top_k: int = 0,
        backend: Backend = "auto",
        max_tokens: int | None = 512,
        prefix_cache: int = 64,
        guided: bool = True,
        context: int | None = DEFAULT_CONTEXT,
    ):
        path = Path(weights) if weights is not None else WEIGHTS
        if not path.is_file():
            raise ConfigError(
                f"no bundled weights at {path}; train them with `envsynth train run` "
                "(see data_cards/model.md) or name another policy"
            )
        version = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
        super().__init__(
            load_checkpoint(path),
            name="bundled",
            version=version,
            thinking=thinking,
            top_k=top_k,
            mode=mode,
            backend=backend,
            max_tokens=max_tokens,
            prefix_cache=prefix_cache,
            guided=guided,
            context=context,
        )
