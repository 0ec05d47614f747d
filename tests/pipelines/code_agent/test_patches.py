"""patches.py against real `git diff` output and `git apply` as the oracle."""

from __future__ import annotations

import difflib
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.code_agent.patches import (
    PatchError,
    drop_paths,
    is_test_path,
    parse_patch,
    split_test_changes,
)


def git(repo: Path, *args: str, stdin: str | None = None) -> str:
    done = subprocess.run(
        ["git", "-c", "core.quotePath=true", *args],
        cwd=repo,
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {done.stderr}")
    return done.stdout


def write(root: Path, rel: str, data: str | bytes) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, bytes):
        path.write_bytes(data)
    else:
        path.write_text(data)


BASE: dict[str, str | bytes] = {
    "src/pkg/mod.py": "".join(f"def f{i}():\n    return {i}\n\n" for i in range(20)),
    "src/pkg/old_name.py": "".join(f"VALUE_{i} = {i}\n" for i in range(30)),
    "tests/test_mod.py": "from pkg.mod import f1\n\n\ndef test_f1():\n    assert f1() == 1\n",
    "tests/fixtures/expected.json": '{"a": 1}\n',
    "docs/gone.txt": "this file is deleted\n",
    "assets/logo.bin": bytes(range(256)) * 4,
    # Content that looks like diff headers: the section cutter must not be fooled by it.
    "notes/hostile.txt": "--- a/x\n+++ b/x\n@@ -1 +1 @@\ndiff --git a/y b/y\nplain\n",
    "tests/test_\u00e9t\u00e9.py": "def test_summer():\n    assert True\n",
}


def change(root: Path) -> None:
    """Every kind of change git can make: modify, add, delete, rename+edit, binary."""
    mod = (root / "src/pkg/mod.py").read_text().replace("return 7\n", "return 70\n")
    write(root, "src/pkg/mod.py", mod)
    write(root, "src/pkg/new_helper.py", "def helper():\n    return 'new'\n")
    (root / "docs/gone.txt").unlink()
    old = (root / "src/pkg/old_name.py").read_text()
    (root / "src/pkg/old_name.py").unlink()
    write(root, "src/pkg/new_name.py", old.replace("VALUE_3 = 3", "VALUE_3 = 33"))
    write(root, "assets/logo.bin", bytes(reversed(range(256))) * 4)
    write(root, "tests/test_mod.py", str(BASE["tests/test_mod.py"]) + "\n\ndef test_f7():\n")
    write(root, "tests/test_mod.py", (root / "tests/test_mod.py").read_text() + "    pass\n")
    write(root, "tests/test_new.py", "def test_helper():\n    assert True\n")
    write(root, "tests/fixtures/blob.bin", b"\x00\x01\x02fixture\xff")
    write(root, "notes/hostile.txt", "--- a/x\n+++ b/x\n@@ -1 +2 @@\ndiff --git a/z b/z\n")
    write(root, "tests/test_\u00e9t\u00e9.py", "def test_summer():\n    assert 1\n")


@pytest.fixture()
def repo(tmp_path: Path) -> tuple[Path, str]:
    """A repository with one staged change of every kind; returns (repo, binary diff)."""
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q")
    git(root, "config", "user.email", "t@example.invalid")
    git(root, "config", "user.name", "t")
    for rel, data in BASE.items():
        write(root, rel, data)
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "base")
    change(root)
    git(root, "add", "-A")
    return root, git(root, "diff", "--cached", "--binary", "-M", "HEAD")


def numstat(root: Path) -> dict[str, tuple[int | None, int | None, str | None]]:
    """git's own count per file: path -> (added, removed, old path); None for binary."""
    out = git(root, "diff", "--cached", "--numstat", "-z", "-M", "HEAD").split("\0")
    stats: dict[str, tuple[int | None, int | None, str | None]] = {}
    i = 0
    while i < len(out) - 1:
        added, removed, path = out[i].split("\t")
        old = None
        if path == "":  # a rename: the old and new paths follow as two fields
            old, path = out[i + 1], out[i + 2]
            i += 2
        stats[path] = (
            None if added == "-" else int(added),
            None if removed == "-" else int(removed),
            old,
        )
        i += 1
    return stats


def clone_at_head(src: Path, dest: Path) -> Path:
    subprocess.run(["git", "clone", "-q", str(src), str(dest)], check=True)
    return dest


def apply(root: Path, diff: str, *, check: bool = False) -> None:
    if diff:
        git(root, "apply", "--binary", *(["--check"] if check else []), stdin=diff)


def tree_of(root: Path) -> str:
    git(root, "add", "-A")
    return git(root, "write-tree").strip()


def test_parse_patch_matches_git_numstat(repo: tuple[Path, str]) -> None:
    root, diff = repo
    info = parse_patch(diff)
    stats = numstat(root)
    assert sorted(info.paths) == sorted(stats)
    for f in info.files:
        added, removed, old = stats[f.path]
        assert f.is_binary == (added is None), f.path
        if not f.is_binary:
            assert (f.added, f.removed) == (added, removed), f.path
        if old is not None:
            assert f.is_rename and f.old_path == old
    status = dict(
        line.split("\t")[::-1][:2]
        for line in git(root, "diff", "--cached", "--name-status", "HEAD").splitlines()
        if not line.startswith("R")
    )
    by_path = {f.path: f for f in info.files}
    assert {p for p, s in status.items() if s == "A"} == {p for p, f in by_path.items() if f.is_new}
    assert {p for p, s in status.items() if s == "D"} == {
        p for p, f in by_path.items() if f.is_deleted
    }
    assert info.lines_changed == sum((a or 0) + (r or 0) for a, r, _ in stats.values())
    assert info.has_binary and info.touches_tests and info.touches_source
    assert "tests/test_\u00e9t\u00e9.py" in info.paths  # git quoted it; we unquote


def test_split_round_trip_through_git_apply(repo: tuple[Path, str], tmp_path: Path) -> None:
    root, diff = repo
    source, tests = split_test_changes(diff)
    assert source and tests
    assert all(is_test_path(p) for p in parse_patch(tests).paths)
    assert not any(is_test_path(p) for p in parse_patch(source).paths)
    assert sorted(parse_patch(source).paths + parse_patch(tests).paths) == sorted(
        parse_patch(diff).paths
    )
    want = tree_of(root)

    parts = clone_at_head(root, tmp_path / "parts")
    apply(parts, source, check=True)
    apply(parts, tests, check=True)
    apply(parts, tests)
    apply(parts, source)  # disjoint files: order does not matter
    assert tree_of(parts) == want

    whole = clone_at_head(root, tmp_path / "whole")
    apply(whole, diff)
    assert tree_of(whole) == want


def test_drop_paths_keeps_other_sections_verbatim(repo: tuple[Path, str]) -> None:
    _, diff = repo
    assert drop_paths(diff, lambda p: False) == diff
    assert drop_paths(diff, lambda p: True) == ""
    assert drop_paths(diff, is_test_path) == split_test_changes(diff)[0]
    # A rename is dropped by its old path as well as by its new one.
    for name in ("src/pkg/old_name.py", "src/pkg/new_name.py"):
        left = parse_patch(drop_paths(diff, lambda p, n=name: p == n))  # type: ignore[misc]
        assert "src/pkg/new_name.py" not in left.paths
        assert len(left.files) == len(parse_patch(diff).files) - 1


def test_empty_patch() -> None:
    assert parse_patch("").files == ()
    assert parse_patch("\n  \n").paths == ()
    assert split_test_changes("") == ("", "")
    assert drop_paths("", is_test_path) == ""


def test_format_patch_mail_is_read_past_its_header_and_signature(repo: tuple[Path, str]) -> None:
    root, diff = repo
    git(root, "commit", "-q", "-m", "change everything\n\n--- not a header\n+ nor this")
    mail = git(root, "format-patch", "--binary", "-M", "--stdout", "HEAD~1")
    assert mail.startswith("From ") and "\n-- \n" in mail
    assert parse_patch(mail).paths == parse_patch(diff).paths
    source, tests = split_test_changes(mail)
    assert "Subject:" not in source + tests  # the mail header belongs to no file


def test_mode_change_only(tmp_path: Path) -> None:
    diff = "diff --git a/run.sh b/run.sh\nold mode 100644\nnew mode 100755\n"
    (info,) = parse_patch(diff).files
    assert info.path == "run.sh" and info.added == info.removed == 0
    assert split_test_changes(diff) == (diff, "")


def _hunk_diff(repo: tuple[Path, str]) -> str:
    _, diff = repo
    return parse_and_pick(diff, "src/pkg/mod.py")


def parse_and_pick(diff: str, path: str) -> str:
    return drop_paths(diff, lambda p: p != path)


def test_truncated_hunk_is_malformed(repo: tuple[Path, str]) -> None:
    section = _hunk_diff(repo)
    lines = section.splitlines(keepends=True)
    for cut in (len(lines) - 1, len(lines) - 3):
        with pytest.raises(PatchError, match="truncated"):
            parse_patch("".join(lines[:cut]))


@pytest.mark.parametrize("wrong", ["@@ -20,9 +20,7 @@", "@@ -20,5 +20,5 @@", "@@ -20,7 +20,8 @@"])
def test_wrong_hunk_counts_are_malformed(repo: tuple[Path, str], wrong: str) -> None:
    section = _hunk_diff(repo)
    assert "@@ -20,7 +20,7 @@" in section
    whole = repo[1]
    with pytest.raises(PatchError, match=r"^line \d+: the hunk that starts at line \d+"):
        parse_patch(whole.replace(section, section.replace("@@ -20,7 +20,7 @@", wrong)))


@pytest.mark.parametrize(
    "text",
    [
        "hello, this is an issue comment and not a diff\n",
        "Fixed in the attached commit.\n\n+ some\n- thing\n",
        "--- a/x\n+++ b/x\n",  # headers and no hunk
        "--- a/x\n+++ b/x\n@@ -1 +1 @@\n-a\n+b\n+c\n",  # one line more than the header says
        "--- a/x\n+++ b/x\n@@ -1,2 +1,2 @@\n-a\n+b\n",  # ends inside the hunk
    ],
)
def test_garbage_is_malformed(text: str) -> None:
    with pytest.raises(PatchError):
        parse_patch(text)
    with pytest.raises(PatchError):
        split_test_changes(text)


def test_wrong_counts_are_refused_where_git_also_refuses(tmp_path: Path) -> None:
    """Where git apply rejects a hand-edited hunk, parse_patch rejects it too."""
    root = tmp_path / "r"
    root.mkdir()
    git(root, "init", "-q")
    write(root, "x", "a\nb\nc\n")
    bad = "--- a/x\n+++ b/x\n@@ -1,3 +1,3 @@\n a\n-b\n+B\n"
    done = subprocess.run(["git", "apply", "--check"], cwd=root, input=bad, text=True, check=False)
    assert done.returncode != 0
    with pytest.raises(PatchError):
        parse_patch(bad)


@pytest.mark.parametrize(
    "path",
    [
        "tests/test_api.py",
        "pkg/tests/helpers.py",
        "testing/conftest.py",
        "src/test_utils.py",
        "src/utils_test.py",
        "conftest.py",
        "app/tests.py",
        "tests/fixtures/data/expected.json",
        "src/__tests__/button.jsx",
        "src/button.test.tsx",
        "lib/parse.spec.js",
        "lib/parse.test.mjs",
        "test/index.js",
        "pkg/server/handler_test.go",
        "pkg/server/testdata/golden.txt",
        "src/test/java/org/example/AppTest.java",
        "src/test/resources/log4j.xml",
        "src/codec_test.cc",
        "src/codec_unittest.cpp",
        "tests/Unit/ParserTest.php",
        "src/ParserTest.php",
        "Tests/Feature/LoginTest.php",
    ],
)
def test_is_test_path_positive(path: str) -> None:
    assert is_test_path(path)


@pytest.mark.parametrize(
    "path",
    [
        "src/pkg/mod.py",
        "src/_pytest/runner.py",  # the word test inside a name is not a test dir
        "testutils/helpers.py",
        "contest.py",
        "src/latest.py",
        "src/button.tsx",
        "lib/spec.js",
        "pkg/server/handler.go",
        "src/main/java/org/example/App.java",
        "src/codec.cc",
        "src/Parser.php",
        "docs/testing.md",
        "README.md",
        "",
    ],
)
def test_is_test_path_negative(path: str) -> None:
    assert not is_test_path(path)


# --- properties: diffs written by difflib, whose file sections are known in advance ---

_LINES = st.sampled_from(
    [
        "a\n",
        "b\n",
        "c\n",
        "-- x\n",
        "++ y\n",
        "--- a/x\n",
        "+++ b/x\n",
        "@@ -1 +1 @@\n",
        "diff --git\n",
    ]
)
_PATHS = st.sampled_from(
    ["src/a.py", "src/b.go", "tests/test_a.py", "lib/x.test.js", "pkg/y_test.go", "docs/c.md"]
)


@st.composite
def file_diffs(draw: st.DrawFn) -> list[tuple[str, str, int]]:
    """(path, unified diff section, changed line count) for up to 4 distinct files."""
    paths = draw(st.lists(_PATHS, min_size=1, max_size=4, unique=True))
    out = []
    for path in paths:
        old = draw(st.lists(_LINES, max_size=12))
        new = draw(st.lists(_LINES, max_size=12))
        if old == new:
            new = [*new, "z\n"]
        text = "".join(difflib.unified_diff(old, new, f"a/{path}", f"b/{path}"))
        ops = difflib.SequenceMatcher(a=old, b=new, autojunk=False).get_opcodes()
        changed = sum((i2 - i1) + (j2 - j1) for tag, i1, i2, j1, j2 in ops if tag != "equal")
        out.append((path, text, changed))
    return out


@settings(max_examples=150, deadline=None)
@given(file_diffs(), st.sets(_PATHS))
def test_property_sections_are_cut_where_they_were_joined(
    files: list[tuple[str, str, int]], dropped: set[str]
) -> None:
    diff = "".join(text for _, text, _ in files)
    info = parse_patch(diff)
    assert info.paths == tuple(p for p, _, _ in files)
    assert info.lines_changed == sum(n for _, _, n in files)
    assert drop_paths(diff, dropped.__contains__) == "".join(
        text for p, text, _ in files if p not in dropped
    )
    source, tests = split_test_changes(diff)
    assert source == "".join(text for p, text, _ in files if not is_test_path(p))
    assert tests == "".join(text for p, text, _ in files if is_test_path(p))


@settings(max_examples=150, deadline=None)
@given(file_diffs(), st.data())
def test_property_cut_inside_a_hunk_is_malformed(
    files: list[tuple[str, str, int]], data: st.DataObject
) -> None:
    # Where the diff would end inside a hunk: in each file's own text (two header lines,
    # then hunks whose body lines all start with " ", "+" or "-"), any line after the
    # headers that the same file's next line does not follow as a new "@@ " header.
    lines: list[str] = []
    inside: list[int] = []
    for _, text, _ in files:
        own = text.splitlines(keepends=True)
        for k in range(2, len(own) - 1):
            if not own[k + 1].startswith("@@ "):
                inside.append(len(lines) + k)
        lines += own
    if not inside:
        return
    cut = data.draw(st.sampled_from(inside))
    with pytest.raises(PatchError):
        parse_patch("".join(lines[: cut + 1]))
