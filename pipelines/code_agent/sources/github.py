"""GitHub's REST API as a source of issue–PR pairs.

`GitHubClient` is the polite HTTP side: a token from the environment, pagination by the
`Link` header, conditional requests (a remembered ETag turns a repeat into a 304, which
GitHub does not count against the rate limit), waiting out rate limits, and bounded retries
on server and network errors. `mine_pairs` walks a repository's merged pull requests and
turns each one that closes an issue into a `CodeCandidate`.

The pairing rules (closing keywords, the instance id, the problem statement) and the record
shapes are GitHub's, so the local-dump source reads its dumps with the same ones.
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict, ValidationError

from envsynth.schema import StageReport
from pipelines.code_agent.candidate import CodeAgentError, CodeCandidate, SourceKind
from pipelines.code_agent.patches import PatchError, split_test_changes

DEFAULT_API = "https://api.github.com"
API_VERSION = "2022-11-28"
JSON_MEDIA = "application/vnd.github+json"
DIFF_MEDIA = "application/vnd.github.diff"
# GitHub asks clients that hit a secondary limit with no reset time to wait at least this.
SECONDARY_LIMIT_WAIT = 60.0


class GitHubError(CodeAgentError):
    """A GitHub request failed. `status` is the HTTP status, or None for network errors."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


class GitHubAuthError(GitHubError):
    """GitHub refused the credentials (401)."""


class GitHubNotFoundError(GitHubError):
    """The repository, pull request or issue does not exist or is not visible (404)."""


class GitHubRateLimitError(GitHubError):
    """The rate limit would not reset within the client's `max_wait`."""


@dataclass
class ClientStats:
    """What a client did: requests sent, 304s served from the cache, retries, time waited."""

    requests: int = 0
    not_modified: int = 0
    retries: int = 0
    waited_s: float = 0.0


class _ETagCache:
    """Each URL's last ETag, body and next-page link; in memory, and on disk if asked."""

    def __init__(self, directory: Path | None):
        self._memory: dict[str, dict[str, Any]] = {}
        self._dir = directory
        if directory is not None:
            directory.mkdir(parents=True, exist_ok=True)

    def _file(self, key: str) -> Path | None:
        if self._dir is None:
            return None
        return self._dir / f"{hashlib.sha256(key.encode()).hexdigest()[:40]}.json"

    def get(self, key: str) -> dict[str, Any] | None:
        if key in self._memory:
            return self._memory[key]
        path = self._file(key)
        if path is None or not path.is_file():
            return None
        try:
            entry = json.loads(path.read_text())
        except (OSError, ValueError):
            return None  # a damaged entry only costs a full request
        if not isinstance(entry, dict) or entry.get("key") != key:
            return None
        self._memory[key] = entry
        return entry

    def put(self, key: str, etag: str, body: str, next_url: str | None) -> None:
        entry = {"key": key, "etag": etag, "body": body, "next": next_url}
        self._memory[key] = entry
        path = self._file(key)
        if path is not None:
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(entry))
            tmp.replace(path)


class GitHubClient:
    """A synchronous GitHub REST client for the few GET requests mining needs.

    Args:
        base_url: the API root (GitHub Enterprise: `https://HOST/api/v3`).
        token: a personal access token; None reads `GITHUB_TOKEN`, else `GH_TOKEN`; "" sends
            none (anonymous access, 60 requests an hour).
        cache_dir: where ETags and bodies persist between runs; None keeps them in memory.
        retries: extra attempts after a 5xx or network error, and the most rate-limit waits
            one request sits through.
        backoff: the first retry's delay in seconds; each further one doubles it.
        max_wait: the longest rate-limit wait accepted; a later reset raises instead.
        sleep / clock: injectable so that tests never really wait.
    """

    def __init__(
        self,
        base_url: str = DEFAULT_API,
        *,
        token: str | None = None,
        cache_dir: Path | None = None,
        timeout: float = 30.0,
        retries: int = 4,
        backoff: float = 1.0,
        max_wait: float = 3600.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
    ):
        if token is None:
            token = os.environ.get("GITHUB_TOKEN") or os.environ.get("GH_TOKEN") or ""
        headers = {"X-GitHub-Api-Version": API_VERSION, "User-Agent": "envsynth"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.base_url = base_url.rstrip("/")
        self.has_token = bool(token)
        self.retries, self.backoff, self.max_wait = retries, backoff, max_wait
        self.stats = ClientStats()
        self._sleep, self._clock = sleep, clock
        self._cache = _ETagCache(cache_dir)
        self._http = httpx.Client(headers=headers, timeout=timeout, follow_redirects=True)

    def __enter__(self) -> GitHubClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def url(self, path: str, params: dict[str, str | int] | None = None) -> str:
        """The absolute URL of an API path, query parameters in a stable order."""
        query = sorted((params or {}).items())
        return str(httpx.URL(f"{self.base_url}{path}", params=query))

    def get_json(self, path: str, params: dict[str, str | int] | None = None) -> Any:
        """GET a JSON resource."""
        return json.loads(self._fetch(self.url(path, params), JSON_MEDIA)[0])

    def get_text(self, path: str, accept: str) -> str:
        """GET a resource in another media type (e.g. a pull request as a diff)."""
        return self._fetch(self.url(path), accept)[0]

    def paginate(self, path: str, params: dict[str, str | int] | None = None) -> Iterator[Any]:
        """Every item of a list resource, following `Link: <…>; rel="next"` lazily."""
        url: str | None = self.url(path, params)
        while url is not None:
            body, url = self._fetch(url, JSON_MEDIA)
            page = json.loads(body)
            if not isinstance(page, list):
                raise GitHubError(f"{path}: expected a JSON list, got {type(page).__name__}")
            yield from page

    def _fetch(self, url: str, accept: str) -> tuple[str, str | None]:
        """A body and its next-page URL, answered from the cache when GitHub says 304."""
        key = f"{accept} {url}"
        cached = self._cache.get(key)
        headers = {"Accept": accept}
        if cached is not None:
            headers["If-None-Match"] = cached["etag"]
        response = self._send(url, headers)
        if response.status_code == 304 and cached is not None:
            self.stats.not_modified += 1
            return cached["body"], cached["next"]
        next_url = response.links.get("next", {}).get("url")
        etag = response.headers.get("ETag")
        if etag:
            self._cache.put(key, etag, response.text, next_url)
        return response.text, next_url

    def _send(self, url: str, headers: dict[str, str]) -> httpx.Response:
        failures = waits = 0
        while True:
            try:
                response = self._http.get(url, headers=headers)
            except httpx.TransportError as e:
                failures += 1
                if failures > self.retries:
                    raise GitHubError(
                        f"GET {url}: network error after {failures} attempts ({e}); check the "
                        "connection and the API base URL, then retry."
                    ) from e
                self._wait(self.backoff * 2 ** (failures - 1))
                continue
            self.stats.requests += 1
            status = response.status_code
            if status < 300 or status == 304:
                return response
            wait = self._rate_limit_wait(response)
            if wait is not None:
                waits += 1
                if wait > self.max_wait or waits > self.retries:
                    raise self._rate_limited(url, wait)
                self._wait(wait)
                continue
            if status >= 500:
                failures += 1
                if failures > self.retries:
                    raise GitHubError(
                        f"GET {url}: HTTP {status} after {failures} attempts; GitHub is "
                        "failing, retry later.",
                        status,
                    )
                self._wait(self.backoff * 2 ** (failures - 1))
                continue
            raise self._error(url, response)

    def _wait(self, seconds: float) -> None:
        self.stats.retries += 1
        self.stats.waited_s += seconds
        self._sleep(seconds)

    def _rate_limit_wait(self, response: httpx.Response) -> float | None:
        """Seconds to wait before retrying a rate-limited response; None if it is not one."""
        if response.status_code not in (403, 429):
            return None
        retry_after = response.headers.get("Retry-After")
        if retry_after:
            if retry_after.strip().isdigit():
                return float(retry_after)
            try:  # HTTP also allows a date here
                when = email.utils.parsedate_to_datetime(retry_after)
            except (TypeError, ValueError):
                return SECONDARY_LIMIT_WAIT
            return max(0.0, when.timestamp() - self._clock())
        reset = response.headers.get("X-RateLimit-Reset")
        if response.headers.get("X-RateLimit-Remaining") == "0" and reset:
            # One second past the reset, so that a client clock a little behind GitHub's
            # does not retry just before the window opens.
            return max(0.0, float(reset) - self._clock()) + 1.0
        if response.status_code == 429 or "rate limit" in response.text.lower():
            return SECONDARY_LIMIT_WAIT
        return None

    def _rate_limited(self, url: str, wait: float) -> GitHubRateLimitError:
        until = datetime.fromtimestamp(self._clock() + wait, UTC).isoformat(timespec="seconds")
        advice = "" if self.has_token else " Set GITHUB_TOKEN for a higher limit."
        return GitHubRateLimitError(
            f"GET {url}: rate limited until {until} ({wait:.0f} s, more than max_wait="
            f"{self.max_wait:.0f} s). Retry after that, or raise max_wait.{advice}",
            403,
        )

    def _error(self, url: str, response: httpx.Response) -> GitHubError:
        status = response.status_code
        try:
            message = str(response.json().get("message", ""))
        except (ValueError, AttributeError):
            message = response.text[:200]
        if status == 401:
            what = "the token in GITHUB_TOKEN / GH_TOKEN" if self.has_token else "no token"
            return GitHubAuthError(
                f"GET {url}: 401 {message or 'Unauthorized'}: GitHub refused {what}. Set "
                "GITHUB_TOKEN to a valid, unexpired token (or unset it for anonymous access).",
                status,
            )
        if status == 404:
            hint = "" if self.has_token else "; a private repository needs GITHUB_TOKEN"
            return GitHubNotFoundError(
                f"GET {url}: 404 not found. Check that the repository is spelled owner/name "
                f"and that the number exists{hint}.",
                status,
            )
        if status == 403:
            return GitHubError(
                f"GET {url}: 403 forbidden ({message}). The token lacks access to this "
                "resource; use one with read access to the repository.",
                status,
            )
        return GitHubError(f"GET {url}: HTTP {status}: {message}", status)


class _Ref(BaseModel):
    model_config = ConfigDict(extra="ignore")
    sha: str


class PullRecord(BaseModel):
    """The fields of GitHub's pull-request object that mining reads (the rest is ignored)."""

    model_config = ConfigDict(extra="ignore")
    number: int
    title: str = ""
    body: str | None = None
    created_at: str = ""
    merged_at: str | None = None
    base: _Ref
    head: _Ref | None = None
    merge_commit_sha: str | None = None


class IssueRecord(BaseModel):
    """The fields of GitHub's issue object that mining reads (the rest is ignored)."""

    model_config = ConfigDict(extra="ignore")
    number: int
    title: str = ""
    body: str | None = None
    created_at: str = ""
    pull_request: dict[str, Any] | None = None
    comments: int = 0


_CLOSING = re.compile(
    r"\b(?:close[sd]?|fix(?:e[sd])?|resolve[sd]?):?\s+"
    r"(?:(?P<repo>[\w.-]+/[\w.-]+)?#(?P<num>\d+)"
    r"|https?://[^\s/]+/(?P<url_repo>[\w.-]+/[\w.-]+)/issues/(?P<url_num>\d+))\b",
    re.IGNORECASE,
)


def closed_issue_numbers(text: str, repo: str) -> list[int]:
    """Issues of `repo` that `text` closes with a GitHub closing keyword, in order, once each.

    `fixes #12`, `Closes: owner/name#12` and `resolves <issue URL>` count; references to
    other repositories do not.
    """
    numbers: list[int] = []
    for m in _CLOSING.finditer(text):
        where = m.group("repo") or m.group("url_repo")
        number = int(m.group("num") or m.group("url_num"))
        if (where is None or where.lower() == repo.lower()) and number not in numbers:
            numbers.append(number)
    return numbers


def instance_id(repo: str, pull_number: int) -> str:
    """SWE-bench's instance id: `owner__name-<PR number>`."""
    return f"{repo.replace('/', '__')}-{pull_number}"


def problem_statement(issues: list[IssueRecord]) -> str:
    """Each issue's title, a newline and its body; several issues separated by a blank line."""
    return "\n\n".join(f"{i.title}\n{i.body or ''}".rstrip() for i in issues)


def check_repo_name(repo: str) -> None:
    if not re.fullmatch(r"[\w.-]+/[\w.-]+", repo):
        raise CodeAgentError(f"repository {repo!r} is not of the form owner/name")


def mine_pairs(
    client: GitHubClient,
    repo: str,
    *,
    limit: int,
    since: str | None = None,
    state: Literal["closed", "all"] = "closed",
    report: StageReport | None = None,
    hints: bool = True,
    repo_path: Path | None = None,
) -> Iterator[CodeCandidate]:
    """Candidates from `repo`'s merged pull requests that close at least one issue.

    Pull requests are read newest first; reading stops after `limit` candidates or at the
    first one created before `since` (ISO 8601).

    Args:
        report: filled as it goes: every pull request read counts in `items_in`, every
            candidate in `items_out`, every skipped one under its reason.
        hints: also read the issues' comments made before the PR's first commit (two more
            requests a PR, only when an issue has comments).
        repo_path: a local mirror of `repo`, recorded on each candidate.
    """
    check_repo_name(repo)
    if limit < 0:
        raise CodeAgentError(f"limit must be ≥ 0, got {limit}")
    report = report if report is not None else StageReport(stage="source")
    cutoff = _parse_time(since) if since else None
    found = 0
    params: dict[str, str | int] = {
        "state": state,
        "sort": "created",
        "direction": "desc",
        "per_page": 100,
    }
    pulls = client.paginate(f"/repos/{repo}/pulls", params) if limit else iter(())
    for raw in pulls:
        try:
            pull = PullRecord.model_validate(raw)
        except ValidationError:
            report.items_in += 1
            report.reject("malformed pull request object")
            continue
        if cutoff and pull.created_at and _parse_time(pull.created_at) < cutoff:
            break
        report.items_in += 1
        candidate, reason = _pair(client, repo, pull, hints)
        if candidate is None:
            report.reject(reason)
            continue
        if repo_path is not None:
            candidate.repo_path = str(repo_path)
        report.items_out += 1
        found += 1
        yield candidate
        if found >= limit:
            break


def _pair(
    client: GitHubClient, repo: str, pull: PullRecord, hints: bool
) -> tuple[CodeCandidate | None, str]:
    """The candidate one pull request makes, or None and the reason it makes none."""
    issues, reason = closed_issues(repo, pull, lambda n: _issue(client, repo, n))
    if not issues:
        return None, reason
    try:
        diff = client.get_text(f"/repos/{repo}/pulls/{pull.number}", DIFF_MEDIA)
    except GitHubError as e:
        if e.status in (404, 406, 422):  # GitHub refuses diffs that are too large
            return None, "diff unavailable"
        raise
    candidate, reason = pr_candidate(repo, pull, issues, pull.base.sha, diff, source="github")
    if candidate is not None and hints:
        candidate.hints_text = _hints(client, repo, pull, issues)
    return candidate, reason


def closed_issues(
    repo: str, pull: PullRecord, find: Callable[[int], IssueRecord | None]
) -> tuple[list[IssueRecord], str]:
    """The issues a merged pull request closes, or [] and the reason it closes none.

    Args:
        find: looks an issue up by number; None where there is no such issue.
    """
    if not pull.merged_at:
        return [], "not merged"
    numbers = closed_issue_numbers(f"{pull.title}\n{pull.body or ''}", repo)
    if not numbers:
        return [], "closes no issue"
    issues = [i for i in map(find, numbers) if i is not None and i.pull_request is None]
    if not issues:
        return [], "closed issues missing or pull requests"
    return issues, ""


def pr_candidate(
    repo: str,
    pull: PullRecord,
    issues: list[IssueRecord],
    base_commit: str,
    diff: str,
    *,
    source: SourceKind,
    repo_path: str | None = None,
) -> tuple[CodeCandidate | None, str]:
    """The candidate of a pull request whose diff applies on `base_commit`, or None and why."""
    if not diff.strip():
        return None, "empty diff"
    try:
        patch, test_patch = split_test_changes(diff)
    except PatchError:
        return None, "malformed diff"
    return CodeCandidate(
        instance_id=instance_id(repo, pull.number),
        repo=repo,
        base_commit=base_commit,
        patch=patch,
        test_patch=test_patch,
        problem_statement=problem_statement(issues),
        created_at=pull.created_at,
        source=source,
        repo_path=repo_path,
        pull_number=pull.number,
        issue_numbers=[i.number for i in issues],
    ), ""


def _issue(client: GitHubClient, repo: str, number: int) -> IssueRecord | None:
    """The issue `number`, or None where there is none."""
    try:
        return IssueRecord.model_validate(client.get_json(f"/repos/{repo}/issues/{number}"))
    except (GitHubNotFoundError, ValidationError):
        return None


def _hints(client: GitHubClient, repo: str, pull: PullRecord, issues: list[IssueRecord]) -> str:
    """Comments on the issues written before the PR's first commit (SWE-bench's hints)."""
    if not any(i.comments for i in issues):
        return ""
    commits = client.paginate(f"/repos/{repo}/pulls/{pull.number}/commits", {"per_page": 100})
    first = next(iter(commits), None)
    try:
        started = _parse_time(first["commit"]["author"]["date"]) if first else None
    except (KeyError, TypeError, ValueError):
        started = None
    if started is None:
        return ""
    texts = []
    for issue in issues:
        if not issue.comments:
            continue
        path = f"/repos/{repo}/issues/{issue.number}/comments"
        for comment in client.paginate(path, {"per_page": 100}):
            when = comment.get("created_at") if isinstance(comment, dict) else None
            if when and _parse_time(when) < started and comment.get("body"):
                texts.append(str(comment["body"]))
    return "\n".join(texts)


def _parse_time(text: str) -> datetime:
    """An ISO 8601 time; one without a zone is taken as UTC."""
    try:
        when = datetime.fromisoformat(text)
    except ValueError as e:
        raise CodeAgentError(f"{text!r} is not an ISO 8601 time (e.g. 2024-01-31)") from e
    return when if when.tzinfo else when.replace(tzinfo=UTC)
