"""A local full-text index over a corpus: SQLite FTS5 with BM25 ranking.

SQLite ships FTS5, so the index needs no service and no package; it is built in memory
from the pages in milliseconds for the embedded corpus.
"""

from __future__ import annotations

import functools
import re
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass

from pipelines.search_qa.world import Page, build_world

_TOKEN = re.compile(r"\w+")


@dataclass(frozen=True)
class Hit:
    """One search result."""

    doc_id: str
    title: str
    snippet: str


class SearchIndex:
    """Full-text search over `pages`, and their text by id."""

    def __init__(self, pages: Iterable[Page]):
        self.pages = {p.doc_id: p for p in pages}
        self._db = sqlite3.connect(":memory:", check_same_thread=False)
        self._db.execute("CREATE VIRTUAL TABLE docs USING fts5(doc_id UNINDEXED, title, text)")
        self._db.executemany(
            "INSERT INTO docs VALUES (?, ?, ?)",
            [(p.doc_id, p.title, p.text) for p in self.pages.values()],
        )

    def search(self, query: str, k: int = 5) -> list[Hit]:
        """The `k` best pages for any of the query's words (BM25), best first."""
        words = _TOKEN.findall(query)
        if not words:
            return []
        # Every word quoted: FTS5 operators in the query are searched as text.
        match = " OR ".join('"' + w.replace('"', "") + '"' for w in words)
        rows = self._db.execute(
            "SELECT doc_id, title, snippet(docs, 2, '', '', ' … ', 12) FROM docs "
            "WHERE docs MATCH ? ORDER BY bm25(docs, 0.0, 5.0, 1.0) LIMIT ?",
            (match, k),
        ).fetchall()
        return [Hit(*row) for row in rows]

    def page(self, doc_id: str) -> Page | None:
        return self.pages.get(doc_id)


@functools.lru_cache(maxsize=8)
def world_index(seed: int, size: int) -> SearchIndex:
    """The index of the embedded world `(seed, size)`, built once per process."""
    return SearchIndex(build_world(seed, size).pages.values())
