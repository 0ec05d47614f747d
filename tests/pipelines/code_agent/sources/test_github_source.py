"""The GitHub source against a real HTTP server on loopback speaking GitHub's REST shapes.

The server's diffs come from a real repository the test builds, so the patches mined from
it are checked by applying them with `git apply` and comparing with the PR's head commit.
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import re
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from pr_history import REJECTIONS, History, apply_in_worktree

from envsynth.schema import StageReport
from pipelines.code_agent.candidate import CodeCandidate
from pipelines.code_agent.sources.github import (
    API_VERSION,
    GitHubAuthError,
    GitHubClient,
    GitHubError,
    GitHubNotFoundError,
    GitHubRateLimitError,
    closed_issue_numbers,
    mine_pairs,
)

REPO = "owner/calc"
NOW = 1_700_000_000.0


@dataclass
class Request:
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    status: int


@dataclass
class FakeGitHub:
    """GitHub's endpoints for one repository, served from a built git history."""

    history: History
    page_size: int = 2
    requests: list[Request] = field(default_factory=list)
    # path → statuses to answer before serving it normally (403/429/502/401 scripted).
    script: dict[str, list[tuple[int, dict[str, str]]]] = field(default_factory=dict)
    comments: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    base_url: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def pull_object(self, number: int) -> dict[str, Any]:
        p = self.history.pull(number)
        return {
            "url": f"{self.base_url}/repos/{REPO}/pulls/{p.number}",
            "number": p.number,
            "state": "closed",
            "title": p.title,
            "body": p.body,
            "created_at": p.created_at,
            "merged_at": None if p.merge is None else p.created_at.replace("T00", "T12"),
            "merge_commit_sha": p.merge,
            "base": {"ref": "main", "sha": p.base},
            "head": {"ref": f"pr-{p.number}", "sha": p.head},
            "user": {"login": "someone"},
        }

    def route(self, path: str, query: dict[str, list[str]], accept: str) -> tuple[int, Any]:
        parts = path.strip("/").split("/")
        if parts[:3] != ["repos", *REPO.split("/")]:
            return 404, {"message": "Not Found"}
        rest = parts[3:]
        if rest == ["pulls"]:
            return 200, [self.pull_object(p.number) for p in self.history.pulls]
        if len(rest) == 2 and rest[0] == "pulls":
            p = self.history.pull(int(rest[1]))
            if accept == "application/vnd.github.diff":  # GitHub's PR diff: base...head
                head = p.head if p.head_in_repo else p.merge
                assert head is not None
                base = self.history.repo.git("merge-base", p.base, head)
                return 200, self.history.repo.diff(base, head)
            return 200, self.pull_object(p.number)
        if len(rest) == 3 and rest[0] == "pulls" and rest[2] == "commits":
            first = self.history.first_commit_of[int(rest[1])]
            date = self.history.repo.git("show", "-s", "--format=%aI", first)
            return 200, [{"sha": first, "commit": {"author": {"date": date}}}]
        if len(rest) == 2 and rest[0] == "issues":
            issue = next((i for i in self.history.issues if i["number"] == int(rest[1])), None)
            return (200, issue) if issue else (404, {"message": "Not Found"})
        if len(rest) == 3 and rest[0] == "issues" and rest[2] == "comments":
            return 200, self.comments.get(int(rest[1]), [])
        return 404, {"message": "Not Found"}


@pytest.fixture()
def github(history: History) -> Iterator[FakeGitHub]:
    state = FakeGitHub(history)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:  # noqa: N802
            url = urlsplit(self.path)
            query = parse_qs(url.query)
            headers = {k.lower(): v for k, v in self.headers.items()}
            with state.lock:
                scripted = state.script.get(url.path)
                status, extra = scripted.pop(0) if scripted else (0, {})
            if status:
                self.answer(url.path, query, headers, status, b'{"message": "scripted"}', extra)
                return
            status, body = state.route(url.path, query, headers.get("accept", ""))
            extra = {}
            if isinstance(body, list) and url.path.endswith("/pulls"):
                body, extra = self.page(url.path, query, body)
            data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
            etag = '"' + hashlib.sha256(data + headers.get("accept", "").encode()).hexdigest() + '"'
            if status == 200 and headers.get("if-none-match") == etag:
                self.answer(url.path, query, headers, 304, b"", {"ETag": etag})
                return
            if status == 200:
                extra["ETag"] = etag
            self.answer(url.path, query, headers, status, data, extra)

        def page(
            self, path: str, query: dict[str, list[str]], items: list[Any]
        ) -> tuple[list[Any], dict[str, str]]:
            number = int(query.get("page", ["1"])[0])
            last = (len(items) + state.page_size - 1) // state.page_size
            chunk = items[(number - 1) * state.page_size : number * state.page_size]
            links = []
            if number < last:
                links.append(f'<{state.base_url}{path}?state=closed&page={number + 1}>; rel="next"')
            links.append(f'<{state.base_url}{path}?state=closed&page={last}>; rel="last"')
            return chunk, {"Link": ", ".join(links)}

        def answer(
            self,
            path: str,
            query: dict[str, list[str]],
            headers: dict[str, str],
            status: int,
            data: bytes,
            extra: dict[str, str],
        ) -> None:
            with state.lock:
                state.requests.append(Request(path, query, headers, status))
            self.send_response(status)
            for key, value in extra.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


@pytest.fixture(autouse=True)
def no_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GITHUB_TOKEN", raising=False)
    monkeypatch.delenv("GH_TOKEN", raising=False)


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def client_for(github: FakeGitHub, sleeps: Sleeps, **kwargs: Any) -> GitHubClient:
    return GitHubClient(github.base_url, sleep=sleeps, clock=lambda: NOW, **kwargs)


def files_in(diff: str) -> list[str]:
    return re.findall(r"^diff --git a/(\S+) ", diff, flags=re.MULTILINE)


def mine(client: GitHubClient, report: StageReport | None = None) -> list[CodeCandidate]:
    return list(mine_pairs(client, REPO, limit=10, report=report))


def test_mines_merged_prs_that_close_issues_across_three_pages(
    github: FakeGitHub, history: History
) -> None:
    report = StageReport(stage="source")
    with client_for(github, Sleeps()) as client:
        found = mine(client, report)
    assert [c.instance_id for c in found] == ["owner__calc-8", "owner__calc-7"]
    pages = [r.query.get("page", ["1"])[0] for r in github.requests if r.path.endswith("/pulls")]
    assert pages == ["1", "2", "3"]
    assert report.items_in == 5 and report.items_out == 2
    assert report.rejections == REJECTIONS
    by_id = {c.instance_id: c for c in found}
    fix = by_id["owner__calc-7"]
    assert fix.base_commit == history.pull(7).base
    assert fix.issue_numbers == [3] and fix.pull_number == 7 and fix.source == "github"
    assert fix.problem_statement == "add subtracts\nadd(2, 3) gives -1"
    assert fix.created_at == "2024-02-01T00:00:00Z"
    # The mention of other/repo#3 is another repository's issue and does not count.
    sub = by_id["owner__calc-8"]
    assert sub.issue_numbers == [5, 6]
    assert sub.problem_statement == "no sub\nplease add sub()\n\nsub docs\ndocument sub"


def test_split_patches_apply_on_the_base_commit(
    github: FakeGitHub, history: History, tmp_path: Path
) -> None:
    with client_for(github, Sleeps()) as client:
        found = {c.pull_number: c for c in mine(client)}
    assert files_in(found[7].patch) == ["src/calc.py"]
    assert files_in(found[7].test_patch) == ["tests/test_calc.py"]
    assert files_in(found[8].patch) == ["docs/sub.md", "src/calc.py"]
    assert files_in(found[8].test_patch) == ["tests/test_sub.py"]
    repo = history.repo
    for number, head in ((7, history.pull(7).head), (8, history.pull(8).merge)):
        cand = found[number]
        assert head is not None
        tree = apply_in_worktree(
            repo, cand.base_commit, [cand.patch, cand.test_patch], tmp_path / f"wt{number}"
        )
        changed = repo.git("diff", "--name-only", cand.base_commit, head).splitlines()
        for path in changed:
            assert (tree / path).read_text() == repo.show(head, path), path
    # The fix PR's base is before the unrelated README commit on main: not in its patch.
    assert "README.md" not in found[7].patch


def test_second_run_is_conditional_and_gives_the_same_candidates(
    github: FakeGitHub, tmp_path: Path
) -> None:
    cache = tmp_path / "etags"
    with client_for(github, Sleeps(), cache_dir=cache) as client:
        first = mine(client)
    sent_first = len(github.requests)
    assert all("if-none-match" not in r.headers for r in github.requests)
    github.requests.clear()
    with client_for(github, Sleeps(), cache_dir=cache) as client:  # a new process, same disk
        second = mine(client)
        stats = client.stats
    assert second == first
    assert len(github.requests) == sent_first
    assert all("if-none-match" in r.headers for r in github.requests)
    assert {r.status for r in github.requests} == {304}
    assert stats.not_modified == sent_first and stats.requests == sent_first


def test_in_memory_etags_make_a_repeat_conditional(github: FakeGitHub) -> None:
    with client_for(github, Sleeps()) as client:
        first = mine(client)
        github.requests.clear()
        assert mine(client) == first
    assert github.requests and all(r.status == 304 for r in github.requests)


def test_rate_limit_waits_until_the_reset_time(github: FakeGitHub) -> None:
    reset = {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(int(NOW) + 42)}
    github.script[f"/repos/{REPO}/pulls"] = [(403, reset)]
    sleeps = Sleeps()
    with client_for(github, sleeps) as client:
        found = mine(client)
    # 42 s to the reset, plus the one-second margin for clock skew.
    assert sleeps == [43.0]
    assert len(found) == 2
    assert [r.status for r in github.requests[:2]] == [403, 200]


def test_retry_after_is_honoured_in_seconds_or_as_a_date(github: FakeGitHub) -> None:
    github.script[f"/repos/{REPO}/issues/3"] = [(429, {"Retry-After": "7"})]
    date = email.utils.formatdate(NOW + 30, usegmt=True)
    github.script[f"/repos/{REPO}/issues/5"] = [(403, {"Retry-After": date})]
    sleeps = Sleeps()
    with client_for(github, sleeps) as client:
        assert len(mine(client)) == 2
    assert sorted(sleeps) == [7.0, 30.0]


def test_rate_limit_beyond_max_wait_raises_without_sleeping(github: FakeGitHub) -> None:
    reset = {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(int(NOW) + 7200)}
    github.script[f"/repos/{REPO}/pulls"] = [(403, reset)]
    sleeps = Sleeps()
    with client_for(github, sleeps, max_wait=600) as client:
        with pytest.raises(GitHubRateLimitError, match="GITHUB_TOKEN"):
            mine(client)
    assert sleeps == []


def test_a_502_is_retried_after_a_backoff(github: FakeGitHub) -> None:
    github.script[f"/repos/{REPO}/pulls/7"] = [(502, {})]
    sleeps = Sleeps()
    with client_for(github, sleeps, backoff=0.5) as client:
        found = mine(client)
    assert sleeps == [0.5]
    assert [c.pull_number for c in found] == [8, 7]
    assert [r.status for r in github.requests if r.path.endswith("/pulls/7")] == [502, 200]


def test_persistent_5xx_gives_up_after_exponential_backoff(github: FakeGitHub) -> None:
    github.script[f"/repos/{REPO}/pulls"] = [(503, {})] * 10
    sleeps = Sleeps()
    with client_for(github, sleeps, backoff=1.0, retries=3) as client:
        with pytest.raises(GitHubError, match="503 after 4 attempts"):
            mine(client)
    assert sleeps == [1.0, 2.0, 4.0]


def test_network_errors_are_retried_then_reported() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    sleeps = Sleeps()
    client = GitHubClient(f"http://127.0.0.1:{port}", sleep=sleeps, retries=2, backoff=0.25)
    with client, pytest.raises(GitHubError, match="network error after 3 attempts"):
        client.get_json(f"/repos/{REPO}")
    assert sleeps == [0.25, 0.5]


def test_401_says_to_fix_the_token(github: FakeGitHub, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITHUB_TOKEN", "expired")
    github.script[f"/repos/{REPO}/pulls"] = [(401, {})]
    with client_for(github, Sleeps()) as client:
        with pytest.raises(GitHubAuthError, match="GITHUB_TOKEN") as caught:
            mine(client)
    assert caught.value.status == 401


def test_unknown_repository_is_a_clear_404(github: FakeGitHub) -> None:
    with client_for(github, Sleeps()) as client:
        with pytest.raises(GitHubNotFoundError, match="owner/name"):
            list(mine_pairs(client, "owner/nope", limit=5))


def test_token_from_the_environment_is_sent_as_bearer(
    github: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITHUB_TOKEN", "tok-1")
    with client_for(github, Sleeps()) as client:
        client.get_json(f"/repos/{REPO}/issues/3")
    monkeypatch.delenv("GITHUB_TOKEN")
    monkeypatch.setenv("GH_TOKEN", "tok-2")
    with client_for(github, Sleeps()) as client:
        client.get_json(f"/repos/{REPO}/issues/4")
    auth = [r.headers.get("authorization") for r in github.requests]
    assert auth == ["Bearer tok-1", "Bearer tok-2"]
    first = github.requests[0].headers
    assert first["accept"] == "application/vnd.github+json"
    assert first["x-github-api-version"] == API_VERSION


def test_no_token_sends_no_authorization(github: FakeGitHub) -> None:
    with client_for(github, Sleeps()) as client:
        mine(client)
    assert github.requests and all("authorization" not in r.headers for r in github.requests)


def test_hints_are_comments_made_before_the_first_commit(
    github: FakeGitHub, history: History
) -> None:
    started = history.repo.git("show", "-s", "--format=%aI", history.first_commit_of[7])
    github.comments[3] = [
        {"body": "I see it too", "created_at": "2023-12-31T00:00:00Z"},
        {"body": "fixed by the PR", "created_at": "2024-03-01T00:00:00Z"},
    ]
    assert "2023-12-31" < started < "2024-03-01"
    with client_for(github, Sleeps()) as client:
        found = {c.pull_number: c for c in mine(client)}
    assert found[7].hints_text == "I see it too"
    assert found[8].hints_text == ""  # its issues have no comments: no request made
    assert not any(r.path.endswith("/pulls/8/commits") for r in github.requests)


def test_limit_and_since_stop_reading_early(github: FakeGitHub) -> None:
    with client_for(github, Sleeps()) as client:
        one = list(mine_pairs(client, REPO, limit=1))
        assert [c.pull_number for c in one] == [8]
        github.requests.clear()
        report = StageReport(stage="source")
        recent = list(mine_pairs(client, REPO, limit=10, since="2024-02-02", report=report))
    assert [c.pull_number for c in recent] == [8]
    assert report.items_in == 4  # PR 7 is older than the cut-off and was not counted
    assert not any(r.path.endswith("/pulls/7") for r in github.requests)


def test_closing_keywords() -> None:
    text = (
        "Fixes #1, closes #2 and Resolved: #3. fix #1 again; see #4; hotfixes #5; "
        "closes owner/calc#6, closes other/calc#7, "
        "resolves https://example.invalid/owner/calc/issues/8"
    )
    assert closed_issue_numbers(text, REPO) == [1, 2, 3, 6, 8]
    assert closed_issue_numbers("Fixes#9 prefix #10 fixed", REPO) == []


def test_a_missing_issue_is_left_out_of_the_pair(github: FakeGitHub, history: History) -> None:
    history.issues = [i for i in history.issues if i["number"] != 6]
    with client_for(github, Sleeps()) as client:
        found = {c.pull_number: c for c in mine(client)}
    assert found[8].issue_numbers == [5]
    assert found[8].problem_statement == "no sub\nplease add sub()"


def test_a_plain_403_is_an_access_error_not_a_wait(github: FakeGitHub) -> None:
    github.script[f"/repos/{REPO}/pulls"] = [(403, {})]
    sleeps = Sleeps()
    with client_for(github, sleeps) as client:
        with pytest.raises(GitHubError, match="403 forbidden"):
            mine(client)
    assert sleeps == []
