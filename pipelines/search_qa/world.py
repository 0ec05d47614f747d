"""The embedded corpus: a seeded world of fictional long-tail entities, one page each.

Towns, people, companies and ships are tied by functional facts (a person has one birth
town, a company one founder and one headquarters, a ship one builder and one home port),
and each page states its entity's facts in sentences among filler. The names are made up,
so no model knows the answers beforehand: a question about this world is answered by
searching it or not at all. The world is a pure function of (seed, size), so a task names
its corpus by those two numbers and the gym rebuilds it.
"""

from __future__ import annotations

import functools
import random
from dataclasses import dataclass, field

_ONSETS = (
    "b",
    "br",
    "d",
    "dr",
    "f",
    "g",
    "gr",
    "h",
    "k",
    "kl",
    "l",
    "m",
    "n",
    "p",
    "r",
    "s",
    "st",
    "t",
    "tr",
    "v",
    "w",
    "z",
)
_NUCLEI = ("a", "e", "i", "o", "u", "ae", "ei", "ou")
_CODAS = ("", "n", "r", "l", "s", "th", "nd", "rk", "m")
_OCCUPATIONS = (
    "cartographer",
    "engineer",
    "botanist",
    "shipwright",
    "merchant",
    "chemist",
    "weaver",
    "astronomer",
)
_PRODUCTS = ("rope", "lanterns", "clocks", "glass", "sailcloth", "ink", "compasses", "tiles")
_REGIONS = (
    "the northern marches",
    "the salt coast",
    "the upper valley",
    "the fen country",
    "the eastern downs",
)
_FILLER = (
    "Local records from the period are incomplete.",
    "The archive holds several letters on the subject.",
    "Little else is known with certainty.",
    "Accounts from travellers mention it only in passing.",
    "A short entry in the regional almanac repeats these details.",
)


@dataclass(frozen=True)
class Page:
    """One document of the corpus.

    Attributes:
        doc_id: stable id ("town/3", "person/17", …).
        title: the entity's name.
        text: the page, facts and filler.
    """

    doc_id: str
    title: str
    text: str


@dataclass(frozen=True)
class Town:
    doc_id: str
    name: str
    region: str
    founded: int
    river: str


@dataclass(frozen=True)
class Person:
    doc_id: str
    name: str
    born_in: Town
    born: int
    occupation: str


@dataclass(frozen=True)
class Company:
    doc_id: str
    name: str
    founder: Person
    founded: int
    headquarters: Town
    product: str


@dataclass(frozen=True)
class Ship:
    doc_id: str
    name: str
    builder: Company
    launched: int
    home_port: Town


@dataclass
class World:
    """Entities and their pages.

    Attributes:
        towns / people / companies / ships: the entities; their fields are the facts.
        pages: every page, by doc id.
    """

    towns: list[Town] = field(default_factory=list)
    people: list[Person] = field(default_factory=list)
    companies: list[Company] = field(default_factory=list)
    ships: list[Ship] = field(default_factory=list)
    pages: dict[str, Page] = field(default_factory=dict)

    def mentions(self, doc_id: str) -> int:
        """How many other pages name this page's entity: few means long tail."""
        title = self.pages[doc_id].title
        return sum(title in p.text for d, p in self.pages.items() if d != doc_id)


def _article(noun: str) -> str:
    return "an" if noun[0] in "aeiou" else "a"


def _name(rng: random.Random, syllables: int, taken: set[str]) -> str:
    while True:
        name = "".join(
            rng.choice(_ONSETS) + rng.choice(_NUCLEI) + rng.choice(_CODAS) for _ in range(syllables)
        ).capitalize()
        if name not in taken and len(name) >= 4:
            taken.add(name)
            return name


@functools.lru_cache(maxsize=8)
def build_world(seed: int, size: int) -> World:
    """The world of `seed` with about `size` entities (at least 20).

    Cached: the gym asks for the same world at every reset.
    """
    rng = random.Random(f"world:{seed}:{size}")
    taken: set[str] = set()
    n_towns, n_people = max(size // 5, 4), max(size * 2 // 5, 8)
    n_companies, n_ships = max(size // 5, 4), max(size // 5, 4)
    world = World()
    for i in range(n_towns):
        world.towns.append(
            Town(
                f"town/{i}",
                _name(rng, 2, taken),
                rng.choice(_REGIONS),
                rng.randrange(1100, 1750),
                _name(rng, 2, taken),
            )
        )
    for i in range(n_people):
        name = f"{_name(rng, 2, taken)} {_name(rng, 2, taken)}"
        world.people.append(
            Person(
                f"person/{i}",
                name,
                rng.choice(world.towns),
                rng.randrange(1700, 1900),
                rng.choice(_OCCUPATIONS),
            )
        )
    # A founder founds one company, so "the company founded by X" names one.
    for i, founder in enumerate(rng.sample(world.people, n_companies)):
        world.companies.append(
            Company(
                f"company/{i}",
                f"{_name(rng, 2, taken)} & Co.",
                founder,
                founder.born + rng.randrange(22, 50),
                rng.choice(world.towns),
                rng.choice(_PRODUCTS),
            )
        )
    for i in range(n_ships):
        builder = rng.choice(world.companies)
        world.ships.append(
            Ship(
                f"ship/{i}",
                f"the {_name(rng, 3, taken)}",
                builder,
                builder.founded + rng.randrange(3, 40),
                rng.choice(world.towns),
            )
        )

    def filler() -> str:
        return " ".join(rng.sample(_FILLER, 2))

    texts: list[tuple[str, str, str]] = []
    for t in world.towns:
        texts.append(
            (
                t.doc_id,
                t.name,
                f"{t.name} is a town in {t.region}. It was founded in {t.founded}. The river "
                f"{t.river} flows through {t.name}. {filler()}",
            )
        )
    for p in world.people:
        texts.append(
            (
                p.doc_id,
                p.name,
                f"{p.name} was {_article(p.occupation)} {p.occupation}. {p.name} was born "
                f"in {p.born_in.name} in {p.born}. {filler()}",
            )
        )
    for c in world.companies:
        texts.append(
            (
                c.doc_id,
                c.name,
                f"{c.name} was founded by {c.founder.name} in {c.founded}. Its headquarters "
                f"are in {c.headquarters.name}. The company makes {c.product}. {filler()}",
            )
        )
    for sh in world.ships:
        texts.append(
            (
                sh.doc_id,
                sh.name.removeprefix("the "),
                f"The {sh.name.removeprefix('the ')} was built by {sh.builder.name} and "
                f"launched in {sh.launched}. Her home port is {sh.home_port.name}. {filler()}",
            )
        )
    world.pages = {d: Page(d, title, text) for d, title, text in texts}
    return world
