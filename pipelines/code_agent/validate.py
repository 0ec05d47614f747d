"""Three-state validation: which tests the gold patch fixes, breaks, or leaves alone.

States (DESIGN §9): `base` (the repository at the base commit), `tests` (base + test patch)
and `gold` (base + test patch + gold patch), each run `runs` times with the network off.

- A test is **flaky** when its outcome (passing or not) differs between the repeats of one
  state; flaky tests are recorded and left out of every other list.
- **F2P**: not passing in every `tests` run and passing in every `gold` run.
- **P2F**: passing in every `tests` run and not passing in every `gold` run.
- **P2P**: passing in every run of both.

"Passing" means the report says passed; failed, error, skipped and missing all count as not
passing. A candidate is accepted iff F2P > 0 and P2F = 0 (DeepSeek-V3.2, code agent).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from pipelines.code_agent.junit import TestStatus
from pipelines.code_agent.runner import PatchApplyError, TestRun

State = Literal["base", "tests", "gold"]
STATES: tuple[State, ...] = ("base", "tests", "gold")


class Outcome(BaseModel):
    """The lists a validation produces, and whether they make an acceptable task."""

    model_config = ConfigDict(extra="forbid")

    fail_to_pass: list[str] = Field(default_factory=list)
    pass_to_fail: list[str] = Field(default_factory=list)
    pass_to_pass: list[str] = Field(default_factory=list)
    fail_to_fail: list[str] = Field(default_factory=list)
    flaky: list[str] = Field(default_factory=list)

    @property
    def accepted(self) -> bool:
        return bool(self.fail_to_pass) and not self.pass_to_fail

    @property
    def reason(self) -> str | None:
        """Why the candidate is refused, as a stable reason string, or None."""
        if self.pass_to_fail:
            return "validate:pass_to_fail"
        if not self.fail_to_pass:
            return "validate:no_fail_to_pass"
        return None


class Validation(BaseModel):
    """Everything validation observed for one candidate: every state's runs and the outcome."""

    model_config = ConfigDict(extra="forbid")

    runs: dict[str, list[TestRun]] = Field(default_factory=dict)
    outcome: Outcome = Field(default_factory=Outcome)
    rejection: str | None = None
    detail: str = ""

    @property
    def accepted(self) -> bool:
        return self.rejection is None


def _passing(runs: Sequence[TestRun], test: str) -> list[bool]:
    return [run.results.get(test) == TestStatus.passed for run in runs]


def classify(tests_runs: Sequence[TestRun], gold_runs: Sequence[TestRun]) -> Outcome:
    """F2P / P2F / P2P / F2F / flaky from the repeated runs of the two patched states."""
    if not tests_runs or not gold_runs:
        raise ValueError("classify needs at least one run of each state")
    ids = set().union(*(r.results for r in (*tests_runs, *gold_runs)))
    out = Outcome()
    for test in sorted(ids):
        before, after = _passing(tests_runs, test), _passing(gold_runs, test)
        if len(set(before)) > 1 or len(set(after)) > 1:
            out.flaky.append(test)
        elif not before[0] and after[0]:
            out.fail_to_pass.append(test)
        elif before[0] and not after[0]:
            out.pass_to_fail.append(test)
        elif before[0]:
            out.pass_to_pass.append(test)
        else:
            out.fail_to_fail.append(test)
    return out


def validate(
    run: Callable[[Sequence[tuple[str, str]]], TestRun],
    test_patch: str,
    gold_patch: str,
    runs: int = 3,
) -> Validation:
    """Run the three states `runs` times each through `run(patches)` and classify.

    `run` is `runner.run_suite` bound to the instance image and recipe; the base state's runs
    are kept for the record (which tests existed before the test patch, and whether the suite
    ran at all) and do not enter the lists.
    """
    if runs < 1:
        raise ValueError("runs must be at least 1")
    states: dict[State, list[tuple[str, str]]] = {
        "base": [],
        "tests": [("test", test_patch)],
        "gold": [("test", test_patch), ("gold", gold_patch)],
    }
    result = Validation()
    for state in STATES:
        result.runs[state] = []
        for _ in range(runs):
            try:
                result.runs[state].append(run(states[state]))
            except PatchApplyError as e:
                result.rejection = f"patch:{e.name}_does_not_apply"
                result.detail = str(e)
                return result
        # No report at all is an environment problem; an empty report (no tests yet) is not.
        broken = [r for r in result.runs[state] if r.source == "none"]
        if broken:
            result.rejection = f"validate:no_results_{state}"
            result.detail = broken[0].problem or ""
            return result
    result.outcome = classify(result.runs["tests"], result.runs["gold"])
    result.rejection = result.outcome.reason
    return result
