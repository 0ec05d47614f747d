"""junit.py: real pytest reports checked against pytest's own summary; other frameworks'
reports written by hand in the shape their reporters produce."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from envsynth.errors import UnknownIdError
from pipelines.code_agent.junit import (
    JUnitError,
    TestStatus,
    go_test_json_to_junit,
    parse_log,
    read_junit,
    read_junit_files,
)

P, F, E, S = TestStatus.passed, TestStatus.failed, TestStatus.error, TestStatus.skipped

PROJECT = {
    "test_root.py": """
        def test_root():
            pass
    """,
    "tests/__init__.py": "",
    "tests/unit/__init__.py": "",
    "tests/unit/test_cases.py": """
        import pytest

        @pytest.fixture
        def broken():
            raise RuntimeError("fixture boom")

        def test_pass():
            pass

        def test_fail():
            assert 1 == 2

        def test_error_in_fixture(broken):
            pass

        @pytest.mark.skip(reason="not today")
        def test_skip():
            pass

        @pytest.mark.parametrize("x", [1, 2, "a b", "x::y", 1.5])
        def test_param(x):
            assert x != 2

        @pytest.mark.xfail
        def test_xfail():
            assert False

        @pytest.mark.xfail
        def test_xpass():
            pass

        class TestGroup:
            def test_in_class(self):
                pass

            class TestInner:
                @pytest.mark.parametrize("n", [0, 1])
                def test_nested(self, n):
                    assert n == 0
    """,
    "tests/unit/base.py": """
        class Base:
            def test_inherited(self):
                pass
    """,
    "tests/unit/test_inherit.py": """
        from tests.unit.base import Base

        class TestChild(Base):
            pass
    """,
    "tests/unit/test_broken.py": "import a_module_that_does_not_exist\n",
    "tests/deep/er/test_deep.py": """
        def test_deep():
            pass
    """,
}

# What the project's tests do, written down by hand.
EXPECTED = {
    "test_root.py::test_root": P,
    "tests/unit/test_cases.py::test_pass": P,
    "tests/unit/test_cases.py::test_fail": F,
    "tests/unit/test_cases.py::test_error_in_fixture": E,
    "tests/unit/test_cases.py::test_skip": S,
    "tests/unit/test_cases.py::test_param[1]": P,
    "tests/unit/test_cases.py::test_param[2]": F,
    "tests/unit/test_cases.py::test_param[a b]": P,
    "tests/unit/test_cases.py::test_param[x::y]": P,
    "tests/unit/test_cases.py::test_param[1.5]": P,
    "tests/unit/test_cases.py::test_xfail": S,
    "tests/unit/test_cases.py::test_xpass": P,
    "tests/unit/test_cases.py::TestGroup::test_in_class": P,
    "tests/unit/test_cases.py::TestGroup::TestInner::test_nested[0]": P,
    "tests/unit/test_cases.py::TestGroup::TestInner::test_nested[1]": F,
    "tests/unit/test_inherit.py::TestChild::test_inherited": P,
    "tests/unit/test_broken.py": E,
    "tests/deep/er/test_deep.py::test_deep": P,
}


def run_pytest(root: Path, family: str) -> tuple[bytes, str]:
    """Run the project's suite for real; returns (JUnit XML, console output)."""
    xml = root.parent / f"{family}.xml"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            f"--junitxml={xml}",
            "-o",
            f"junit_family={family}",
            "-p",
            "no:cacheprovider",
            "-rA",
            "--continue-on-collection-errors",
        ],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1, done.stdout[-2000:] + done.stderr[-2000:]
    return xml.read_bytes(), done.stdout


@pytest.fixture(scope="module")
def pytest_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[bytes, str]]:
    root = tmp_path_factory.mktemp("pyproject") / "project"
    for rel, text in PROJECT.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return {family: run_pytest(root, family) for family in ("xunit1", "xunit2")}


def summary_oracle(log: str) -> dict[str, str]:
    """pytest's own -rA verdicts, read by plain string splitting (no shared code)."""
    out = {}
    summary = log.split("short test summary info", 1)[1]
    for line in summary.splitlines():
        word, _, rest = line.partition(" ")
        if word in ("PASSED", "FAILED", "ERROR", "XFAIL", "XPASS"):
            out[rest.split(" - ", 1)[0].strip()] = word
    return out


def test_pytest_xunit1_ids_and_statuses(pytest_runs: dict[str, tuple[bytes, str]]) -> None:
    xml, _ = pytest_runs["xunit1"]
    assert read_junit(xml, framework="pytest") == EXPECTED


def test_pytest_without_file_attribute_gives_the_same_ids(
    pytest_runs: dict[str, tuple[bytes, str]],
) -> None:
    xml, _ = pytest_runs["xunit2"]
    assert b' file="' not in xml
    assert read_junit(xml, framework="pytest") == EXPECTED


def test_pytest_summary_agrees(pytest_runs: dict[str, tuple[bytes, str]]) -> None:
    xml, log = pytest_runs["xunit1"]
    results = read_junit(xml, framework="pytest")
    oracle = summary_oracle(log)
    word = {"PASSED": P, "XPASS": P, "FAILED": F, "ERROR": E, "XFAIL": S}
    assert {k: word[v] for k, v in oracle.items()} == {
        k: v for k, v in results.items() if k in oracle
    }
    # Only plain skips are missing from -rA's verdict lines (they name a location).
    assert set(results) - set(oracle) == {"tests/unit/test_cases.py::test_skip"}
    assert parse_log(log, "pytest") == {k: v for k, v in results.items() if k in oracle}


def test_malformed_xml_raises_with_the_parser_message(
    pytest_runs: dict[str, tuple[bytes, str]],
) -> None:
    xml, _ = pytest_runs["xunit1"]
    with pytest.raises(JUnitError, match=r"line \d+, column \d+"):
        read_junit(xml[: len(xml) // 2], framework="pytest")
    with pytest.raises(JUnitError, match="no element found"):
        read_junit(b"", framework="pytest")
    with pytest.raises(JUnitError, match="not a JUnit XML report"):
        read_junit(b"<html><body>502 Bad Gateway</body></html>", framework="pytest")
    with pytest.raises(JUnitError, match="no name"):
        read_junit(b'<testsuite><testcase classname="a"/></testsuite>', framework="jest")
    with pytest.raises(UnknownIdError, match="pytest"):
        read_junit(xml, framework="pytset")


def test_zero_testcases_is_valid() -> None:
    assert read_junit(b'<testsuites name="jest tests" tests="0"/>', framework="jest") == {}
    assert read_junit(b'<testsuite name="empty" tests="0"></testsuite>', framework="go") == {}


def test_duplicate_ids_keep_the_worst_status() -> None:
    xml = b"""<testsuites>
      <testsuite name="a">
        <testcase classname="c" name="t1"/>
        <testcase classname="c" name="t1"><failure message="boom"/></testcase>
        <testcase classname="c" name="t2"><skipped/></testcase>
        <testcase classname="c" name="t2"/>
        <testcase classname="c" name="t3"><failure/></testcase>
      </testsuite>
      <testsuite name="b">
        <testcase classname="c" name="t3"><error message="crash"/></testcase>
        <testcase classname="c" name="t3"/>
      </testsuite>
    </testsuites>"""
    assert read_junit(xml, framework="surefire") == {"c::t1": F, "c::t2": S, "c::t3": E}
    first = b'<testsuite><testcase classname="c" name="t"/></testsuite>'
    second = b'<testsuite><testcase classname="c" name="t"><failure/></testcase></testsuite>'
    other = b'<testsuite><testcase classname="c" name="u"/></testsuite>'
    assert read_junit_files([first, second, other], "surefire") == {"c::t": F, "c::u": P}
    assert read_junit_files([second, first], "surefire") == {"c::t": F}


# --- other frameworks' reports, in the shape their reporters write ---

JEST_JUNIT = b"""<?xml version="1.0" encoding="UTF-8"?>
<testsuites name="jest tests" tests="4" failures="1" errors="0" time="1.234">
  <testsuite name="durations" errors="0" failures="1" skipped="1"
             timestamp="2024-05-01T10:00:00" time="0.8" tests="4">
    <testcase classname="durations parses hours" name="durations parses hours" time="0.002">
    </testcase>
    <testcase classname="durations parses minutes" name="durations parses minutes" time="0.004">
      <failure>Error: expect(received).toBe(expected) // Object.is equality

Expected: 5400
Received: 90
    at Object.&lt;anonymous&gt; (/repo/src/durations.test.js:9:31)</failure>
    </testcase>
    <testcase classname="durations todo later" name="durations todo later" time="0">
      <skipped/>
    </testcase>
    <testcase classname="durations &#8250; nested works" name="durations &#8250; nested works"
              time="0.001"/>
  </testsuite>
</testsuites>"""

MOCHA_JUNIT = b"""<?xml version="1.0" encoding="UTF-8"?>
<testsuites name="Mocha Tests" time="0.0150" tests="3" failures="1">
  <testsuite name="Root Suite" timestamp="2024-05-01T10:00:00" tests="0" time="0.0000"
             failures="0"></testsuite>
  <testsuite name="parse" timestamp="2024-05-01T10:00:00" tests="3" file="/repo/test/parse.js"
             time="0.0150" failures="1">
    <testcase name="parse reads numbers" time="0.0010" classname="reads numbers"></testcase>
    <testcase name="parse rejects junk" time="0.0020" classname="rejects junk">
      <failure message="expected 1 to equal 2" type="AssertionError"><![CDATA[AssertionError:
      expected 1 to equal 2
  at Context.<anonymous> (test/parse.js:12:12)]]></failure>
    </testcase>
    <testcase name="parse handles empty input" time="0.0000" classname="handles empty input">
      <skipped/>
    </testcase>
  </testsuite>
</testsuites>"""

SUREFIRE = b"""<?xml version="1.0" encoding="UTF-8"?>
<testsuite xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
    xsi:noNamespaceSchemaLocation="https://maven.apache.org/surefire/maven-surefire-plugin/xsd/surefire-test-report-3.0.xsd"
    version="3.0" name="org.example.CalculatorTest" time="0.052" tests="5" errors="1"
    skipped="1" failures="1">
  <properties>
    <property name="java.version" value="17.0.9"/>
  </properties>
  <testcase name="adds" classname="org.example.CalculatorTest" time="0.003"/>
  <testcase name="divides" classname="org.example.CalculatorTest" time="0.004">
    <failure message="expected: &lt;2&gt; but was: &lt;3&gt;"
             type="org.opentest4j.AssertionFailedError"><![CDATA[org.opentest4j.AssertionFailedError:
    at org.example.CalculatorTest.divides(CalculatorTest.java:21)]]></failure>
    <system-out><![CDATA[dividing]]></system-out>
  </testcase>
  <testcase name="overflows" classname="org.example.CalculatorTest" time="0.001">
    <error message="boom" type="java.lang.ArithmeticException">java.lang.ArithmeticException
    </error>
  </testcase>
  <testcase name="ignored" classname="org.example.CalculatorTest" time="0">
    <skipped message="not yet"/>
  </testcase>
  <testcase name="sometimes" classname="org.example.CalculatorTest" time="0.010">
    <flakyFailure message="timing" type="java.lang.AssertionError">
      <stackTrace>java.lang.AssertionError: timing</stackTrace>
    </flakyFailure>
  </testcase>
  <testcase name="parses(String)[1]" classname="org.example.CalculatorTest" time="0.001"/>
</testsuite>"""

CTEST = b"""<?xml version="1.0" encoding="UTF-8"?>
<testsuite name="Linux-c++"
\ttests="4"
\tfailures="1"
\tdisabled="1"
\tskipped="1"
\thostname=""
\ttime="0"
\ttimestamp="2024-05-01T10:00:00"
\t>
\t<testcase name="codec_roundtrip" classname="codec_roundtrip" time="0.0101" status="run">
\t\t<system-out>all good</system-out>
\t</testcase>
\t<testcase name="codec_overflow" classname="codec_overflow" time="0.0050" status="fail">
\t\t<failure message="Failed"/>
\t\t<system-out>assertion failed</system-out>
\t</testcase>
\t<testcase name="codec_slow" classname="codec_slow" time="0" status="disabled">
\t\t<skipped message="Disabled"/>
\t</testcase>
\t<testcase name="codec_gpu" classname="codec_gpu" time="0" status="notrun">
\t</testcase>
</testsuite>"""

PHPUNIT = b"""<?xml version="1.0" encoding="UTF-8"?>
<testsuites>
  <testsuite name="/repo/phpunit.xml.dist" tests="4" assertions="4" errors="1" failures="1"
             skipped="0" time="0.01">
    <testsuite name="Unit" tests="4" assertions="4" errors="1" failures="1" skipped="0"
               time="0.01">
      <testsuite name="Tests\\Unit\\ParserTest" file="/repo/tests/Unit/ParserTest.php" tests="4"
                 assertions="4" errors="1" failures="1" skipped="0" time="0.01">
        <testcase name="testParsesHours" file="/repo/tests/Unit/ParserTest.php" line="12"
                  class="Tests\\Unit\\ParserTest" classname="Tests.Unit.ParserTest"
                  assertions="1" time="0.001"/>
        <testcase name="testParsesMinutes" file="/repo/tests/Unit/ParserTest.php" line="18"
                  class="Tests\\Unit\\ParserTest" classname="Tests.Unit.ParserTest"
                  assertions="1" time="0.001">
          <failure type="PHPUnit\\Framework\\ExpectationFailedException">
Tests\\Unit\\ParserTest::testParsesMinutes
Failed asserting that 90 is identical to 5400.</failure>
        </testcase>
        <testsuite name="Tests\\Unit\\ParserTest::testProvider" tests="2" assertions="2"
                   errors="1" failures="0" skipped="0" time="0.002">
          <testcase name="testProvider with data set #0" file="/repo/tests/Unit/ParserTest.php"
                    line="30" class="Tests\\Unit\\ParserTest" classname="Tests.Unit.ParserTest"
                    assertions="1" time="0.001"/>
          <testcase name="testProvider with data set #1" file="/repo/tests/Unit/ParserTest.php"
                    line="30" class="Tests\\Unit\\ParserTest" classname="Tests.Unit.ParserTest"
                    assertions="1" time="0.001">
            <error type="TypeError">TypeError: bad</error>
          </testcase>
        </testsuite>
      </testsuite>
    </testsuite>
  </testsuite>
</testsuites>"""


@pytest.mark.parametrize(
    ("framework", "xml", "expected"),
    [
        (
            "jest",
            JEST_JUNIT,
            {
                "durations parses hours::durations parses hours": P,
                "durations parses minutes::durations parses minutes": F,
                "durations todo later::durations todo later": S,
                "durations \u203a nested works::durations \u203a nested works": P,
            },
        ),
        (
            "mocha",
            MOCHA_JUNIT,
            {
                "reads numbers::parse reads numbers": P,
                "rejects junk::parse rejects junk": F,
                "handles empty input::parse handles empty input": S,
            },
        ),
        (
            "surefire",
            SUREFIRE,
            {
                "org.example.CalculatorTest::adds": P,
                "org.example.CalculatorTest::divides": F,
                "org.example.CalculatorTest::overflows": E,
                "org.example.CalculatorTest::ignored": S,
                "org.example.CalculatorTest::sometimes": F,  # passed only on a rerun
                "org.example.CalculatorTest::parses(String)[1]": P,
            },
        ),
        (
            "ctest",
            CTEST,
            {"codec_roundtrip": P, "codec_overflow": F, "codec_slow": S, "codec_gpu": S},
        ),
        (
            "phpunit",
            PHPUNIT,
            {
                "Tests\\Unit\\ParserTest::testParsesHours": P,
                "Tests\\Unit\\ParserTest::testParsesMinutes": F,
                "Tests\\Unit\\ParserTest::testProvider with data set #0": P,
                "Tests\\Unit\\ParserTest::testProvider with data set #1": E,
            },
        ),
    ],
    ids=["jest-junit", "mocha-junit-reporter", "surefire", "ctest", "phpunit"],
)
def test_reporter_shapes(framework: str, xml: bytes, expected: dict[str, TestStatus]) -> None:
    assert read_junit(xml, framework=framework) == expected


# --- go test -json (Go is not installed here, so this is output captured as text) ---

D = "example.com/dur"


def ev(
    action: str, package: str, test: str | None = None, out: str | None = None, **more: object
) -> str:
    """One `go test -json` event line (Time omitted: the converter does not read it).
    Build events name the package as `ImportPath` with its test binary, as Go 1.24 does."""
    event: dict[str, object] = {"Action": action}
    if action.startswith("build-"):
        event["ImportPath"] = f"{package} [{package}.test]"
    else:
        event["Package"] = package
    if test is not None:
        event["Test"] = test
    if out is not None:
        event["Output"] = out
    event.update(more)
    return json.dumps(event)


# `go test -json ./...` over four packages: tests passing, failing (with subtests) and
# skipped; a package with no test files; one whose test build fails (Go 1.24 build events,
# and the older form with only the FAIL line); one killed by a timeout in mid-test.
GO_JSON = (
    "\n".join(
        [
            ev("start", D),
            ev("run", D, "TestHours"),
            ev("output", D, "TestHours", out="=== RUN   TestHours\n"),
            ev("output", D, "TestHours", out="--- PASS: TestHours (0.00s)\n"),
            ev("pass", D, "TestHours", Elapsed=0),
            ev("run", D, "TestParse"),
            ev("output", D, "TestParse", out="=== RUN   TestParse\n"),
            ev("run", D, "TestParse/1h30m"),
            ev("output", D, "TestParse/1h30m", out="=== RUN   TestParse/1h30m\n"),
            ev("output", D, "TestParse/1h30m", out="    dur_test.go:21: got 90, want 5400\n"),
            ev("run", D, "TestParse/2h"),
            ev("output", D, "TestParse/2h", out="=== RUN   TestParse/2h\n"),
            ev("output", D, "TestParse", out="--- FAIL: TestParse (0.00s)\n"),
            ev("output", D, "TestParse/1h30m", out="    --- FAIL: TestParse/1h30m (0.00s)\n"),
            ev("fail", D, "TestParse/1h30m", Elapsed=0),
            ev("output", D, "TestParse/2h", out="    --- PASS: TestParse/2h (0.00s)\n"),
            ev("pass", D, "TestParse/2h", Elapsed=0),
            ev("fail", D, "TestParse", Elapsed=0),
            ev("run", D, "TestNetwork"),
            ev("output", D, "TestNetwork", out="=== RUN   TestNetwork\n"),
            ev("output", D, "TestNetwork", out="    dur_test.go:40: no network\n"),
            ev("output", D, "TestNetwork", out="--- SKIP: TestNetwork (0.00s)\n"),
            ev("skip", D, "TestNetwork", Elapsed=0),
            ev("output", D, out="FAIL\n"),
            ev("output", D, out="FAIL\texample.com/dur\t0.004s\n"),
            ev("fail", D, Elapsed=0.004),
            ev("start", D + "/cmd"),
            ev("output", D + "/cmd", out="?   \texample.com/dur/cmd\t[no test files]\n"),
            ev("skip", D + "/cmd", Elapsed=0),
            ev(
                "build-output",
                D + "/broken",
                out="# example.com/dur/broken [example.com/dur/broken.test]\n",
            ),
            ev(
                "build-output",
                D + "/broken",
                out="broken/b_test.go:5:2: undefined: Nope\n",
            ),
            ev("build-fail", D + "/broken"),
            ev("start", D + "/broken"),
            ev("output", D + "/broken", out="FAIL\texample.com/dur/broken [build failed]\n"),
            ev(
                "fail",
                D + "/broken",
                Elapsed=0,
                FailedBuild="example.com/dur/broken [example.com/dur/broken.test]",
            ),
            ev("start", D + "/old"),
            ev("output", D + "/old", out="FAIL\texample.com/dur/old [build failed]\n"),
            ev("fail", D + "/old", Elapsed=0),
            ev("start", D + "/hang"),
            ev("run", D + "/hang", "TestOK"),
            ev("output", D + "/hang", "TestOK", out="--- PASS: TestOK (0.00s)\n"),
            ev("pass", D + "/hang", "TestOK", Elapsed=0),
            ev("run", D + "/hang", "TestForever"),
            ev("output", D + "/hang", "TestForever", out="panic: test timed out after 1s\n"),
            ev("output", D + "/hang", out="FAIL\texample.com/dur/hang\t1.005s\n"),
            ev("fail", D + "/hang", Elapsed=1.005),
        ]
    )
    + "\n"
)

GO_EXPECTED = {
    "example.com/dur::TestHours": P,
    "example.com/dur::TestParse": F,
    "example.com/dur::TestParse/1h30m": F,
    "example.com/dur::TestParse/2h": P,
    "example.com/dur::TestNetwork": S,
    "example.com/dur/broken::[build]": E,
    "example.com/dur/old::[build]": E,
    "example.com/dur/hang::TestOK": P,
    "example.com/dur/hang::TestForever": E,
    "example.com/dur/hang::[package]": E,
}


def test_go_test_json_through_junit() -> None:
    xml = go_test_json_to_junit(GO_JSON.encode())
    assert read_junit(xml, framework="go") == GO_EXPECTED
    # The failing subtest carries its own output as the failure text.
    assert b"got 90, want 5400" in xml and b"undefined: Nope" in xml


def test_go_console_log_agrees_with_the_json() -> None:
    """`go test -v` prints the events' Output fields; parse_log must read the same verdicts
    (a test killed mid-run prints no verdict line, so the log cannot know it)."""
    stream = [json.loads(line) for line in GO_JSON.splitlines()]
    log = "".join(e.get("Output", "") for e in stream if e.get("Action") == "output")
    from_log = parse_log(log, "go")
    from_xml = read_junit(go_test_json_to_junit(GO_JSON.encode()), framework="go")
    assert from_log == {
        k: v for k, v in from_xml.items() if k != "example.com/dur/hang::TestForever"
    }


def test_go_stream_with_compiler_noise_and_nothing_else() -> None:
    noisy = b"# example.com/dur\n./dur.go:3:1: syntax error\n" + GO_JSON.encode()
    assert read_junit(go_test_json_to_junit(noisy), framework="go") == GO_EXPECTED
    assert read_junit(go_test_json_to_junit(b""), framework="go") == {}
    with pytest.raises(JUnitError, match="line 1"):
        go_test_json_to_junit(b'{"Output": "no action"}\n')


def test_parse_log_only_for_known_formats() -> None:
    with pytest.raises(JUnitError, match="JUnit report"):
        parse_log("Tests: 1 passed", "jest")
    # Lines that print like a verdict without being in pytest's form are not verdicts.
    assert parse_log("PASSED\nFAILED: everything\n", "pytest") == {}
