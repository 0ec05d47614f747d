"""Question construction: chains of facts from a long-tail entity of the world.

Each template starts at a subject entity and follows functional facts, page by page, to
the answer, so the answer is unique and every page on the way is evidence. Subjects are
drawn from the long tail: entities that few other pages name.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from pipelines.search_qa.world import Company, Person, Ship, World

# A subject named on more pages than this is not long tail.
LONG_TAIL_MENTIONS = 2


@dataclass(frozen=True)
class QA:
    """One constructed question.

    Attributes:
        template: the template's name.
        question: the question as the agent reads it.
        answer: the answer.
        aliases: other accepted spellings.
        evidence: doc ids of the pages the answer rests on, in chain order.
        links: per step of the chain, the name the next page is reached by.
        kind: "town", "person", "river" or "year": what sort of value the answer is.
    """

    template: str
    question: str
    answer: str
    aliases: tuple[str, ...]
    evidence: tuple[str, ...]
    links: tuple[str, ...]
    kind: str


def _river_of_birthplace(w: World, p: Person) -> QA:
    town = p.born_in
    return QA(
        "river_of_birthplace",
        f"Which river flows through the town where {p.name} was born?",
        town.river,
        (),
        (p.doc_id, town.doc_id),
        (p.name, town.name),
        "river",
    )


def _founder_of_builder(w: World, s: Ship) -> QA:
    company = s.builder
    bare = s.name.removeprefix("the ")
    return QA(
        "founder_of_builder",
        f"Who founded the company that built the ship {bare}?",
        company.founder.name,
        (),
        (s.doc_id, company.doc_id),
        (bare, company.name),
        "person",
    )


def _port_founded(w: World, s: Ship) -> QA:
    port = s.home_port
    bare = s.name.removeprefix("the ")
    return QA(
        "port_founded",
        f"In which year was the home port of the ship {bare} founded?",
        str(port.founded),
        (),
        (s.doc_id, port.doc_id),
        (bare, port.name),
        "year",
    )


def _founder_birth_town(w: World, c: Company) -> QA:
    founder = c.founder
    return QA(
        "founder_birth_town",
        f"In which town was the founder of {c.name} born?",
        founder.born_in.name,
        (),
        (c.doc_id, founder.doc_id),
        (c.name, founder.name),
        "town",
    )


def _builder_headquarters_river(w: World, s: Ship) -> QA:
    hq = s.builder.headquarters
    bare = s.name.removeprefix("the ")
    return QA(
        "builder_headquarters_river",
        f"Which river flows through the town where the company that built the ship {bare} "
        "has its headquarters?",
        hq.river,
        (),
        (s.doc_id, s.builder.doc_id, hq.doc_id),
        (bare, s.builder.name, hq.name),
        "river",
    )


TEMPLATES: dict[str, tuple[str, Callable[..., QA]]] = {
    "river_of_birthplace": ("people", _river_of_birthplace),
    "founder_of_builder": ("ships", _founder_of_builder),
    "port_founded": ("ships", _port_founded),
    "founder_birth_town": ("companies", _founder_birth_town),
    "builder_headquarters_river": ("ships", _builder_headquarters_river),
}


def construct(world: World, rng: random.Random, count: int) -> list[QA]:
    """Up to `count` distinct questions, templates in turn, long-tail subjects only."""
    pools = {
        name: [e for e in getattr(world, attr) if world.mentions(e.doc_id) <= LONG_TAIL_MENTIONS]
        for name, (attr, _) in TEMPLATES.items()
    }
    for pool in pools.values():
        rng.shuffle(pool)
    out: list[QA] = []
    seen: set[str] = set()
    names = sorted(TEMPLATES)
    while len(out) < count and any(pools.values()):
        for name in names:
            if len(out) >= count or not pools[name]:
                continue
            qa = TEMPLATES[name][1](world, pools[name].pop())
            if qa.question not in seen:
                seen.add(qa.question)
                out.append(qa)
    return out
