"""`CodeCandidate`: one issue–PR pair as every source yields it, before any check.

Field names follow SWE-bench's instance files, so a candidate read from one, mined from
GitHub or from a local dump has the same shape, and an accepted one exports as it came.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from envsynth.errors import EnvsynthError

SourceKind = Literal["github", "local", "swebench"]


class CodeAgentError(EnvsynthError):
    """A code-agent input or step failed; the message says which and why."""


class CodeCandidate(BaseModel):
    """An issue and the pull request that closed it.

    Attributes:
        instance_id: `owner__name-<PR number>` (SWE-bench's convention).
        repo: `owner/name`.
        base_commit: the commit the pull request was made against.
        patch: the gold patch, the PR's diff minus its test files (unified diff).
        test_patch: the PR's diff of test files only.
        problem_statement: the issue's title and body.
        created_at: when the PR was created (ISO 8601), for ordering and cut-offs.
        version / environment_setup_commit: SWE-bench's grouping of instances that share an
            environment; empty when the source does not say.
        hints_text: issue comments made before the fix, when known.
        source: where the candidate came from.
        repo_path: a local git mirror of the repository holding `base_commit`.
        pull_number / issue_numbers: the PR and the issues it closes.
        upstream_fail_to_pass / upstream_pass_to_pass: test lists the source claimed
            (SWE-bench files carry them); kept for comparison, never trusted: validation
            computes its own.
    """

    model_config = ConfigDict(extra="forbid")

    instance_id: str = Field(min_length=1)
    repo: str = Field(pattern=r"^[\w.-]+/[\w.-]+$")
    base_commit: str = Field(min_length=4)
    patch: str
    test_patch: str
    problem_statement: str
    created_at: str = ""
    version: str = ""
    environment_setup_commit: str = ""
    hints_text: str = ""
    source: SourceKind
    repo_path: str | None = None
    pull_number: int | None = None
    issue_numbers: list[int] = Field(default_factory=list)
    upstream_fail_to_pass: list[str] = Field(default_factory=list)
    upstream_pass_to_pass: list[str] = Field(default_factory=list)
