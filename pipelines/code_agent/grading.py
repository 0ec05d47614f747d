"""Grade an agent's submission with the runner and JUnit reading that validation used.

The submission is the agent's diff. Its changes to test files are dropped (the same
`is_test_path` rule that refuses a gold patch touching tests), the task's test patch is
applied over what remains, and the suite runs in a fresh sandbox of the instance image that
the agent never touched. Reward 1 iff every F2P and every P2P test passes. An agent that edits
the tests, or prints "PASSED" lines, changes nothing of this: the verdict comes from the
report the framework writes in the grading sandbox.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from envsynth.schema import CodeInstance, Verdict
from pipelines.code_agent.junit import TestStatus
from pipelines.code_agent.patches import PatchError, drop_paths, is_test_path
from pipelines.code_agent.recipes import EnvRecipe
from pipelines.code_agent.runner import PatchApplyError, TestRun, run_suite


class Grade(BaseModel):
    """A verdict with its per-test evidence."""

    model_config = ConfigDict(extra="forbid")

    verdict: Verdict
    tests: dict[str, str] = Field(default_factory=dict)  # F2P and P2P ids → status
    dropped_test_edits: bool = False
    run: TestRun | None = None


def task_recipe(payload: CodeInstance) -> tuple[str, EnvRecipe]:
    """The instance image and the recipe stored with an accepted code task."""
    return payload.extra["image"], EnvRecipe.model_validate(payload.extra["recipe"])


def grade(payload: CodeInstance, diff: str) -> Grade:
    """Grade the agent's `diff` against the task; see the module docstring."""
    image, recipe = task_recipe(payload)
    try:
        kept = drop_paths(diff, is_test_path) if diff.strip() else ""
    except PatchError as e:
        return Grade(verdict=Verdict(reward=0.0, reason=f"the submitted diff is malformed: {e}"))
    patches = [("submission", kept), ("test", payload.test_patch)]
    try:
        run = run_suite(image, recipe, patches)
    except PatchApplyError as e:
        return Grade(verdict=Verdict(reward=0.0, reason=str(e)), dropped_test_edits=kept != diff)
    wanted = [*payload.fail_to_pass, *payload.pass_to_pass]
    statuses = {t: run.results.get(t, "missing") for t in wanted}
    f2p = sum(statuses[t] == TestStatus.passed for t in payload.fail_to_pass)
    p2p = sum(statuses[t] == TestStatus.passed for t in payload.pass_to_pass)
    solved = f2p == len(payload.fail_to_pass) and p2p == len(payload.pass_to_pass)
    components = {
        "fail_to_pass": f2p / max(1, len(payload.fail_to_pass)),
        "pass_to_pass": p2p / max(1, len(payload.pass_to_pass)),
    }
    if not run.results:
        reason = f"the test suite gave no results: {run.problem}"
    else:
        reason = "all tests pass" if solved else "some FAIL_TO_PASS or PASS_TO_PASS tests fail"
    verdict = Verdict(
        reward=1.0 if solved else 0.0,
        components=components,
        reason=reason,
    )
    return Grade(
        verdict=verdict,
        tests={t: str(s) for t, s in statuses.items()},
        dropped_test_edits=kept != diff,
        run=run,
    )
