"""The search pipeline: world → construct → verify truth → answer agents → verify candidates.

- **construct**: questions chained from long-tail entities of the seeded world
  (`questions.construct`), a pure function of the run's seed.
- **truth**: the verification agent confirms each answer with search, in two passes
  (`verify.truth_rejection`).
- **candidates**: the built-in answer agents (`agents.AGENTS`) and every policy named in
  `answer_policies` (each through `envsynth/Search-v0`, `answer_samples` episodes a
  question, as an RL user would run it) answer; a question is kept only when every
  candidate is wrong (`verify.candidates_rejection`).

Chunks of questions are written in one transaction each and marked done, so a killed run
resumes where it stopped; refused questions are stored with their reason.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from envsynth.ids import content_hash
from envsynth.policy import make_policy
from envsynth.rollout import EpisodeSpec, rollout
from envsynth.schema import Provenance, SearchQA, StageReport, Task, ToolSpec, Trajectory
from envsynth.store import Store
from pipelines.answers import answer_of
from pipelines.search_qa.agents import AGENTS
from pipelines.search_qa.index import world_index
from pipelines.search_qa.questions import QA, construct
from pipelines.search_qa.verify import candidates_rejection, truth_rejection
from pipelines.search_qa.world import build_world

PIPELINE, PIPELINE_VERSION = "search_qa", "1"
ENV_ID = "envsynth/Search-v0"
SYSTEM_PROMPT = (
    "You answer questions about a private encyclopedia that only its search tool reaches. "
    "Call `search` with words to find pages, `open_page` with a doc_id to read one, and "
    "`answer` once with the exact name or year."
)
TOOLS = [
    ToolSpec(
        name="search",
        description="The best pages for a query (doc_id, title, snippet), best first.",
        parameters={
            "type": "object",
            "properties": {
                "query": {"type": "string", "description": "words to search for"},
                "k": {"type": "integer", "minimum": 1, "maximum": 10, "default": 5},
            },
            "required": ["query"],
            "additionalProperties": False,
        },
    ),
    ToolSpec(
        name="open_page",
        description="The full text of a page, by the doc_id a search returned.",
        parameters={
            "type": "object",
            "properties": {"doc_id": {"type": "string"}},
            "required": ["doc_id"],
            "additionalProperties": False,
        },
    ),
    ToolSpec(
        name="answer",
        description="Give the final answer (a name or a year). This ends the task.",
        parameters={
            "type": "object",
            "properties": {"answer": {"type": "string"}},
            "required": ["answer"],
            "additionalProperties": False,
        },
    ),
]

Progress = Callable[[str, int, int], None]
"""progress(stage, done, total)"""


class SearchConfig(BaseModel):
    """What defines a search dataset; all but `chunk_size` make the run id."""

    model_config = ConfigDict(extra="forbid")

    dataset: str = "search"
    questions: int = Field(100, ge=1)
    seed: int = 0
    world_size: int = Field(400, ge=20)
    answer_policies: list[str] = Field(default_factory=list)
    answer_samples: int = Field(2, ge=1)
    answer_turns: int = Field(8, ge=1)
    policy_options: dict[str, Any] = Field(default_factory=dict)
    chunk_size: int = Field(50, ge=1)

    def defining(self) -> dict[str, Any]:
        return self.model_dump(exclude={"chunk_size"})


def make_task(qa: QA, config: SearchConfig) -> Task:
    """The Task of a question; its id hashes what defines it."""
    world = build_world(config.seed, config.world_size)
    titles = [world.pages[d].title for d in qa.evidence]
    payload = SearchQA(
        question=qa.question,
        answer=qa.answer,
        aliases=list(qa.aliases),
        rubric=[
            f"The final answer is {qa.answer}.",
            f"The answer rests on the pages of {', '.join(titles)}, found by search.",
            "No fact is asserted that the opened pages do not state.",
        ],
        extra={
            "corpus": {"seed": config.seed, "size": config.world_size},
            "evidence": list(qa.evidence),
            "links": list(qa.links),
            "answer_kind": qa.kind,
        },
    )
    return Task.build(
        kind="search",
        family=qa.template,
        env_id=f"search-world-{config.seed}-{config.world_size}",
        dataset=config.dataset,
        instruction=qa.question,
        system_prompt=SYSTEM_PROMPT,
        tools=TOOLS,
        payload=payload,
        provenance=Provenance(
            pipeline=PIPELINE,
            version=PIPELINE_VERSION,
            seed=config.seed,
            sources=[f"world:{config.seed}/{config.world_size}"],
            licenses=["Apache-2.0"],
        ),
    )


def policy_answers(
    tasks: Sequence[Task], policy_name: str, config: SearchConfig
) -> list[list[str]]:
    """Per task, the answers `policy_name` gave in its episodes of `envsynth/Search-v0`."""
    policy = make_policy(policy_name, **config.policy_options)
    specs = [
        EpisodeSpec({"task": task, "max_turns": config.answer_turns}, seed=s)
        for task in tasks
        for s in range(config.answer_samples)
    ]
    trajectories = rollout(ENV_ID, policy, specs)
    n = config.answer_samples
    return [[_answer(t) for t in trajectories[i * n : (i + 1) * n]] for i in range(len(tasks))]


def _answer(trajectory: Trajectory) -> str:
    calls = [c for m in trajectory.messages for c in m.tool_calls or () if c.name == "answer"]
    return answer_of(calls[-1].arguments) if calls else ""


def _build_chunk(
    config: SearchConfig, qas: Sequence[QA]
) -> tuple[list[tuple[Task, str | None]], list[StageReport]]:
    world = build_world(config.seed, config.world_size)
    index = world_index(config.seed, config.world_size)
    made, truth, cand = (StageReport(stage=s) for s in ("construct", "truth", "candidates"))
    t0 = time.perf_counter()
    tasks = [make_task(qa, config) for qa in qas]
    made.items_in = made.items_out = len(tasks)
    t1 = time.perf_counter()
    verdicts: list[str | None] = [truth_rejection(index, qa) for qa in qas]
    truth.items_in, truth.items_out = len(qas), verdicts.count(None)
    for why in filter(None, verdicts):
        truth.reject(why)
    t2 = time.perf_counter()
    alive = [i for i, v in enumerate(verdicts) if v is None]
    candidates: dict[int, dict[str, list[str]]] = {
        i: {name: [agent(world, index, qas[i])] for name, agent in AGENTS.items()} for i in alive
    }
    for name in config.answer_policies:
        answers = policy_answers([tasks[i] for i in alive], name, config)
        for i, given in zip(alive, answers, strict=True):
            candidates[i][name] = given
    cand.items_in = len(alive)
    for i in alive:
        verdicts[i] = candidates_rejection(qas[i], candidates[i])
        if verdicts[i]:
            cand.reject(str(verdicts[i]))
        else:
            cand.items_out += 1
    t3 = time.perf_counter()
    made.seconds, truth.seconds, cand.seconds = t1 - t0, t2 - t1, t3 - t2
    return list(zip(tasks, verdicts, strict=True)), [made, truth, cand]


def run_search(config: SearchConfig, store: Store, progress: Progress | None = None) -> str:
    """Run (or resume) the pipeline; returns the run id."""
    run_id = "run-search-" + content_hash(config.defining())[:16]
    store.ensure_dataset(config.dataset, "search", config.defining())
    store.start_run(run_id, PIPELINE, config.dataset, config.model_dump())
    world = build_world(config.seed, config.world_size)
    qas = construct(world, random.Random(f"questions:{config.seed}"), config.questions)
    chunks = [qas[i : i + config.chunk_size] for i in range(0, len(qas), config.chunk_size)]
    done = store.done_chunks(run_id)
    finished = 0
    for n, chunk in enumerate(chunks):
        chunk_id = f"questions:{n * config.chunk_size}-{n * config.chunk_size + len(chunk) - 1}"
        if chunk_id not in done:
            tasks, reports = _build_chunk(config, chunk)
            store.write_chunk(run_id, chunk_id, reports, tasks=tasks)
        finished += 1
        if progress:
            progress("search", finished, len(chunks))
    store.finish_run(run_id)
    return run_id
