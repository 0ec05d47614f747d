"""Candidate filters: cheap checks that drop an issue–PR pair before any environment is built.

Building an environment and running its tests three times over costs minutes; these checks
cost milliseconds, so they run first and each rejection records one stable reason string
(`REASONS`), which the data card counts. An optional LLM judge, through any Policy, asks the
one question heuristics cannot: is the issue specified well enough that its patch follows.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field, StrictBool, ValidationError

from envsynth.errors import ConfigError
from envsynth.policy.base import Policy, PolicyRequest, generate
from envsynth.schema import Message, SamplingParams
from pipelines.code_agent.candidate import CodeCandidate
from pipelines.code_agent.patches import PatchError, PatchInfo, parse_patch

REASONS: tuple[str, ...] = (
    "issue:too_short",
    "issue:link_only",
    "issue:log_dump",
    "patch:malformed",
    "patch:empty",
    "patch:no_source_change",
    "patch:touches_tests",
    "test_patch:malformed",
    "test_patch:empty",
    "test_patch:touches_source",
    "binary:patch",
    "size:patch_files",
    "size:patch_lines",
    "size:test_patch_lines",
    "judge:rejected",
    "judge:unparseable",
)
"""Every reason a filter records, in the order `check_candidate` tries them (judge last)."""

# A log dump: at least this many log or stack-trace lines, and fewer prose words than this.
_LOG_DUMP_MIN_LINES = 5
_LOG_DUMP_MAX_PROSE_WORDS = 10

_URL = re.compile(r"\b(?:https?|ftp)://[^\s<>()\[\]]+|\bwww\.[^\s<>()\[\]]+", re.IGNORECASE)
_WORD = re.compile(r"[^\W\d_]{2,}")  # a word of prose: two letters or more
_FENCE = re.compile(r"^\s*(```|~~~)")
_LOG_LINE = re.compile(
    r"""^\s*(?:
        Traceback\ \(most\ recent\ call\ last\):           # Python
      | File\ "[^"]+",\ line\ \d+                          # Python frame
      | (?:\w+\.)*\w*(?:Error|Exception|Warning)\b:?       # Python / Java exception line
      | at\ [\w$.<>]+\s*\(.*\)                              # Java / JS frame
      | at\ (?:async\ )?[\w$./<>-]+:\d+:\d+                 # JS frame without a function
      | goroutine\ \d+\ \[                                  # Go
      | [\w./-]+\.go:\d+                                    # Go frame
      | panic:                                              # Go / Rust
      | \#\d+\s+0x[0-9a-f]+                                 # gdb / sanitizer frame
      | \d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}                    # timestamped log line
      | \d{2}:\d{2}:\d{2}[.,]\d+                            # time-stamped log line
      | \[?(?:TRACE|DEBUG|INFO|WARN|WARNING|ERROR|FATAL|CRITICAL)\]?[:\s]  # level prefix
      | (?:E|>)\ \ \ .*                                     # pytest failure lines
      | \$\ |>>>\                                           # shell / REPL prompt
      | \.\.\.\ \d+\ more                                   # Java "... 12 more"
    )""",
    re.VERBOSE,
)


class FilterConfig(BaseModel):
    """Limits of the heuristic filters.

    Attributes:
        min_issue_chars: shortest issue text (stripped) worth building an environment for.
        max_patch_files / max_patch_lines: largest gold patch, in files and changed lines.
        max_test_patch_lines: largest test patch, in changed lines.
        allow_binary: accept patches that change binary files (which `git apply` needs the
            full `GIT binary patch` data for).
        judge: also ask an LLM judge (`filter_candidates` then needs a Policy).
    """

    model_config = ConfigDict(extra="forbid")

    min_issue_chars: int = Field(default=40, ge=0)
    max_patch_files: int = Field(default=15, ge=1)
    max_patch_lines: int = Field(default=800, ge=1)
    max_test_patch_lines: int = Field(default=2000, ge=1)
    allow_binary: bool = False
    judge: bool = False


@dataclass(frozen=True)
class FilterDecision:
    """Whether a candidate goes on; if not, the reason (one of `REASONS`) and details."""

    ok: bool
    reason: str | None = None
    detail: str = ""


_KEEP = FilterDecision(ok=True)


def _reject(reason: str, detail: str) -> FilterDecision:
    return FilterDecision(ok=False, reason=reason, detail=detail)


def check_candidate(c: CodeCandidate, config: FilterConfig) -> FilterDecision:
    """Run the heuristic filters in `REASONS` order; the first that fails decides.

    Order: issue text, gold patch, test patch, binary files, sizes. A patch that cannot be
    read fails before any question about its contents is asked.
    """
    issue = _check_issue(c.problem_statement, config)
    if not issue.ok:
        return issue
    try:
        patch = parse_patch(c.patch)
    except PatchError as e:
        return _reject("patch:malformed", f"gold patch: {e}")
    try:
        tests = parse_patch(c.test_patch)
    except PatchError as e:
        return _reject("test_patch:malformed", f"test patch: {e}")
    for decision in (
        _check_gold(patch),
        _check_tests(tests),
        _check_binary(patch, tests, config),
        _check_sizes(patch, tests, config),
    ):
        if not decision.ok:
            return decision
    return _KEEP


def _check_issue(text: str, config: FilterConfig) -> FilterDecision:
    stripped = text.strip()
    if len(stripped) < config.min_issue_chars:
        return _reject("issue:too_short", f"{len(stripped)} characters < {config.min_issue_chars}")
    urls = _URL.findall(stripped)
    if urls:
        rest = _URL.sub(" ", stripped)
        prose = " ".join(_WORD.findall(rest))
        url_chars = sum(len(u) for u in urls)
        if len(prose) < config.min_issue_chars or url_chars > len(rest.strip()):
            return _reject(
                "issue:link_only",
                f"{len(urls)} link(s) and {len(prose)} characters of prose around them",
            )
    log_lines, prose_words = _log_and_prose(stripped)
    if log_lines >= _LOG_DUMP_MIN_LINES and prose_words < _LOG_DUMP_MAX_PROSE_WORDS:
        return _reject(
            "issue:log_dump",
            f"{log_lines} log/trace lines and {prose_words} words of prose "
            f"(< {_LOG_DUMP_MAX_PROSE_WORDS})",
        )
    return _KEEP


def _log_and_prose(text: str) -> tuple[int, int]:
    """(log or stack-trace lines, words of prose outside code fences and log lines)."""
    log_lines = prose_words = 0
    fenced = False
    for line in text.splitlines():
        if _FENCE.match(line):
            fenced = not fenced
            continue
        if _LOG_LINE.match(line):
            log_lines += 1
        elif not fenced and not line.startswith(("    ", "\t")):
            prose_words += len(_WORD.findall(_URL.sub(" ", line)))
    return log_lines, prose_words


def _check_gold(patch: PatchInfo) -> FilterDecision:
    if not patch.files:
        return _reject("patch:empty", "the gold patch changes no file")
    if not patch.touches_source:
        return _reject(
            "patch:no_source_change", f"the gold patch changes only tests: {patch.paths[:5]}"
        )
    if patch.touches_tests:
        tests = [f.path for f in patch.files if f.is_test]
        return _reject("patch:touches_tests", f"the gold patch changes tests: {tests[:5]}")
    return _KEEP


def _check_tests(tests: PatchInfo) -> FilterDecision:
    if not tests.files:
        return _reject("test_patch:empty", "the test patch changes no file")
    if tests.touches_source:
        source = [f.path for f in tests.files if not f.is_test]
        return _reject(
            "test_patch:touches_source", f"the test patch changes non-test files: {source[:5]}"
        )
    return _KEEP


def _check_binary(patch: PatchInfo, tests: PatchInfo, config: FilterConfig) -> FilterDecision:
    if config.allow_binary:
        return _KEEP
    for name, info in (("gold patch", patch), ("test patch", tests)):
        binary = [f.path for f in info.files if f.is_binary]
        if binary:
            return _reject("binary:patch", f"the {name} changes binary files: {binary[:5]}")
    return _KEEP


def _check_sizes(patch: PatchInfo, tests: PatchInfo, config: FilterConfig) -> FilterDecision:
    if len(patch.files) > config.max_patch_files:
        return _reject("size:patch_files", f"{len(patch.files)} files > {config.max_patch_files}")
    if patch.lines_changed > config.max_patch_lines:
        return _reject(
            "size:patch_lines", f"{patch.lines_changed} changed lines > {config.max_patch_lines}"
        )
    if tests.lines_changed > config.max_test_patch_lines:
        return _reject(
            "size:test_patch_lines",
            f"{tests.lines_changed} changed lines > {config.max_test_patch_lines}",
        )
    return _KEEP


# --- the LLM judge ---

JUDGE_PROMPT = """\
You review candidate tasks for a benchmark of software-engineering agents. Each task gives an \
agent an issue and a repository; the agent must write a patch, which hidden tests then check.

Keep a task only if both hold:
1. The issue says what is wrong or wanted clearly enough that a skilled engineer, reading it \
and the code, would know what to change, without seeing the reference patch or the tests.
2. The reference patch resolves that issue (not something else, not only part of it).

Answer with one JSON object and nothing else: {"keep": true or false, "why": "one sentence"}"""


class _Verdict(BaseModel):
    model_config = ConfigDict(extra="ignore")

    keep: StrictBool
    why: str = ""


def judge_request(c: CodeCandidate, *, max_patch_chars: int = 12_000) -> PolicyRequest:
    """The judge's prompt for one candidate (greedy sampling, seeded for reproducibility)."""
    patch = c.patch if len(c.patch) <= max_patch_chars else c.patch[:max_patch_chars] + "\n…"
    user = (
        f"Repository: {c.repo}\n\n<issue>\n{c.problem_statement.strip()}\n</issue>\n\n"
        f"<reference_patch>\n{patch}</reference_patch>"
    )
    return PolicyRequest(
        messages=[Message(role="system", content=JUDGE_PROMPT), Message(role="user", content=user)],
        sampling=SamplingParams(temperature=0.0, max_tokens=512, seed=0),
    )


def parse_verdict(content: str) -> FilterDecision:
    """Read the judge's reply: the first JSON object in it with a boolean `keep`.

    The object may stand alone, inside a code fence, or after some prose.
    """
    decoder = json.JSONDecoder()
    for match in re.finditer(r"\{", content):
        try:
            value, _ = decoder.raw_decode(content, match.start())
            verdict = _Verdict.model_validate(value)
        except (ValueError, ValidationError):
            continue
        if verdict.keep:
            return FilterDecision(ok=True, detail=verdict.why)
        return _reject("judge:rejected", verdict.why or "the judge gave no reason")
    shown = content.strip()[:200] or "(empty reply)"
    return _reject("judge:unparseable", f'no {{"keep": bool}} object in the reply: {shown!r}')


def judge_candidates(
    candidates: Sequence[CodeCandidate], policy: Policy, *, max_patch_chars: int = 12_000
) -> list[FilterDecision]:
    """Ask the judge about every candidate in one batch.

    Raises:
        PolicyError: the backend failed (an infrastructure problem, not a verdict).
    """
    if not candidates:
        return []
    requests = [judge_request(c, max_patch_chars=max_patch_chars) for c in candidates]
    return [parse_verdict(out.message.content) for out in generate(policy, requests)]


def judge_candidate(
    c: CodeCandidate, policy: Policy, *, max_patch_chars: int = 12_000
) -> FilterDecision:
    """Ask the judge whether the issue is well specified and the patch resolves it."""
    return judge_candidates([c], policy, max_patch_chars=max_patch_chars)[0]


def filter_candidates(
    candidates: Sequence[CodeCandidate], config: FilterConfig, policy: Policy | None = None
) -> list[FilterDecision]:
    """The heuristics for every candidate, then (with `config.judge`) the judge on survivors.

    Raises:
        ConfigError: `config.judge` is set but no policy was given.
    """
    if config.judge and policy is None:
        raise ConfigError(
            "the code filters' LLM judge is on (judge=true) but no policy was given; "
            "name one (e.g. --policy openai --policy-arg base_url=...) or set judge=false"
        )
    decisions = [check_candidate(c, config) for c in candidates]
    if config.judge and policy is not None:
        survivors = [i for i, d in enumerate(decisions) if d.ok]
        verdicts = judge_candidates([candidates[i] for i in survivors], policy)
        for i, verdict in zip(survivors, verdicts, strict=True):
            decisions[i] = verdict
    return decisions
