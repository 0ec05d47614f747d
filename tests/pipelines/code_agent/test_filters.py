"""Candidate filters: one realistic candidate per reason, its diffs made by real git commits."""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from envsynth.errors import ConfigError
from envsynth.policy import PolicyOutput, PolicyRequest, make_policy
from envsynth.schema import Message, PolicyInfo
from pipelines.code_agent.candidate import CodeCandidate
from pipelines.code_agent.filters import (
    REASONS,
    FilterConfig,
    FilterDecision,
    check_candidate,
    filter_candidates,
    judge_candidate,
    parse_verdict,
)
from pipelines.code_agent.patches import split_test_changes

ISSUE = (
    "parse_duration('1h30m') returns 90 instead of 5400.\n\n"
    "The parser multiplies the minutes by one instead of sixty, so every duration with "
    "minutes in it comes out wrong. Expected parse_duration('1h30m') == 5400."
)

TRACEBACK = """\
Traceback (most recent call last):
  File "/srv/app/cli.py", line 41, in <module>
    main()
  File "/srv/app/cli.py", line 37, in main
    total = parse_duration(args.timeout)
  File "/srv/app/durations.py", line 12, in parse_duration
    return int(hours) * 3600 + int(minutes)
ValueError: invalid literal for int() with base 10: '30m'"""

JAVA_TRACE = """\
Exception in thread "main" java.lang.NullPointerException
    at org.example.durations.Parser.parse(Parser.java:42)
    at org.example.durations.Parser.parseAll(Parser.java:17)
    at org.example.cli.Main.run(Main.java:88)
    at org.example.cli.Main.main(Main.java:12)
    ... 3 more"""


class Repo:
    """A real git repository whose commits stand for a pull request's changes."""

    def __init__(self, root: Path):
        self.root = root
        root.mkdir()
        self.git("init", "-q")
        self.git("config", "user.email", "t@example.invalid")
        self.git("config", "user.name", "t")

    def git(self, *args: str) -> str:
        done = subprocess.run(
            ["git", *args], cwd=self.root, capture_output=True, text=True, check=True
        )
        return done.stdout

    def commit(self, files: dict[str, str | bytes]) -> str:
        """Write the files, commit, and return the commit's diff (binary data included)."""
        for rel, data in files.items():
            path = self.root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(data, bytes):
                path.write_bytes(data)
            else:
                path.write_text(data)
        self.git("add", "-A")
        self.git("commit", "-q", "-m", "change")
        return self.git("show", "--binary", "--format=", "HEAD")


@pytest.fixture(scope="module")
def diffs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Diffs of real commits: the fix PR (split into gold and test patch) and odd ones."""
    repo = Repo(tmp_path_factory.mktemp("filters") / "repo")
    repo.commit(
        {
            "src/durations.py": "def parse_duration(text):\n    return 0\n",
            "tests/test_durations.py": "def test_zero():\n    pass\n",
            "assets/icon.png": b"\x89PNG\r\n\x1a\n" + bytes(64),
            "README.md": "durations\n",
        }
    )
    pr = repo.commit(
        {
            "src/durations.py": (
                "def parse_duration(text):\n"
                "    hours, _, minutes = text.rstrip('m').partition('h')\n"
                "    return int(hours) * 3600 + int(minutes) * 60\n"
            ),
            "tests/test_durations.py": (
                "from durations import parse_duration\n\n\n"
                "def test_hours_and_minutes():\n"
                "    assert parse_duration('1h30m') == 5400\n"
            ),
        }
    )
    gold, tests = split_test_changes(pr)
    many_files = repo.commit({f"src/mod_{i:02d}.py": f"X = {i}\n" for i in range(16)})
    many_lines = repo.commit({"src/table.py": "".join(f"T{i} = {i}\n" for i in range(801))})
    big_test = repo.commit(
        {"tests/test_table.py": "".join(f"def test_{i}():\n    pass\n" for i in range(1001))}
    )
    binary = repo.commit(
        {"assets/icon.png": b"\x89PNG\r\n\x1a\n" + bytes(range(64)), "src/durations.py": "X=1\n"}
    )
    return {
        "pr": pr,
        "gold": gold,
        "tests": tests,
        "many_files": many_files,
        "many_lines": many_lines,
        "big_test": big_test,
        "binary": binary,
    }


def candidate(diffs: dict[str, str], **changes: Any) -> CodeCandidate:
    fields: dict[str, Any] = {
        "instance_id": "acme__durations-12",
        "repo": "acme/durations",
        "base_commit": "0123456789abcdef",
        "patch": diffs["gold"],
        "test_patch": diffs["tests"],
        "problem_statement": ISSUE,
        "source": "local",
    }
    fields.update(changes)
    return CodeCandidate(**fields)


def truncated(diff: str) -> str:
    return "".join(diff.splitlines(keepends=True)[:-1])


# reason -> the candidate's fields that should trigger it (diff names refer to `diffs`).
CASES: dict[str, dict[str, str]] = {
    "issue:too_short": {"problem_statement": "Fix parse_duration, it is wrong."},
    "issue:link_only": {
        "problem_statement": "See https://example.org/acme/durations/discussions/4411#reply-9"
        " and https://example.org/acme/durations/wiki/Known-Problems"
    },
    "issue:log_dump": {"problem_statement": f"Crash\n\n```\n{TRACEBACK}\n```"},
    "patch:malformed": {"patch": "truncate:gold"},
    "patch:empty": {"patch": ""},
    "patch:no_source_change": {"patch": "diff:tests"},
    "patch:touches_tests": {"patch": "diff:pr"},
    "test_patch:malformed": {"test_patch": "truncate:tests"},
    "test_patch:empty": {"test_patch": ""},
    "test_patch:touches_source": {"test_patch": "diff:pr"},
    "binary:patch": {"patch": "diff:binary"},
    "size:patch_files": {"patch": "diff:many_files"},
    "size:patch_lines": {"patch": "diff:many_lines"},
    "size:test_patch_lines": {"test_patch": "diff:big_test"},
}


def resolve(diffs: dict[str, str], fields: dict[str, str]) -> dict[str, str]:
    out = {}
    for key, value in fields.items():
        if value.startswith("diff:"):
            value = diffs[value[5:]]
        elif value.startswith("truncate:"):
            value = truncated(diffs[value[9:]])
        out[key] = value
    return out


def test_every_heuristic_reason_has_a_case() -> None:
    assert set(CASES) == {r for r in REASONS if not r.startswith("judge:")}


@pytest.mark.parametrize("reason", list(CASES))
def test_each_reason(diffs: dict[str, str], reason: str) -> None:
    c = candidate(diffs, **resolve(diffs, CASES[reason]))
    decision = check_candidate(c, FilterConfig())
    assert decision == FilterDecision(ok=False, reason=reason, detail=decision.detail)
    assert decision.detail


def test_the_real_fix_is_kept(diffs: dict[str, str]) -> None:
    assert check_candidate(candidate(diffs), FilterConfig()) == FilterDecision(ok=True)


@pytest.mark.parametrize(
    "issue",
    [
        # A traceback with an explanation around it is a good issue, not a dump.
        f"parse_duration crashes on minutes.\n\n```\n{TRACEBACK}\n```\n\n"
        "The minutes part keeps its trailing m, so int() fails; it should be stripped first.",
        # One link among enough prose.
        ISSUE + "\n\nFirst reported at https://example.org/acme/durations/discussions/4411.",
    ],
)
def test_good_issues_with_logs_or_links_are_kept(diffs: dict[str, str], issue: str) -> None:
    assert check_candidate(candidate(diffs, problem_statement=issue), FilterConfig()).ok


def test_java_trace_is_a_log_dump(diffs: dict[str, str]) -> None:
    c = candidate(diffs, problem_statement=f"NPE\n{JAVA_TRACE}")
    assert check_candidate(c, FilterConfig()).reason == "issue:log_dump"


def test_first_failing_reason_wins(diffs: dict[str, str]) -> None:
    # Short issue and empty patch: the issue is checked first.
    c = candidate(diffs, problem_statement="broken", patch="")
    assert check_candidate(c, FilterConfig()).reason == "issue:too_short"
    # Malformed gold patch and a test patch touching source: the gold patch comes first.
    c = candidate(diffs, patch=truncated(diffs["gold"]), test_patch=diffs["pr"])
    assert check_candidate(c, FilterConfig()).reason == "patch:malformed"


def test_limits_come_from_the_config(diffs: dict[str, str]) -> None:
    many = candidate(diffs, patch=diffs["many_files"])
    assert check_candidate(many, FilterConfig(max_patch_files=16)).ok
    binary = candidate(diffs, patch=diffs["binary"])
    assert check_candidate(binary, FilterConfig(allow_binary=True)).ok
    short = candidate(diffs, problem_statement="x" * 10)
    assert check_candidate(short, FilterConfig(min_issue_chars=10)).ok
    with pytest.raises(ValueError, match="extra"):
        FilterConfig(max_files=3)  # type: ignore[call-arg]


# --- the judge ---


class FixedPolicy:
    """A Policy whose every answer is the same text: a stand-in for a hosted LLM."""

    def __init__(self, text: str):
        self.text = text
        self.info = PolicyInfo(name="fixed")
        self.requests: list[PolicyRequest] = []

    async def agenerate(self, requests: Sequence[PolicyRequest]) -> list[PolicyOutput]:
        self.requests.extend(requests)
        return [PolicyOutput(Message(role="assistant", content=self.text)) for _ in requests]


@pytest.mark.parametrize(
    ("reply", "reason", "detail"),
    [
        ('{"keep": true, "why": "clear and fixed"}', None, "clear and fixed"),
        ('```json\n{"keep": false, "why": "the issue is vague"}\n```', "judge:rejected", "vague"),
        (
            'The issue is clear. {"note": 1} Verdict: {"keep": false, "why": "partial"}',
            "judge:rejected",
            "partial",
        ),
        ("Keep it, the issue is clear.", "judge:unparseable", "Keep it"),
        ('{"keep": "yes", "why": "a string is not a verdict"}', "judge:unparseable", "keep"),
        ('{"keep": true', "judge:unparseable", "keep"),
        ("", "judge:unparseable", "empty"),
    ],
)
def test_judge_verdicts(diffs: dict[str, str], reply: str, reason: str | None, detail: str) -> None:
    policy = FixedPolicy(reply)
    decision = judge_candidate(candidate(diffs), policy)
    assert decision.ok == (reason is None) and decision.reason == reason
    assert detail in decision.detail
    (request,) = policy.requests
    assert ISSUE.strip() in request.messages[-1].content
    assert diffs["gold"] in request.messages[-1].content
    assert diffs["tests"] not in request.messages[-1].content  # the judge never sees tests
    assert parse_verdict(reply) == decision


def test_filter_candidates_judges_only_survivors(diffs: dict[str, str]) -> None:
    policy = FixedPolicy('{"keep": false, "why": "no"}')
    good, bad = candidate(diffs), candidate(diffs, patch="")
    decisions = filter_candidates([good, bad], FilterConfig(judge=True), policy)
    assert [d.reason for d in decisions] == ["judge:rejected", "patch:empty"]
    assert len(policy.requests) == 1
    assert [d.ok for d in filter_candidates([good, bad], FilterConfig(), policy)] == [True, False]
    with pytest.raises(ConfigError, match="judge"):
        filter_candidates([good], FilterConfig(judge=True))


@pytest.fixture()
def chat_server() -> Iterator[tuple[list[dict[str, Any]], list[str], str]]:
    """A loopback Chat Completions endpoint answering each request with the next scripted text."""
    bodies: list[dict[str, Any]] = []
    script: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:  # noqa: N802
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            bodies.append(body)
            text = script.pop(0)
            message = {"role": "assistant", "content": text}
            data = json.dumps({"choices": [{"index": 0, "message": message}]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield bodies, script, f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def test_judge_through_the_openai_backend(
    diffs: dict[str, str], chat_server: tuple[list[dict[str, Any]], list[str], str]
) -> None:
    bodies, script, url = chat_server
    policy = make_policy("openai", base_url=url, model="judge-1", retries=0)
    script += ['{"keep": false, "why": "the patch fixes hours only"}', "sure!"]
    rejected = judge_candidate(candidate(diffs), policy)
    assert rejected == FilterDecision(False, "judge:rejected", "the patch fixes hours only")
    assert judge_candidate(candidate(diffs), policy).reason == "judge:unparseable"
    sent = bodies[0]
    assert sent["model"] == "judge-1" and sent["temperature"] == 0.0
    assert [m["role"] for m in sent["messages"]] == ["system", "user"]
    assert "parse_duration('1h30m') returns 90" in sent["messages"][1]["content"]
