"""`envsynth/Search-v0`: answer a question by searching a corpus and reading its pages.

The agent gets `search` (the best pages for a query, with snippets), `open_page` (a page's
text by id) and `answer`. The corpus is the one the task was verified on, named in its
payload and rebuilt here; the answer is graded by `pipelines.answers.check_answer`, the
check the pipeline refused candidates with (DESIGN §3).
"""

from __future__ import annotations

from typing import Any

import orjson

from envsynth.errors import ConfigError, ToolError, tool_arguments
from envsynth.schema import SearchQA, Task, Verdict
from gyms.answer_env import AnswerEnv
from gyms.task_source import TaskSource
from pipelines.answers import check_answer
from pipelines.search_qa.index import SearchIndex, world_index

MAX_TURNS = 20
MAX_RESULTS = 10


class SearchEnv(AnswerEnv):
    """A search task: `search`, `open_page` and `answer` over the task's corpus.

    Args:
        task / task_id / dataset / db: which task to serve (see `TaskSource`).
        max_turns: assistant turns before truncation.
        render_mode: None or "ansi".
    """

    def __init__(
        self,
        task: Task | dict[str, Any] | None = None,
        task_id: str | None = None,
        dataset: str | None = None,
        db: str | None = None,
        max_turns: int = MAX_TURNS,
        render_mode: str | None = None,
    ):
        super().__init__(max_turns=max_turns, render_mode=render_mode)
        self.source = TaskSource("search", task=task, task_id=task_id, dataset=dataset, db=db)
        self.index: SearchIndex | None = None
        self.opened: set[str] = set()

    def _start(self, task: Task) -> None:
        if not isinstance(task.payload, SearchQA) or "corpus" not in task.payload.extra:
            raise ConfigError(f"task {task.id} is not a search task with a corpus")
        corpus = task.payload.extra["corpus"]
        self.index = world_index(int(corpus["seed"]), int(corpus["size"]))
        self.given, self.opened = None, set()

    def _call_tool(self, name: str, arguments: str) -> str:
        assert self.index is not None  # reset() ran: ToolEnv.step guarantees it
        args = tool_arguments(arguments, name)
        if name == "search":
            query, k = args.get("query"), args.get("k", 5)
            if not isinstance(query, str) or not isinstance(k, int) or isinstance(k, bool):
                raise ToolError('search needs {"query": "<words>", "k": <1-10, optional>}')
            hits = self.index.search(query, max(1, min(k, MAX_RESULTS)))
            return orjson.dumps([h.__dict__ for h in hits]).decode() if hits else "no results"
        if name == "open_page":
            doc_id = args.get("doc_id")
            page = self.index.page(doc_id) if isinstance(doc_id, str) else None
            if page is None:
                raise ToolError(f"no page {doc_id!r}; use a doc_id from search results")
            self.opened.add(page.doc_id)
            return f"{page.title}\n\n{page.text}"
        if name == "answer":
            return self._record_answer(args)
        raise ToolError(f"unknown tool {name!r}; available tools: search, open_page, answer")

    def _grade_answer(self, given: str) -> Verdict:
        assert self.task is not None and isinstance(self.task.payload, SearchQA)
        payload = self.task.payload
        verdict = check_answer(given, payload.answer, aliases=payload.aliases)
        evidence = payload.extra.get("evidence", [])
        read = sum(d in self.opened for d in evidence) / len(evidence) if evidence else 0.0
        # Reading the evidence is reported, not rewarded: the reward is the answer's.
        return verdict.model_copy(
            update={"components": {**verdict.components, "evidence_read": read}}
        )
