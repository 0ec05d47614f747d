"""Turn (family, variant, seed) into an environment and its integrity-checked tasks.

Pure functions of their inputs, so any environment regenerates alone and chunks of the
plan can run in worker processes.
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from envsynth.ids import canonical_json, content_hash
from envsynth.schema import GeneralTask, IntegrityCheck, Provenance, Task, ToolCall
from pipelines.general.episode import Episode, run_calls
from pipelines.general.family import Call, Family, TaskDraft, load_families, state_digest

PIPELINE = "general"
PIPELINE_VERSION = "1"
REQUIRED_PERTURBATIONS = ("constraint_broken", "wrong_value")
MAX_TURNS = 64
"""Default turn budget of a general episode; a reference solution must fit in it."""

SYSTEM_PROMPT = (
    "You are an operations agent working inside a software environment. Use the tools to "
    "inspect and change the environment's state. Follow the user's constraints exactly. When "
    "you are done, call `submit` (with your answer, if the task asks for one). Tool errors "
    "are shown to you; you may correct yourself and try again."
)


@dataclass(frozen=True)
class EnvPlan:
    """One environment to build: the `index`-th of the plan."""

    index: int
    family: str
    variant: str
    seed: int


@dataclass
class Candidate:
    """A task with the outcome of its integrity checks."""

    task: Task
    checks: list[IntegrityCheck]
    rejection: str | None = None


@dataclass
class BuiltEnvironment:
    plan: EnvPlan
    env_id: str
    toolset_id: str
    state: dict[str, Any]
    candidates: list[Candidate] = field(default_factory=list)
    no_task_levels: int = 0
    check_seconds: float = 0.0
    """Time spent solving and checking tasks (reference, no-op and perturbed runs)."""


def make_plan(envs: int, families: Sequence[str] | None, seed: int) -> list[EnvPlan]:
    """Spread `envs` environments round-robin over every (family, variant) pair."""
    registry = load_families()
    names = list(families) if families else list(registry)
    pairs = [(n, v.name) for n in names for v in registry.get(n).variants]
    return [EnvPlan(i, *pairs[i % len(pairs)], seed=seed + i) for i in range(envs)]


def to_tool_calls(calls: Sequence[Call]) -> list[ToolCall]:
    return [
        ToolCall(id=f"call_{i}", name=c.name, arguments=canonical_json(dict(c.arguments)).decode())
        for i, c in enumerate(calls)
    ]


def build_environment(
    plan: EnvPlan, dataset: str, overrides: dict[str, dict[str, Any]] | None = None
) -> BuiltEnvironment:
    """Generate one environment's state and one task per difficulty level, each checked."""
    family = load_families().get(plan.family)
    variant = family.variant(plan.variant)
    config = family.config_for(variant, (overrides or {}).get(plan.family))
    rng = random.Random(f"{plan.family}/{plan.variant}/{plan.seed}")
    state = family.generate_state(rng, config)
    specs = family.tool_specs(variant)
    toolset_id = "ts-" + content_hash([s.model_dump() for s in specs])[:16]
    env_id = "e-" + content_hash([plan.family, family.version, plan.variant, config, state])[:24]
    built = BuiltEnvironment(plan, env_id, toolset_id, state)
    for level in range(family.levels):
        draft = family.generate_task(rng, state, config, variant, level)
        if draft is None:
            built.no_task_levels += 1
            continue
        t0 = time.perf_counter()
        built.candidates.append(
            _check(family, plan, dataset, env_id, config.model_dump(), state, draft, rng, level)
        )
        built.check_seconds += time.perf_counter() - t0
    return built


def _check(
    family: Family,
    plan: EnvPlan,
    dataset: str,
    env_id: str,
    config: dict[str, Any],
    state: dict[str, Any],
    draft: TaskDraft,
    rng: random.Random,
    level: int,
) -> Candidate:
    variant = family.variant(plan.variant)
    reference = family.solve(state, draft, variant)
    goal = dict(draft.goal)
    payload = GeneralTask(
        family=family.name,
        family_version=family.version,
        variant=variant.name,
        config=config,
        state=state,
        goal=goal,
        reference=to_tool_calls(reference),
        knobs={**draft.knobs, "level": level},
    )
    if draft.hash_tables is not None:
        # Graded by the final state: replay the reference on a fresh copy to learn its hash.
        episode = Episode(payload)
        for call in reference:
            episode.call(call.name, call.arguments)
        goal["hash_tables"] = list(draft.hash_tables)
        goal["state_hash"] = state_digest(episode.state, draft.hash_tables)
        payload = payload.model_copy(update={"goal": goal})
    task = Task.build(
        kind="general",
        family=family.name,
        env_id=env_id,
        dataset=dataset,
        instruction=draft.instruction,
        system_prompt=SYSTEM_PROMPT,
        tools=family.tool_specs(variant),
        payload=payload,
        provenance=Provenance(
            pipeline=PIPELINE,
            version=PIPELINE_VERSION,
            seed=plan.seed,
            sources=[f"synthesized:{family.name}/{variant.name}"],
            licenses=[family.license],
        ),
    )
    perturbed = family.perturb(rng, state, draft, reference, variant)
    runs: list[tuple[str, bool, list[Call]]] = [
        ("reference", True, reference),
        ("noop", False, [Call("submit")]),
    ]
    runs += [(f"perturbed:{name}", False, calls) for name, calls in perturbed.items()]
    checks = []
    for name, expect_pass, calls in runs:
        verdict = run_calls(payload, calls)
        checks.append(
            IntegrityCheck(
                check=name, expect_pass=expect_pass, reward=verdict.reward, reason=verdict.reason
            )
        )
    return Candidate(task, checks, _rejection(checks, perturbed, reference))


def _rejection(
    checks: list[IntegrityCheck], perturbed: dict[str, list[Call]], reference: list[Call]
) -> str | None:
    if len(reference) > MAX_TURNS:
        return "reference_exceeds_turn_budget"
    missing = [p for p in REQUIRED_PERTURBATIONS if p not in perturbed]
    if missing:
        return f"missing_perturbation:{missing[0]}"
    for c in checks:
        if not c.ok:
            return "reference_failed" if c.check == "reference" else f"{c.check}_passed"
    return None
