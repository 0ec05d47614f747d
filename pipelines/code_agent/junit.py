"""Per-test results from JUnit XML reports, with one test-id convention per framework.

Whether a test passed is read from the report the framework wrote, through `junitparser`,
never from an exit code or from text the code under test could print (DESIGN §3). Ids are
stable strings that validation compares across runs and that export writes as
FAIL_TO_PASS / PASS_TO_PASS:

| framework                  | id                                            |
| -------------------------- | --------------------------------------------- |
| pytest                     | `path/to/test_file.py::Class::name[param]`    |
| jest, vitest, mocha        | `classname::name`, both as the reporter wrote them |
| go                         | `package::TestName/subtest`                   |
| surefire, gradle           | `classname::name` (`org.example.AppTest::testAdd`) |
| ctest                      | `name`                                        |
| phpunit                    | `class::method` (`Tests\\Unit\\ParserTest::testParse`) |

For jest, vitest and mocha the two attributes are whatever the reporter's templates made of
the describe blocks, test title and file: jest-junit's defaults give classname = name =
"<describe titles> <test title>", vitest gives classname = the test file and name =
"<describe> > <title>", mocha-junit-reporter gives classname = the test title and name = the
full title. The id only has to be stable between runs of one recipe, which it is.

Where a framework writes no XML (`go test -json`) it is converted here; `parse_log` reads a
console summary only when no report exists at all.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from enum import StrEnum
from typing import TypeVar, cast

from junitparser import (
    Attr,
    Error,
    Failure,
    JUnitXml,
    JUnitXmlError,
    Skipped,
    TestCase,
    TestSuite,
    xunit2,
)

from envsynth.errors import UnknownIdError
from pipelines.code_agent.candidate import CodeAgentError


class TestStatus(StrEnum):
    """A test's outcome in one run. Only `passed` counts as passing."""

    __test__ = False  # not a pytest test class, whatever its name

    passed = "passed"
    failed = "failed"
    error = "error"
    skipped = "skipped"


_SEVERITY = {TestStatus.passed: 0, TestStatus.skipped: 1, TestStatus.failed: 2, TestStatus.error: 3}


class JUnitError(CodeAgentError):
    """A report is not JUnit XML (or `go test -json`); the message has the parser's reason."""


class _Case(xunit2.TestCase):
    """A testcase with the attributes some reporters add beyond the schema."""

    file = Attr()  # pytest xunit1, phpunit, jest-junit with addFileAttribute
    status = Attr()  # ctest and googletest: run | fail | notrun | disabled
    class_ = Attr("class")  # phpunit: the PHP class name with its namespace


class _Suite(xunit2.TestSuite):
    testcase = _Case


class _Report(xunit2.JUnitXml):
    testsuite = _Suite


def _worst(a: TestStatus, b: TestStatus) -> TestStatus:
    return a if _SEVERITY[a] >= _SEVERITY[b] else b


def read_junit(xml: bytes, *, framework: str) -> dict[str, TestStatus]:
    """Test id → status for every testcase of one report.

    Handles a `<testsuites>` root or a bare `<testsuite>`, and suites nested in suites. A
    testcase is `error` with an `<error>`, `failed` with a `<failure>`, `skipped` with a
    `<skipped>` or a `status` of notrun / disabled (ctest, googletest); a test that passed
    only on a rerun (`<flakyFailure>`, `<flakyError>`, surefire) counts as `failed`, since
    validation runs its own repeats and wants clean passes. An id seen more than once keeps
    its worst status (error > failed > skipped > passed).

    Args:
        xml: the report's bytes.
        framework: one of the frameworks in the module table; it decides the ids.

    Raises:
        JUnitError: the bytes are not XML, the root is neither testsuites nor testsuite, or
            a testcase has no name.
        UnknownIdError: the framework is not one this module knows.
    """
    make_id = _id_function(framework)
    try:
        report = _Report.fromstring(xml)
    except (SyntaxError, JUnitXmlError) as e:  # ElementTree and lxml errors are SyntaxErrors
        raise JUnitError(f"not a JUnit XML report: {e}") from None
    results: dict[str, TestStatus] = {}
    for suite in report:
        for item in suite:
            case = cast(_Case, item)  # _Suite.testcase makes every testcase a _Case
            if not case.name:
                raise JUnitError(
                    f"a testcase in suite {suite.name!r} has no name; the report is damaged"
                )
            test_id, status = make_id(case), _status(case)
            results[test_id] = _worst(results.get(test_id, status), status)
    return results


def read_junit_files(reports: Iterable[bytes], framework: str) -> dict[str, TestStatus]:
    """`read_junit` over several reports, merged (an id in several keeps its worst status)."""
    merged: dict[str, TestStatus] = {}
    for xml in reports:
        for test_id, status in read_junit(xml, framework=framework).items():
            merged[test_id] = _worst(merged.get(test_id, status), status)
    return merged


def _status(case: _Case) -> TestStatus:
    results = case.result
    if any(isinstance(r, Error) for r in results):
        return TestStatus.error
    if any(isinstance(r, Failure) for r in results) or case.interim_result:
        return TestStatus.failed
    if any(isinstance(r, Skipped) for r in results):
        return TestStatus.skipped
    if (case.status or "").lower() in ("notrun", "disabled", "skipped"):
        return TestStatus.skipped
    return TestStatus.passed


def _pytest_id(case: _Case) -> str:
    """`path.py::Class::name`, pytest's node id.

    The `file` attribute (junit_family=xunit1) gives the path when the classname starts with
    that file's module. Otherwise (xunit2 writes no `file`; an inherited test's `file` is
    where the base class lives) the classname is cut where its capitalised parts, the
    classes, begin and the rest becomes the path, which fails only for directories whose
    names hold dots or start with a capital.
    """
    name, classname = case.name, case.classname or ""
    file = (case.file or "").replace("\\", "/")
    module = file[:-3].replace("/", ".") if file.endswith(".py") else None
    if module and (classname == module or classname.startswith(module + ".")):
        classes = classname[len(module) + 1 :].split(".") if classname != module else []
        return "::".join([file, *classes, name])
    if not classname:  # a collection error: pytest names the module in `name`
        return file or name.replace(".", "/") + ".py"
    parts = classname.split(".")
    cut = len(parts)
    while cut > 1 and parts[cut - 1][:1].isupper():
        cut -= 1
    path = "/".join(parts[:cut]) + ".py"
    return "::".join([path, *parts[cut:], name])


def _classname_id(case: _Case) -> str:
    return f"{case.classname}::{case.name}" if case.classname else case.name


def _name_id(case: _Case) -> str:
    return case.name


def _phpunit_id(case: _Case) -> str:
    owner = case.class_ or (case.classname or "").replace(".", "\\")
    return f"{owner}::{case.name}" if owner else case.name


_ID_FUNCTIONS: dict[str, Callable[[_Case], str]] = {
    "pytest": _pytest_id,
    "jest": _classname_id,
    "vitest": _classname_id,
    "mocha": _classname_id,
    "go": _classname_id,
    "surefire": _classname_id,
    "gradle": _classname_id,
    "ctest": _name_id,
    "phpunit": _phpunit_id,
}
FRAMEWORKS = tuple(_ID_FUNCTIONS)


def _id_function(framework: str) -> Callable[[_Case], str]:
    try:
        return _ID_FUNCTIONS[framework]
    except KeyError:
        raise UnknownIdError("test framework", framework, _ID_FUNCTIONS) from None


# --- go test -json ---


def go_test_json_to_junit(stream: bytes) -> bytes:
    """Convert `go test -json` output into a JUnit report, one testsuite per package.

    Each test (subtests as `TestName/subtest`) becomes a testcase whose classname is its
    package, so `read_junit(framework="go")` gives `package::TestName/subtest`. A test that
    started but never ended (a panic or timeout killed the binary) is an error. A package
    that failed with no failing test becomes an error testcase: `[build]` when its build or
    setup failed, `[package]` otherwise (a crash outside any test, a TestMain failure).
    Lines that are not JSON objects (compiler output on stderr) are ignored.

    Raises:
        JUnitError: a JSON event lacks its Action or Package.
    """
    packages: dict[str, _GoPackage] = {}
    for n, line in enumerate(stream.splitlines(), start=1):
        event = _go_event(line)
        if event is None:
            continue
        action, package = event.get("Action"), event.get("Package") or event.get("ImportPath")
        if not isinstance(action, str) or not isinstance(package, str):
            raise JUnitError(f"go test -json line {n}: an event without Action or Package")
        package = package.split(" ", 1)[0]  # build events name "pkg [pkg.test]"
        packages.setdefault(package, _GoPackage(package)).add(event, action)
    report = JUnitXml()
    for pkg in packages.values():
        report.add_testsuite(pkg.suite())
    return report.tostring()


def _go_event(line: bytes) -> dict[str, object] | None:
    line = line.strip()
    if not line.startswith(b"{"):
        return None
    try:
        event = json.loads(line)
    except ValueError:
        return None
    return event if isinstance(event, dict) else None


class _GoPackage:
    """The events of one package, folded into per-test outcomes."""

    def __init__(self, name: str):
        self.name = name
        self.outcome: dict[str, str] = {}  # test → run | pass | fail | skip
        self.elapsed: dict[str, float] = {}
        self.output: dict[str, list[str]] = {}  # test ("" for the package) → output lines
        self.result: str | None = None
        self.build_failed = False

    def add(self, event: dict[str, object], action: str) -> None:
        test = event.get("Test")
        key = test if isinstance(test, str) else ""
        if action in ("output", "build-output"):
            self.output.setdefault(key, []).append(str(event.get("Output", "")))
        elif action == "build-fail" or event.get("FailedBuild"):
            self.build_failed = True
        if action not in ("run", "pass", "fail", "skip"):
            return
        if key:
            self.outcome[key] = action
            elapsed = event.get("Elapsed")
            if isinstance(elapsed, int | float):
                self.elapsed[key] = float(elapsed)
        elif action != "run":
            self.result = action

    def suite(self) -> TestSuite:
        suite = TestSuite(self.name)
        for test, outcome in self.outcome.items():
            case = TestCase(test, classname=self.name, time=self.elapsed.get(test, 0.0))
            text = "".join(self.output.get(test, []))
            if outcome == "fail":
                case.result = [_result(Failure("test failed"), text)]
            elif outcome == "skip":
                case.result = [_result(Skipped("test skipped"), text)]
            elif outcome == "run":
                case.result = [_result(Error("the test never finished (panic or timeout)"), text)]
            suite.add_testcase(case)
        if self.result == "fail" and "fail" not in self.outcome.values():
            package_log = "".join(self.output.get("", []))
            build = self.build_failed or re.search(r"\[(build|setup) failed\]", package_log)
            case = TestCase("[build]" if build else "[package]", classname=self.name)
            what = "the package did not build" if build else "the package failed outside tests"
            case.result = [_result(Error(what), package_log)]
            suite.add_testcase(case)
        return suite


_R = TypeVar("_R", Failure, Error, Skipped)


def _result(result: _R, output: str) -> _R:
    result.text = output[-8000:]  # the end of the output says why
    return result


# --- console logs, where no report exists ---

_PYTEST_LINE = re.compile(
    r"^(PASSED|FAILED|ERROR|XFAIL|XPASS) (\S[^\[\s]*(?:\[.*?\])?)(?: - .*)?\s*$"
)
_PYTEST_STATUS = {
    "PASSED": TestStatus.passed,
    "XPASS": TestStatus.passed,
    "FAILED": TestStatus.failed,
    "ERROR": TestStatus.error,
    "XFAIL": TestStatus.skipped,
}
_GO_TEST = re.compile(r"^\s*--- (PASS|FAIL|SKIP): (\S+) \(")
_GO_PACKAGE = re.compile(r"^(ok|FAIL|\?)\s+(\S+)(?:\s+(.*))?$")
_GO_STATUS = {"PASS": TestStatus.passed, "FAIL": TestStatus.failed, "SKIP": TestStatus.skipped}


def parse_log(text: str, framework: str) -> dict[str, TestStatus]:
    """Test id → status from a console log: the fallback where no report could be had.

    pytest: the `-rA` short summary (`PASSED path::test`, `FAILED path::test - msg`,
    `ERROR …`, XFAIL as skipped, XPASS as passed); SKIPPED lines name a location, not a
    test, and are left out. go: `--- PASS: TestX (0.00s)` lines (`go test -v`, subtests
    included), each assigned to the package of the next `ok` / `FAIL` line; lines after the
    last package line are left out, and a `FAIL pkg [build failed]` line gives `pkg::[build]`.
    A test left out counts as not passing, like any missing test.

    Raises:
        JUnitError: no log parser exists for the framework.
    """
    if framework == "pytest":
        return _parse_pytest_log(text)
    if framework == "go":
        return _parse_go_log(text)
    raise JUnitError(
        f"no console-log parser for {framework!r} (only pytest and go have one); "
        "make the test command write a JUnit report"
    )


def _parse_pytest_log(text: str) -> dict[str, TestStatus]:
    results: dict[str, TestStatus] = {}
    for line in text.splitlines():
        m = _PYTEST_LINE.match(line)
        if m:
            status = _PYTEST_STATUS[m.group(1)]
            results[m.group(2)] = _worst(results.get(m.group(2), status), status)
    return results


def _parse_go_log(text: str) -> dict[str, TestStatus]:
    results: dict[str, TestStatus] = {}
    pending: dict[str, TestStatus] = {}
    for line in text.splitlines():
        if m := _GO_TEST.match(line):
            status = _GO_STATUS[m.group(1)]
            pending[m.group(2)] = _worst(pending.get(m.group(2), status), status)
        elif m := _GO_PACKAGE.match(line):
            verdict, package, rest = m.group(1), m.group(2), m.group(3) or ""
            for test, status in pending.items():
                results[f"{package}::{test}"] = status
            if verdict == "FAIL" and TestStatus.failed not in pending.values():
                build = re.search(r"\[(build|setup) failed\]", rest)
                results[f"{package}::{'[build]' if build else '[package]'}"] = TestStatus.error
            pending = {}
    return results
