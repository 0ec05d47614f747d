"""The verification agent: does the corpus, searched, bear the answer out, and are the
candidates wrong?

Ground truth is checked in two passes over the index, as a searcher would:

1. **chain**: each evidence page is found by searching the name that leads to it, and
   names the next link of the chain; the last one states the answer.
2. **answer**: searching the answer with the last link finds the last evidence page.

A candidate is wrong when `pipelines.answers.check_answer` (the gym's grader) refuses it.
"""

from __future__ import annotations

from collections.abc import Mapping

from pipelines.answers import check_answer
from pipelines.search_qa.index import SearchIndex
from pipelines.search_qa.questions import QA

SEARCH_K = 5


def truth_rejection(index: SearchIndex, qa: QA, k: int = SEARCH_K) -> str | None:
    """Why the answer is not borne out by the corpus, or None."""
    for i, (doc_id, link) in enumerate(zip(qa.evidence, qa.links, strict=True)):
        if doc_id not in {h.doc_id for h in index.search(link, k)}:
            return "evidence_not_found"
        page = index.page(doc_id)
        assert page is not None
        following = qa.links[i + 1] if i + 1 < len(qa.links) else qa.answer
        if following not in page.text:
            return "chain_broken" if i + 1 < len(qa.links) else "answer_not_on_page"
    if qa.evidence[-1] not in {h.doc_id for h in index.search(f"{qa.answer} {qa.links[-1]}", k)}:
        return "answer_not_retrievable"
    return None


def candidates_rejection(qa: QA, candidates: Mapping[str, list[str]]) -> str | None:
    """`solved_by:<agent>` for the first agent with a right answer, else None."""
    for agent, answers in candidates.items():
        for given in answers:
            if check_answer(given, qa.answer, aliases=qa.aliases).reward == 1.0:
                return f"solved_by:{agent}"
    return None
