"""SFT examples distilled from the general pipeline's reference solvers.

"Specialist distillation, in small" (seed 000, §5.1): the specialists are the families'
reference solvers. Environments are synthesized in-process (`build_environment`, the
pipeline's own generator and integrity checks), each accepted task is played by the
`reference` policy through `envsynth/General-v0` — the same gym and observations a model
policy sees — and the trajectory is rendered with the chat template and the byte-level
tokenizer. Only assistant tokens are targets, the ones `ModelPolicy(thinking=False)`
generates: after the generation prompt `<|assistant|></think>`, through `<|end|>`. The
reference solutions carry no reasoning, so the model is trained for non-thinking mode.

Rendered trajectories run 3K–8K tokens (the system prompt with its tool schemas alone is
1.4K–4.8K), more than a CPU step can afford. `max_len` cuts each trajectory into windows
that end at an assistant turn's `<|end|>`, taken from the end backwards so that every
assistant turn is a target in exactly one window; a window keeps the system turn at its
head when that fits in half of it (`keep_system`), and otherwise is the plain left-truncated
tail. With `max_len` ≥ the trajectory (e.g. 8192 on a GPU) a trajectory is one example.

The split is by environment: held-out environments, drawn by the seed, never appear in
training.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

from envsynth.chat_template import END, ROLE_TAGS, THINK_CLOSE
from envsynth.errors import ConfigError
from envsynth.policy.baselines import ReferencePolicy
from envsynth.rollout import EpisodeSpec, rollout
from envsynth.schema import Task
from model.tokenizer import SPECIAL_IDS, Tokenizer
from model.training.examples import Example

ENV_ID = "envsynth/General-v0"
_ASSISTANT, _END, _THINK_CLOSE = (
    SPECIAL_IDS[ROLE_TAGS["assistant"]],
    SPECIAL_IDS[END],
    SPECIAL_IDS[THINK_CLOSE],
)
_SYSTEM = SPECIAL_IDS[ROLE_TAGS["system"]]


class DistillConfig(BaseModel):
    """Which environments to synthesize and how to cut their trajectories.

    Attributes:
        envs: environments to synthesize (round-robin over families and variants).
        heldout_envs: of those, how many are held out (never trained on).
        families: restrict to these families (default: all).
        seed: base seed of the environments and of the split.
        max_len: longest example in tokens (see the module docstring).
        keep_system: keep the system turn at the head of a window when it fits in half.
    """

    model_config = ConfigDict(extra="forbid")

    envs: int = Field(24, ge=2)
    heldout_envs: int = Field(6, ge=1)
    families: list[str] | None = None
    seed: int = 0
    max_len: int = Field(1024, ge=16)
    keep_system: bool = True


@dataclass(frozen=True)
class DistillSplit:
    """Train and held-out examples, and the environments each side came from."""

    train: list[Example]
    heldout: list[Example]
    train_envs: frozenset[str]
    heldout_envs: frozenset[str]
    failed_references: int


def reference_tasks(config: DistillConfig) -> list[Task]:
    """The accepted tasks of `config.envs` freshly synthesized environments, in plan order."""
    # model/ sits beside pipelines/, not above it (DESIGN §3): the synthesizer is loaded only
    # when distillation data is asked for, as the CLI loads other floors.
    from pipelines.general.synthesize import build_environment, make_plan

    tasks = []
    for plan in make_plan(config.envs, config.families, config.seed):
        built = build_environment(plan, dataset="distill")
        tasks += [c.task for c in built.candidates if c.rejection is None]
    return tasks


def split_by_environment(
    tasks: Sequence[Task], heldout_envs: int, seed: int
) -> tuple[list[Task], list[Task]]:
    """Hold out `heldout_envs` whole environments, drawn by `seed`; the rest is training."""
    envs = sorted({t.env_id for t in tasks})
    if not 0 < heldout_envs < len(envs):
        raise ConfigError(
            f"cannot hold out {heldout_envs} of {len(envs)} environments; keep at least one "
            "on each side (raise envs or lower heldout_envs)"
        )
    held = set(random.Random(f"distill-split/{seed}").sample(envs, heldout_envs))
    return [t for t in tasks if t.env_id not in held], [t for t in tasks if t.env_id in held]


def assistant_targets(ids: Sequence[int]) -> list[bool]:
    """Which ids `ModelPolicy(thinking=False)` would generate: after each `<|assistant|>`
    and the `</think>` of the non-thinking prompt, through the turn's `<|end|>`.

    A turn whose `<|assistant|>` tag lies outside `ids` has no targets.
    """
    targets = [False] * len(ids)
    inside = False
    for i, tok in enumerate(ids):
        if tok == _ASSISTANT:
            inside = True
        elif inside and not (tok == _THINK_CLOSE and ids[i - 1] == _ASSISTANT):
            targets[i] = True
            inside = tok != _END
    return targets


def spans_of(targets: Sequence[bool]) -> tuple[tuple[int, int], ...]:
    """The maximal runs of True in `targets`, as half-open ranges."""
    spans, start = [], None
    for i, t in enumerate([*targets, False]):
        if t and start is None:
            start = i
        elif not t and start is not None:
            spans.append((start, i))
            start = None
    return tuple(spans)


def _turns(ids: Sequence[int]) -> list[tuple[int, int]]:
    # (position of <|assistant|>, one past its <|end|>) of every complete assistant turn.
    turns, tag = [], None
    for i, tok in enumerate(ids):
        if tok == _ASSISTANT:
            tag = i
        elif tok == _END and tag is not None:
            turns.append((tag, i + 1))
            tag = None
    return turns


def windows(ids: Sequence[int], max_len: int, keep_system: bool, group: str) -> list[Example]:
    """Cut one rendered trajectory into examples of at most `max_len` tokens (module doc).

    Windows end at an assistant turn's `<|end|>` and are taken from the last turn
    backwards; the next window ends at the last turn whose tag the previous one cut off.
    """
    head = _system_head(ids) if keep_system else 0
    if head > max_len // 2:
        head = 0
    remaining = _turns(ids)
    out: list[Example] = []
    while remaining:
        end = remaining[-1][1]
        start = max(0, end - max_len) if not head else max(0, end - (max_len - head))
        window = list(ids[:end]) if start <= head else [*ids[:head], *ids[start:end]]
        if start <= head:
            start = 0
        mask = assistant_targets(window)
        if any(mask):
            out.append(Example(tuple(window), tuple(mask), spans_of(mask), group))
        remaining = [t for t in remaining if t[0] < start and t[1] < end]
    return out[::-1]


def _system_head(ids: Sequence[int]) -> int:
    # BOS, <|system|> … <|end|>: the length of the head, or 0 without a system turn.
    if len(ids) < 2 or ids[1] != _SYSTEM:
        return 0
    for i in range(2, len(ids)):
        if ids[i] == _END:
            return i + 1
    return 0


def distill_examples(tasks: Sequence[Task], config: DistillConfig) -> tuple[list[Example], int]:
    """Play `tasks` with the reference policy and cut their trajectories into examples.

    Returns:
        The examples, and how many trajectories were dropped because the reference failed.
    """
    if not tasks:
        return [], 0
    episodes = [EpisodeSpec({"task": t}, seed=0) for t in tasks]
    trajectories = rollout(ENV_ID, ReferencePolicy(), episodes)
    tok = Tokenizer()
    examples: list[Example] = []
    failed = 0
    for task, traj in zip(tasks, trajectories, strict=True):
        if traj.verdict is None or not traj.verdict.passed:
            failed += 1
            continue
        ids = tok.encode_chat(
            traj.messages, task.tools, thinking=False, add_generation_prompt=False
        )
        examples += windows(ids, config.max_len, config.keep_system, group=task.env_id)
    return examples, failed


def distill_split(config: DistillConfig) -> DistillSplit:
    """Synthesize, split by environment, and distill both sides."""
    train_tasks, heldout_tasks = split_by_environment(
        reference_tasks(config), config.heldout_envs, config.seed
    )
    train, failed_train = distill_examples(train_tasks, config)
    heldout, failed_heldout = distill_examples(heldout_tasks, config)
    return DistillSplit(
        train,
        heldout,
        frozenset(t.env_id for t in train_tasks),
        frozenset(t.env_id for t in heldout_tasks),
        failed_train + failed_heldout,
    )
