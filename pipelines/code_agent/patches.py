"""Reading unified diffs: which files a patch touches, and which of them are tests.

A pull request's diff is split into the gold patch (source) and the test patch (tests);
an agent's submission is stripped of its edits to test files before grading. Both rest on
two things this module owns: cutting a diff into per-file sections kept byte for byte (so
every part still applies with `git apply`), and one rule for what counts as a test file.
The hunks themselves are read by `unidiff`; the cutting is done here because unidiff does
not keep a file's section verbatim (it drops `GIT binary patch` data, for one).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from dataclasses import dataclass

from unidiff import PatchSet, UnidiffParseError

from pipelines.code_agent.candidate import CodeAgentError

_DEV_NULL = "/dev/null"
_HUNK_HEADER = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")

# Directory names that hold tests in the languages the pipeline runs (compared lower-case).
_TEST_DIRS = frozenset({"test", "tests", "testing", "__tests__", "testdata"})
_JS_EXT = r"(?:js|jsx|ts|tsx|mjs|cjs|mts|cts)"
_TEST_NAMES = re.compile(
    r"""^(?:
        test_.+\.py | .+_test\.py | conftest\.py | tests\.py      # Python
      | .+\.(?:test|spec)\."""
    + _JS_EXT
    + r"""                    # JS / TS
      | .+_test\.go                                                # Go
      | .+_(?:test|unittest)\.(?:c|cc|cpp|cxx)                     # C / C++ (gtest)
      | .+Test\.php                                                # PHP (PHPUnit)
    )$""",
    re.VERBOSE,
)


class PatchError(CodeAgentError):
    """A patch is malformed; the message names the line or file."""


@dataclass(frozen=True)
class FileChange:
    """One file's part of a patch.

    Attributes:
        path: the path after the change; the old path for a deletion.
        old_path: the path before the change; None for a new file.
        added / removed: changed text lines (0 for binary files).
        is_binary: a binary change (`Binary files … differ` or `GIT binary patch`).
        is_new / is_deleted / is_rename: what git says happened to the file.
    """

    path: str
    old_path: str | None
    added: int
    removed: int
    is_binary: bool
    is_new: bool
    is_deleted: bool
    is_rename: bool

    @property
    def touched(self) -> tuple[str, ...]:
        """The file's paths before and after (one when they are the same)."""
        if self.old_path is None or self.old_path == self.path:
            return (self.path,)
        return (self.old_path, self.path)

    @property
    def is_test(self) -> bool:
        """Whether any of the file's paths, old or new, is a test path."""
        return any(is_test_path(p) for p in self.touched)


@dataclass(frozen=True)
class PatchInfo:
    """What a patch touches, file by file, in the patch's order."""

    files: tuple[FileChange, ...]

    @property
    def paths(self) -> tuple[str, ...]:
        return tuple(f.path for f in self.files)

    @property
    def lines_changed(self) -> int:
        return sum(f.added + f.removed for f in self.files)

    @property
    def touches_tests(self) -> bool:
        return any(is_test_path(p) for f in self.files for p in f.touched)

    @property
    def touches_source(self) -> bool:
        """Whether any path, old or new, is not a test path."""
        return any(not is_test_path(p) for f in self.files for p in f.touched)

    @property
    def has_binary(self) -> bool:
        return any(f.is_binary for f in self.files)


def is_test_path(path: str) -> bool:
    """Whether a repository path is a test file by the conventions of its language.

    A path is a test path when one of its directories is named `test`, `tests`, `testing`,
    `__tests__` or `testdata` (any case; so Java's `src/test/`, Go's `testdata/` and every
    fixture under a test directory count), or when its file name is one of
    `test_*.py`, `*_test.py`, `conftest.py`, `tests.py` (Python, Django's app tests);
    `*.test.<ext>` or `*.spec.<ext>` for ext in js, jsx, ts, tsx, mjs, cjs, mts, cts;
    `*_test.go`; `*_test.{c,cc,cpp,cxx}` or `*_unittest.{c,cc,cpp,cxx}`; `*Test.php`.
    File names are matched case-sensitively, as the test runners match them. A directory
    that merely contains "test" in its name (`_pytest/`, `testutils/`) does not count.

    Args:
        path: a path relative to the repository root, `/`-separated (`\\` is accepted).
    """
    parts = [p for p in path.replace("\\", "/").split("/") if p not in ("", ".")]
    if not parts:
        return False
    if any(d.lower() in _TEST_DIRS for d in parts[:-1]):
        return True
    return _TEST_NAMES.match(parts[-1]) is not None


def parse_patch(text: str) -> PatchInfo:
    """Read a unified diff (git format or plain) into the list of files it changes.

    Args:
        text: the diff; the empty string (or whitespace) is the empty patch.

    Raises:
        PatchError: a hunk is truncated or longer than its header says, a file section
            cannot be read, or non-empty text holds no file at all.
    """
    _, sections = _split_sections(text)
    return PatchInfo(files=tuple(_read_section(s) for s in sections))


def split_test_changes(diff: str) -> tuple[str, str]:
    """Split one diff into its non-test and test parts.

    A file section goes to the test part when any of its paths (old or new) is a test path
    (`is_test_path`). Each part is the concatenation of its files' sections, verbatim and in
    the original order, so each applies on its own with `git apply`; text before the first
    file section (a commit message, a mail header) belongs to no file and is left out.

    Returns:
        (non-test diff, test diff); a part with no file is the empty string.

    Raises:
        PatchError: the diff is malformed (see `parse_patch`).
    """
    _, sections = _split_sections(diff)
    source: list[str] = []
    tests: list[str] = []
    for section in sections:
        (tests if _read_section(section).is_test else source).append(section.text)
    return "".join(source), "".join(tests)


def drop_paths(diff: str, drop: Callable[[str], bool]) -> str:
    """The diff without the file sections for which `drop(path)` holds, old or new path.

    Used to strip an agent's edits of test files (`drop_paths(d, is_test_path)`) before
    grading. Kept sections are verbatim; text before the first section is left out.

    Raises:
        PatchError: the diff is malformed (see `parse_patch`).
    """
    _, sections = _split_sections(diff)
    kept = [s.text for s in sections if not any(drop(p) for p in _read_section(s).touched)]
    return "".join(kept)


@dataclass(frozen=True)
class _Section:
    text: str
    first_line: int  # 1-based line number of the section's first line in the whole diff


def _lines(text: str) -> list[str]:
    # Split on "\n" only: str.splitlines would also split on form feeds and other
    # separators that are ordinary content inside a hunk.
    lines = text.split("\n")
    out = [line + "\n" for line in lines[:-1]]
    if lines[-1]:
        out.append(lines[-1])
    return out


def _split_sections(text: str) -> tuple[str, list[_Section]]:
    """Cut a diff into (preamble, one section per file), tracking hunk lengths.

    A section starts at `diff --git` or, outside a git header, at a `--- ` line followed by
    `+++ `. Lines inside a hunk are never taken for headers, however they begin.
    """
    if not text.strip():
        return "", []
    lines = _lines(text)
    starts: list[int] = []
    hunk = _Hunk()
    in_git_header = False  # after `diff --git`, before its `---`/`+++` pair
    for i, line in enumerate(lines):
        body = line.rstrip("\r\n")
        if hunk.open:
            hunk.take(body, i + 1)
        elif body.startswith("diff --git "):
            starts.append(i)
            hunk, in_git_header = _Hunk(), True
        elif body.startswith("--- ") and i + 1 < len(lines) and lines[i + 1].startswith("+++ "):
            if not in_git_header:
                starts.append(i)
            hunk, in_git_header = _Hunk(), False
        elif (m := _HUNK_HEADER.match(body)) and starts:
            hunk = _Hunk(m, i + 1)
        else:
            hunk.after(body, i + 1)
    if hunk.open:
        raise PatchError(
            f"line {len(lines)}: the diff ends inside the hunk that starts at line "
            f"{hunk.header_line}; the patch is truncated"
        )
    if not starts:
        raise PatchError(
            "the text holds no file section (no `diff --git` or `---`/`+++` header); "
            "pass a unified diff, or the empty string for no change"
        )
    bounds = [*starts, len(lines)]
    sections = [
        _Section(text="".join(lines[a:b]), first_line=a + 1) for a, b in itertools.pairwise(bounds)
    ]
    return "".join(lines[: starts[0]]), sections


class _Hunk:
    """The lines a hunk's `@@ -a,b +c,d @@` header still owes, counted down as they come."""

    def __init__(self, header: re.Match[str] | None = None, line: int = 0):
        self.header_line = line
        self.old_left = 0 if header is None else int(header.group(2) or 1)
        self.new_left = 0 if header is None else int(header.group(4) or 1)
        self.just_closed = False

    @property
    def open(self) -> bool:
        return self.old_left > 0 or self.new_left > 0

    def take(self, body: str, line: int) -> None:
        """Count one line inside the hunk."""
        kind = body[:1] or " "  # an empty line is a context line whose space was trimmed
        if kind == "\\":  # "\ No newline at end of file" counts for neither side
            return
        if kind not in " -+":
            raise PatchError(
                f"line {line}: the hunk that starts at line {self.header_line} is shorter than "
                f"its header says (found {body[:40]!r}); the patch is truncated or its "
                "counts are wrong"
            )
        self.old_left -= kind in " -"
        self.new_left -= kind in " +"
        if self.old_left < 0 or self.new_left < 0:
            raise PatchError(
                f"line {line}: the hunk that starts at line {self.header_line} is longer than "
                "its header says; fix the counts in its @@ line"
            )
        self.just_closed = not self.open

    def after(self, body: str, line: int) -> None:
        """Check a line outside any hunk: a hunk line right after a closed hunk is not one."""
        if body.startswith("\\"):
            return
        # `-- ` opens the signature that `git format-patch` appends.
        if self.just_closed and body[:1] in (" ", "+", "-") and body != "-- ":
            raise PatchError(
                f"line {line}: the hunk that starts at line {self.header_line} runs on past the "
                f"length its @@ header gives ({body[:40]!r}); fix the counts"
            )
        self.just_closed = False


def _read_section(section: _Section) -> FileChange:
    try:
        files = list(PatchSet(section.text))
    except UnidiffParseError as e:
        raise PatchError(f"line {section.first_line}: unreadable file section: {e}") from e
    if len(files) != 1:
        raise PatchError(
            f"line {section.first_line}: expected one file in this section, found {len(files)}"
        )
    f = files[0]
    is_git = section.text.startswith("diff --git ")
    if not is_git and not f:
        raise PatchError(f"line {section.first_line}: file section for {f.path!r} has no hunk")
    source, target = _strip(f.source_file), _strip(f.target_file)
    is_new, is_deleted = bool(f.is_added_file), bool(f.is_removed_file)
    path = source if is_deleted or target is None else target
    if path is None:
        raise PatchError(f"line {section.first_line}: file section names no path")
    return FileChange(
        path=path,
        old_path=None if is_new else source,
        added=0 if f.is_binary_file else f.added,
        removed=0 if f.is_binary_file else f.removed,
        is_binary=bool(f.is_binary_file) or "\nGIT binary patch" in section.text,
        is_new=is_new,
        is_deleted=is_deleted,
        is_rename=bool(f.is_rename),
    )


def _strip(name: str | None) -> str | None:
    """A header's file name without quoting, timestamp or `a/`/`b/` prefix; None for /dev/null."""
    if name is None:
        return None
    name = name.split("\t", 1)[0]
    if name.startswith('"') and name.endswith('"') and len(name) >= 2:
        name = _unquote(name[1:-1])
    if name == _DEV_NULL:
        return None
    if name[:2] in ("a/", "b/"):
        name = name[2:]
    return name


_ESCAPES = {"a": 7, "b": 8, "t": 9, "n": 10, "v": 11, "f": 12, "r": 13, '"': 34, "\\": 92}


def _unquote(quoted: str) -> str:
    """Undo git's C-style path quoting (`\\303\\251` octal bytes, `\\t`, `\\"`)."""
    out = bytearray()
    i = 0
    while i < len(quoted):
        c = quoted[i]
        if c == "\\" and i + 1 < len(quoted):
            nxt = quoted[i + 1]
            octal = quoted[i + 1 : i + 4]
            if len(octal) == 3 and all(d in "01234567" for d in octal):
                out.append(int(octal, 8))
                i += 4
                continue
            out.append(_ESCAPES.get(nxt, ord(nxt)))
            i += 2
            continue
        out.extend(c.encode())
        i += 1
    return out.decode("utf-8", errors="surrogateescape")
