"""The search pipeline on its embedded world: pages state the facts, the local index finds
them, questions chain them from long-tail entities, the verifier catches broken chains and
wrong answers, and a question any answer agent solves is refused and kept with its reason."""

from __future__ import annotations

import random
from dataclasses import replace
from pathlib import Path

import pytest
from typer.testing import CliRunner

from envsynth.cli import app
from envsynth.policy.base import PolicyOutput, PolicyRequest, register_policy
from envsynth.policy.baselines import ReferencePolicy
from envsynth.rollout import EpisodeSpec, rollout
from envsynth.schema import Message, PolicyInfo, SearchQA, ToolCall
from envsynth.store import Store
from pipelines.search_qa.agents import AGENTS, closed_book
from pipelines.search_qa.index import SearchIndex, world_index
from pipelines.search_qa.pipeline import SearchConfig, run_search
from pipelines.search_qa.questions import LONG_TAIL_MENTIONS, QA, construct
from pipelines.search_qa.verify import candidates_rejection, truth_rejection
from pipelines.search_qa.world import build_world

SEED, SIZE = 3, 120


def test_the_world_is_a_function_of_its_seed_and_its_pages_state_its_facts() -> None:
    world = build_world.__wrapped__(SEED, SIZE)  # bypass the cache: build it twice
    again = build_world.__wrapped__(SEED, SIZE)
    assert world.pages == again.pages and len(world.pages) == SIZE
    assert world.pages != build_world.__wrapped__(SEED + 1, SIZE).pages
    assert len({p.title for p in world.pages.values()}) == len(world.pages)
    for person in world.people:
        assert f"born in {person.born_in.name} in {person.born}" in world.pages[person.doc_id].text
    for ship in world.ships:
        text = world.pages[ship.doc_id].text
        assert f"built by {ship.builder.name}" in text and ship.home_port.name in text
    assert len({c.founder.doc_id for c in world.companies}) == len(world.companies)


def test_the_index_finds_pages_by_their_words_and_takes_any_text() -> None:
    world = build_world(SEED, SIZE)
    index = SearchIndex(world.pages.values())
    town = world.towns[0]
    assert index.search(town.name, 3)[0].doc_id == town.doc_id
    assert index.search(f"{town.river} river", 3)[0].doc_id == town.doc_id
    for hostile in ('AND OR NOT "(', "NEAR(x y)", "*", 'title:"x'):
        assert isinstance(index.search(hostile), list)
    assert index.search("   ") == [] and index.page("town/none") is None


def test_questions_chain_facts_from_long_tail_subjects() -> None:
    world = build_world(SEED, SIZE)
    qas = construct(world, random.Random(0), 40)
    assert len(qas) == 40 and len({q.question for q in qas}) == 40
    assert len({q.template for q in qas}) == 5
    for qa in qas:
        assert world.mentions(qa.evidence[0]) <= LONG_TAIL_MENTIONS
        assert qa.answer in world.pages[qa.evidence[-1]].text
        assert qa.answer not in qa.question


def test_the_verifier_refuses_wrong_answers_and_broken_chains() -> None:
    world = build_world(SEED, SIZE)
    index = world_index(SEED, SIZE)
    qa = next(q for q in construct(world, random.Random(1), 10) if len(q.evidence) == 2)
    assert truth_rejection(index, qa) is None
    assert truth_rejection(index, replace(qa, answer="Nowhere")) == "answer_not_on_page"
    assert truth_rejection(index, replace(qa, links=("Zzyzx", qa.links[1]))) == (
        "evidence_not_found"
    )
    first = world.pages[qa.evidence[0]].text
    other = next(p.title for p in world.pages.values() if p.title not in first)
    broken = replace(qa, links=(qa.links[0], other))  # the first page does not lead there
    assert truth_rejection(index, broken) == "chain_broken"


def test_a_question_an_agent_answers_is_refused_by_that_agent() -> None:
    world = build_world(SEED, SIZE)
    index = world_index(SEED, SIZE)
    company = world.companies[0]
    one_lookup = QA(
        "headquarters",
        f"In which town are the headquarters of {company.name}?",
        company.headquarters.name,
        (),
        (company.doc_id,),
        (company.name,),
        "town",
    )
    answers = {name: [agent(world, index, one_lookup)] for name, agent in AGENTS.items()}
    assert answers["one_hop"] == [company.headquarters.name]
    assert candidates_rejection(one_lookup, answers) == "solved_by:one_hop"
    common = replace(one_lookup, answer=closed_book(world, index, one_lookup))
    assert candidates_rejection(common, {"closed_book": [common.answer]}) == (
        "solved_by:closed_book"
    )
    assert candidates_rejection(one_lookup, {"x": ["", "Elsewhere"]}) is None


def test_accepted_questions_are_solved_by_their_reference_and_a_rerun_adds_nothing(
    tmp_path: Path,
) -> None:
    store = Store(tmp_path / "s.db")
    config = SearchConfig(questions=30, seed=SEED, world_size=SIZE, chunk_size=12)
    run_id = run_search(config, store)
    reports = {r.stage: r for r in store.run_reports(run_id)}
    assert reports["construct"].items_out == 30 and reports["truth"].items_out == 30
    accepted = list(store.iter_tasks("search"))
    assert len(accepted) == reports["candidates"].items_out > 20
    every = store.task_ids("search", accepted=None)
    assert len(every) == 30  # refused ones kept, with their reasons
    assert sum(store.rejections("search").values()) == 30 - len(accepted)

    trajectories = rollout(
        "envsynth/Search-v0",
        ReferencePolicy(),
        [EpisodeSpec({"task": t}, seed=0) for t in accepted],
    )
    assert all(t.verdict and t.verdict.reward == 1.0 for t in trajectories)
    run_search(config, store)
    assert store.task_ids("search", accepted=None) == every


@register_policy("test-search-oracle")
class _Oracle:
    """Answers at once with the task's answer: an agent every question must defeat."""

    def __init__(self) -> None:
        self.info = PolicyInfo(name="test-search-oracle")

    async def agenerate(self, requests: list[PolicyRequest]) -> list[PolicyOutput]:
        outs = []
        for r in requests:
            assert r.task is not None and isinstance(r.task.payload, SearchQA)
            args = f'{{"answer": "{r.task.payload.answer}"}}'
            call = ToolCall(id="a", name="answer", arguments=args)
            outs.append(PolicyOutput(Message(role="assistant", content="", tool_calls=[call])))
        return outs


@pytest.mark.parametrize(("policy", "refused"), [("test-search-oracle", 8), ("noop", 0)])
def test_answer_policies_run_through_the_gym_and_refuse_what_they_solve(
    tmp_path: Path, policy: str, refused: int
) -> None:
    store = Store(tmp_path / "s.db")
    config = SearchConfig(questions=8, seed=SEED, world_size=SIZE, answer_policies=[policy])
    run_search(config, store)
    without = Store(tmp_path / "b.db")  # the same questions, built-in agents only
    run_search(config.model_copy(update={"answer_policies": []}), without)
    kept_without = without.count_tasks("search")
    assert kept_without > 0
    assert store.count_tasks("search") == (0 if refused else kept_without)
    if refused:
        assert store.rejections("search").get(f"solved_by:{policy}", 0) >= kept_without


def test_cli_generates_search_tasks(tmp_path: Path) -> None:
    db = tmp_path / "cli.db"
    result = CliRunner(env={"COLUMNS": "200"}).invoke(
        app, ["generate", "search", "--db", str(db), "--questions", "10", "--world-size", "100"]
    )
    assert result.exit_code == 0, result.output
    assert "accepted of 10 questions" in result.output and "candidates" in result.output
