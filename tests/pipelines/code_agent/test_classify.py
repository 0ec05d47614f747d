"""F2P / P2F / P2P / flaky classification, against a direct reading of the definitions."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipelines.code_agent.junit import TestStatus
from pipelines.code_agent.runner import PatchApplyError, TestRun
from pipelines.code_agent.validate import classify, validate

P, F, E, S = TestStatus.passed, TestStatus.failed, TestStatus.error, TestStatus.skipped


def run(**results: TestStatus) -> TestRun:
    return TestRun(results=dict(results), source="junit")


def test_the_four_lists_and_flaky() -> None:
    tests = [run(a=F, b=P, c=P, d=F, e=P, g=E), run(a=F, b=P, c=P, d=F, e=F, g=S)]
    gold = [run(a=P, b=P, c=F, d=F, e=P, g=P), run(a=P, b=P, c=F, d=F, e=P, g=P)]
    out = classify(tests, gold)
    assert out.fail_to_pass == ["a", "g"]  # error and skipped count as not passing
    assert out.pass_to_pass == ["b"]
    assert out.pass_to_fail == ["c"]
    assert out.fail_to_fail == ["d"]
    assert out.flaky == ["e"]
    assert not out.accepted and out.reason == "validate:pass_to_fail"


def test_missing_counts_as_not_passing_and_missing_in_one_repeat_is_flaky() -> None:
    out = classify([run(), run()], [run(new=P), run(new=P)])
    assert out.fail_to_pass == ["new"] and out.accepted
    out = classify([run(x=P), run()], [run(x=P), run(x=P)])
    assert out.flaky == ["x"] and not out.pass_to_pass


def test_no_fail_to_pass_is_refused() -> None:
    out = classify([run(a=P)], [run(a=P)])
    assert out.reason == "validate:no_fail_to_pass" and not out.accepted


STATUS = st.sampled_from([P, F, E, S, None])


@given(st.lists(st.tuples(STATUS, STATUS, STATUS, STATUS), min_size=1, max_size=6))
def test_every_test_lands_in_exactly_one_list(rows: list[tuple]) -> None:
    names = [f"t{i}" for i in range(len(rows))]

    def runs(col: slice) -> list[TestRun]:
        out = []
        for j in range(col.start, col.stop):
            out.append(TestRun(results={n: r[j] for n, r in zip(names, rows, strict=True) if r[j]}))
        return out

    tests, gold = runs(slice(0, 2)), runs(slice(2, 4))
    out = classify(tests, gold)
    lists = [out.fail_to_pass, out.pass_to_fail, out.pass_to_pass, out.fail_to_fail, out.flaky]
    seen = list(itertools.chain(*lists))
    present = {n for n, r in zip(names, rows, strict=True) if any(r)}
    assert sorted(seen) == sorted(present)
    for n, r in zip(names, rows, strict=True):
        if n not in present:
            continue
        before, after = [s == P for s in r[:2]], [s == P for s in r[2:]]
        flaky = len(set(before)) > 1 or len(set(after)) > 1
        assert (n in out.flaky) == flaky
        if not flaky:
            assert (n in out.fail_to_pass) == (not before[0] and after[0])
            assert (n in out.pass_to_fail) == (before[0] and not after[0])


def test_validate_runs_each_state_n_times_with_its_patches() -> None:
    calls: list[tuple[str, ...]] = []

    def fake_run(patches):  # the runner's contract, with results computed from the patches
        names = tuple(name for name, _ in patches)
        calls.append(names)
        fixed = "gold" in names
        results = {"old": P}
        if "test" in names:
            results["new"] = P if fixed else F
        return TestRun(results=results, source="junit")

    result = validate(fake_run, "TEST", "GOLD", runs=3)
    assert calls == [()] * 3 + [("test",)] * 3 + [("test", "gold")] * 3
    assert result.accepted and result.outcome.fail_to_pass == ["new"]
    assert result.outcome.pass_to_pass == ["old"]


def test_validate_reports_a_patch_that_does_not_apply() -> None:
    def fake_run(patches):
        if any(name == "gold" for name, _ in patches):
            raise PatchApplyError("gold", "error: patch failed: a.py:3")
        return TestRun(results={"t": F}, source="junit")

    result = validate(fake_run, "T", "G", runs=2)
    assert result.rejection == "patch:gold_does_not_apply" and "a.py:3" in result.detail


def test_validate_refuses_a_state_without_any_report() -> None:
    result = validate(lambda p: TestRun(problem="the test command wrote no report"), "", "", 1)
    assert result.rejection == "validate:no_results_base"
    with pytest.raises(ValueError):
        validate(lambda p: TestRun(), "", "", runs=0)
