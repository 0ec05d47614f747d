"""The built-in answer agents: candidates a question must defeat to be kept.

They need no model, so the pipeline filters offline; `--answer-policy` adds real agents
that search through `envsynth/Search-v0`. Each is a cheap strategy a trained agent must
go beyond:

- `closed_book` answers without searching: the most common value of the answer's sort.
- `one_hop` searches the question once, opens the best page, and answers with the first
  value of the right sort on it. A question one lookup answers is too easy.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable

from pipelines.search_qa.index import SearchIndex
from pipelines.search_qa.questions import QA
from pipelines.search_qa.world import World

_YEAR = re.compile(r"\b1\d{3}\b")


def _values(world: World, kind: str) -> list[str]:
    """Every value of a sort, with repeats as often as the world has them."""
    if kind == "town":
        return [p.born_in.name for p in world.people] + [
            c.headquarters.name for c in world.companies
        ]
    if kind == "river":
        return [t.river for t in world.towns]
    if kind == "person":
        return [c.founder.name for c in world.companies]
    if kind == "year":
        return [str(t.founded) for t in world.towns]
    raise ValueError(f"unknown answer sort {kind!r}")


def closed_book(world: World, index: SearchIndex, qa: QA) -> str:
    values = Counter(_values(world, qa.kind))
    return min(values, key=lambda v: (-values[v], v))


def one_hop(world: World, index: SearchIndex, qa: QA) -> str:
    hits = index.search(qa.question, k=1)
    page = index.page(hits[0].doc_id) if hits else None
    if page is None:
        return ""
    if qa.kind == "year":
        years = _YEAR.findall(page.text)
        return years[0] if years else ""
    named = [v for v in set(_values(world, qa.kind)) if v in page.text and v not in qa.question]
    return min(named, key=page.text.index) if named else ""


AGENTS: dict[str, Callable[[World, SearchIndex, QA], str]] = {
    "closed_book": closed_book,
    "one_hop": one_hop,
}
