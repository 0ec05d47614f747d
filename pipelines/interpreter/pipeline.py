"""The interpreter pipeline: generate → reference run in a kernel → needs code → store.

- **generate**: problem i comes from family i mod |families|, drawn with a seed made of the
  run's seed and i, so a problem is a pure function of (seed, i).
- **reference**: the reference solution runs in a fresh Jupyter kernel holding the task's
  files (`session.KernelSession`, what the agent gets). It must finish, and its last
  printed line must be the answer the family computed on its own (`pipelines.answers`).
- **needs_code**: solving without the tool must fail. An answer written in the problem
  text, or a small integer a guess hits often, is refused; with `no_tool_policy`, that
  policy answers `no_tool_samples` times with no interpreter, and one right answer refuses
  the problem.

Work goes in chunks; each chunk's tasks (refused ones with their reason) and stage reports
are written in one transaction and marked done, so a killed run resumes where it stopped.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from envsynth.ids import content_hash
from envsynth.policy import make_policy
from envsynth.policy.base import PolicyRequest, generate
from envsynth.schema import (
    InterpreterProblem,
    Message,
    Provenance,
    SamplingParams,
    StageReport,
    Task,
)
from envsynth.store import Store
from pipelines.answers import answer_of, check_answer, parse_number
from pipelines.interpreter.problems import FAMILIES, Problem, get_family
from pipelines.interpreter.session import TOOLS, KernelSession, last_line
from sandbox.kernel import Isolation

PIPELINE, PIPELINE_VERSION = "interpreter", "1"
SYSTEM_PROMPT = (
    "You solve problems by running Python. Call `python` with code to run in a persistent "
    "Jupyter kernel (the task's files are in its working directory), read its output, and "
    "call `answer` once with the final value."
)
# An integer answer this small is hit by a guess too often to prove that code was needed.
GUESSABLE = 10

Progress = Callable[[str, int, int], None]
"""progress(stage, done, total)"""


class InterpreterConfig(BaseModel):
    """What defines an interpreter dataset; all but `chunk_size` and `isolation` make the run id."""

    model_config = ConfigDict(extra="forbid")

    dataset: str = "interpreter"
    problems: int = Field(60, ge=1)
    seed: int = 0
    families: list[str] | None = None
    no_tool_policy: str | None = None
    no_tool_samples: int = Field(4, ge=1)
    policy_options: dict[str, Any] = Field(default_factory=dict)
    chunk_size: int = Field(12, ge=1)
    isolation: Isolation = "auto"

    def defining(self) -> dict[str, Any]:
        return self.model_dump(exclude={"chunk_size", "isolation"})


def draw(config: InterpreterConfig, index: int) -> Problem:
    """Problem `index` of the run."""
    names = config.families or sorted(FAMILIES)
    name = names[index % len(names)]
    return get_family(name)(random.Random(f"{config.seed}:{index}:{name}"))


def make_task(problem: Problem, dataset: str, seed: int) -> Task:
    """The Task of a problem; its id hashes what defines it."""
    payload = InterpreterProblem(
        problem=problem.text,
        answer=problem.answer,
        reference_code=problem.reference_code,
        extra={"files": problem.files, "tolerance": problem.tolerance},
    )
    return Task.build(
        kind="interpreter",
        family=problem.family,
        env_id="interp-" + content_hash([problem.family, problem.text, problem.files])[:16],
        dataset=dataset,
        instruction=problem.text,
        system_prompt=SYSTEM_PROMPT,
        tools=TOOLS,
        payload=payload,
        provenance=Provenance(
            pipeline=PIPELINE,
            version=PIPELINE_VERSION,
            seed=seed,
            sources=[f"generated:{problem.family}"],
            licenses=["Apache-2.0"],
        ),
    )


def reference_rejection(task: Task, isolation: Isolation = "auto") -> str | None:
    """Why the task's reference solution does not check out in a kernel, or None."""
    payload = task.payload
    assert isinstance(payload, InterpreterProblem)
    with KernelSession(payload.extra.get("files"), isolation=isolation) as session:
        result = session.run(payload.reference_code)
    if result.timed_out:
        return "reference_timeout"
    if result.exit_code != 0:
        return "reference_error"
    verdict = check_answer(last_line(result), payload.answer, payload.extra.get("tolerance", 0))
    return None if verdict.reward == 1.0 else "reference_mismatch"


def guess_rejection(task: Task) -> str | None:
    """Why the answer can be had without running code, judged from the text alone."""
    payload = task.payload
    assert isinstance(payload, InterpreterProblem)
    answer = payload.answer.strip()
    if re.search(rf"(?<![\w.]){re.escape(answer)}(?![\w]|\.\d)", payload.problem):
        return "answer_in_text"
    value = parse_number(answer)
    if value is not None and value == int(value) and abs(value) <= GUESSABLE:
        return "guessable"
    return None


def no_tool_rejections(
    tasks: Sequence[Task], policy_name: str, samples: int, options: dict[str, Any]
) -> list[str | None]:
    """Per task, "solvable_without_code" when the policy answers right without a kernel."""
    policy = make_policy(policy_name, **options)
    answer_only = [t for t in TOOLS if t.name == "answer"]
    requests = [
        PolicyRequest(
            messages=[
                Message(role="system", content=task.system_prompt),
                Message(role="user", content=task.instruction),
            ],
            tools=answer_only,
            sampling=SamplingParams(temperature=1.0, seed=s),
            task=task,
            tool_choice="answer",
        )
        for task in tasks
        for s in range(samples)
    ]
    outputs = generate(policy, requests)
    out: list[str | None] = []
    for i, task in enumerate(tasks):
        payload = task.payload
        assert isinstance(payload, InterpreterProblem)
        tolerance = payload.extra.get("tolerance", 0)
        right = False
        for output in outputs[i * samples : (i + 1) * samples]:
            for call in output.message.tool_calls or ():
                given = answer_of(call.arguments)
                right |= check_answer(given, payload.answer, tolerance).reward == 1.0
        out.append("solvable_without_code" if right else None)
    return out


def _build_chunk(
    config: InterpreterConfig, indices: Sequence[int]
) -> tuple[list[tuple[Task, str | None]], list[StageReport]]:
    gen, ref, needs = (StageReport(stage=s) for s in ("generate", "reference", "needs_code"))
    t0 = time.perf_counter()
    tasks = [make_task(draw(config, i), config.dataset, config.seed) for i in indices]
    gen.items_in = gen.items_out = len(tasks)
    t1 = time.perf_counter()
    verdicts: list[str | None] = []
    for task in tasks:
        why = reference_rejection(task, config.isolation)
        verdicts.append(why)
        ref.items_in += 1
        if why:
            ref.reject(why)
        else:
            ref.items_out += 1
    t2 = time.perf_counter()
    alive = [i for i, v in enumerate(verdicts) if v is None]
    for i in alive:
        verdicts[i] = guess_rejection(tasks[i])
    if config.no_tool_policy:
        still = [i for i in alive if verdicts[i] is None]
        found = no_tool_rejections(
            [tasks[i] for i in still],
            config.no_tool_policy,
            config.no_tool_samples,
            config.policy_options,
        )
        for i, why in zip(still, found, strict=True):
            verdicts[i] = why
    needs.items_in = len(alive)
    for i in alive:
        if verdicts[i]:
            needs.reject(str(verdicts[i]))
        else:
            needs.items_out += 1
    t3 = time.perf_counter()
    gen.seconds, ref.seconds, needs.seconds = t1 - t0, t2 - t1, t3 - t2
    return list(zip(tasks, verdicts, strict=True)), [gen, ref, needs]


def run_interpreter(
    config: InterpreterConfig, store: Store, progress: Progress | None = None
) -> str:
    """Run (or resume) the pipeline; returns the run id.

    Raises:
        UnknownIdError: a family name that does not exist, before any work.
    """
    for name in config.families or []:
        get_family(name)
    run_id = "run-interpreter-" + content_hash(config.defining())[:16]
    store.ensure_dataset(config.dataset, "interpreter", config.defining())
    store.start_run(run_id, PIPELINE, config.dataset, config.model_dump())
    chunks = [
        list(range(i, min(i + config.chunk_size, config.problems)))
        for i in range(0, config.problems, config.chunk_size)
    ]
    done = store.done_chunks(run_id)
    finished = sum(_chunk_id(c) in done for c in chunks)
    if progress:
        progress("interpreter", finished, len(chunks))
    for chunk in chunks:
        if _chunk_id(chunk) in done:
            continue
        tasks, reports = _build_chunk(config, chunk)
        store.write_chunk(run_id, _chunk_id(chunk), reports, tasks=tasks)
        finished += 1
        if progress:
            progress("interpreter", finished, len(chunks))
    store.finish_run(run_id)
    return run_id


def _chunk_id(indices: Sequence[int]) -> str:
    return f"problems:{indices[0]}-{indices[-1]}"
