"""Package manager: pin versions that install a requested set of packages.

Packages have versions; each version declares dependency ranges on other packages and
conflicts (a package that must not be installed in a range). Some variants add yanked
versions that must not be used, or an existing lockfile whose pins must be kept. The agent
inspects the metadata and submits the complete pin set.

Validity-graded: the verifier checks that every requested package is pinned, that the pin
set is exactly the dependency closure, and that every range and conflict holds. At higher
levels the requested packages must also be as new as possible, in the order given: the
lexicographic optimum found by exhaustive backtracking at generation time.
"""

from __future__ import annotations

import functools
import random
import re
from collections.abc import Mapping
from typing import Any

from pydantic import Field

from envsynth.errors import ToolError
from envsynth.schema import Verdict
from pipelines.general.family import (
    Answer,
    Call,
    Family,
    FamilyConfig,
    TaskDraft,
    Variant,
    register_family,
)
from pipelines.general.tools import State, find_record, tool

_NAMES = ["arrow", "bolt", "cinder", "delta", "ember", "flint", "glyph", "helix", "ion",
          "jade", "kite", "lumen", "moss", "nova", "onyx", "pixel", "quartz", "rune", "sable",
          "tidal", "umber", "vortex"]
_CLAUSE = re.compile(r"^(>=|<=|==|!=|<|>)(\d+\.\d+\.\d+)$")
_NODE_BUDGET = 4000
"""Backtracking nodes allowed per solve; tasks whose search is larger are skipped."""

RULES = (
    "A dependency range is a comma-separated list of clauses (>=, >, <=, <, ==, != a "
    "version), all of which must hold; versions compare numerically part by part. A conflict "
    "entry on an installed version means the named package must not be installed in a "
    "version matching its range. Pin exactly one version per package; pin the requested "
    "packages and everything the pinned versions depend on, directly or indirectly, and "
    "nothing else"
)


class DepsConfig(FamilyConfig):
    packages: int = Field(12, ge=6, le=20)
    max_versions: int = Field(4, ge=2, le=6)
    conflict_rate: float = Field(0.2, ge=0.0, le=0.6)
    """Chance that a version declares a conflict."""
    yanked_rate: float = Field(0.0, ge=0.0, le=0.4)
    """Chance that a version is yanked (withdrawn: must not be installed)."""
    split_conflicts: bool = False
    """Whether conflicts are shown by a separate tool instead of with the metadata."""
    lockfile: bool = False
    """Whether the project has a lockfile whose pins must be kept."""


class PinSet(Answer):
    pins: list[str] = Field(description='Every package to install, as "name==version".')


# ---- versions and ranges ----------------------------------------------------------------


@functools.cache
def _v(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split("."))


@functools.cache
def _in_range(version: str, spec: str) -> bool:
    v = _v(version)
    for clause in spec.split(","):
        m = _CLAUSE.match(clause.strip())
        if m is None:
            raise ValueError(f"bad range clause {clause!r}")
        op, w = m.group(1), _v(m.group(2))
        ok = {">=": v >= w, ">": v > w, "<=": v <= w, "<": v < w, "==": v == w, "!=": v != w}[op]
        if not ok:
            return False
    return True


def _index(state: State) -> dict[str, dict[str, dict[str, Any]]]:
    return {p["name"]: {v["version"]: v for v in p["versions"]} for p in state["packages"]}


def _compatible(idx: Mapping[str, Any], name: str, version: str, pins: Mapping[str, str]) -> bool:
    """Whether `name==version` agrees with every pin in both directions (ranges, conflicts)."""
    meta = idx[name][version]
    for other, ov in pins.items():
        om = idx[other][ov]
        if name in om["deps"] and not _in_range(version, om["deps"][name]):
            return False
        if name in om["conflicts"] and _in_range(version, om["conflicts"][name]):
            return False
        if other in meta["deps"] and not _in_range(ov, meta["deps"][other]):
            return False
        if other in meta["conflicts"] and _in_range(ov, meta["conflicts"][other]):
            return False
    return True


class _Search:
    """Backtracking that assigns requested packages first, newest version first.

    Because the requested packages are decided first and in order, the first complete
    assignment found is the lexicographic optimum of their versions.
    """

    def __init__(self, idx: Mapping[str, Any], requested: list[str], locked: Mapping[str, str]):
        self.idx, self.requested, self.locked = idx, requested, dict(locked)
        self.nodes = 0

    def run(self) -> dict[str, str] | None:
        return self._dfs(dict(self.locked))

    def _next(self, pins: dict[str, str]) -> str | None:
        for name in self.requested:
            if name not in pins:
                return name
        for name in sorted(pins):
            for dep in sorted(self.idx[name][pins[name]]["deps"]):
                if dep not in pins:
                    return dep
        return None

    def _dfs(self, pins: dict[str, str]) -> dict[str, str] | None:
        name = self._next(pins)
        if name is None:
            return dict(pins)
        versions = sorted(self.idx[name], key=_v, reverse=True)
        for version in versions:
            self.nodes += 1
            if self.nodes > _NODE_BUDGET:
                return None
            if self.idx[name][version]["yanked"]:
                continue
            if _compatible(self.idx, name, version, pins):
                pins[name] = version
                found = self._dfs(pins)
                if found is not None:
                    return found
                del pins[name]
        return None


def _problems(idx: Mapping[str, Any], pins: Mapping[str, str]) -> list[str]:
    """Every broken range or conflict among `pins` (names and versions must exist)."""
    out = []
    for name, version in sorted(pins.items()):
        meta = idx[name][version]
        for dep, spec in sorted(meta["deps"].items()):
            if dep not in pins:
                out.append(f"{name}=={version} needs {dep} {spec}, which is not pinned")
            elif not _in_range(pins[dep], spec):
                out.append(f"{name}=={version} needs {dep} {spec}, but {dep}=={pins[dep]}")
        for other, spec in sorted(meta["conflicts"].items()):
            if other in pins and _in_range(pins[other], spec):
                out.append(f"{name}=={version} conflicts with {other} {spec} ({pins[other]})")
    return out


def _parse_pins(idx: Mapping[str, Any], pins: list[str]) -> dict[str, str]:
    """`name==version` strings to a dict; ValueError on a malformed, unknown or duplicate pin."""
    out: dict[str, str] = {}
    for pin in pins:
        name, sep, version = pin.partition("==")
        if not sep or name not in idx or version not in idx[name]:
            raise ValueError(f"{pin!r} is not a known name==version")
        if name in out:
            raise ValueError(f"{name} is pinned twice")
        out[name] = version
    return out


# ---- tools ------------------------------------------------------------------------------


def _package(state: State, name: str) -> list[dict[str, Any]]:
    missing = f"no package {name!r}; list_packages or search_packages show the names"
    return find_record(state["packages"], name, missing, key="name")["versions"]


def _meta(state: State, name: str, version: str) -> dict[str, Any]:
    return find_record(
        _package(state, name),
        version,
        f"{name} has no version {version!r}; list_versions shows them",
        key="version",
    )


@tool()
def list_packages(state: State) -> list[str]:
    """List every package name in the index."""
    return [p["name"] for p in state["packages"]]


@tool()
def search_packages(state: State, query: str) -> list[str]:
    """Package names containing a substring.

    Args:
        query: part of a package name (at least 2 characters).
    """
    if len(query) < 2:
        raise ToolError("query must have at least 2 characters")
    return [p["name"] for p in state["packages"] if query.lower() in p["name"]]


@tool()
def list_versions(state: State, name: str) -> list[dict[str, Any]]:
    """A package's versions, oldest first, with whether each is yanked (must not be used).

    Args:
        name: the package name.
    """
    return [{"version": r["version"], "yanked": r["yanked"]} for r in _package(state, name)]


@tool()
def get_metadata(state: State, name: str, version: str) -> dict[str, Any]:
    """One version's dependencies ({package: range}) and, unless listed separately, conflicts.

    Args:
        name: the package name.
        version: one of its versions, e.g. "1.2.0".
    """
    meta = _meta(state, name, version)
    shown = {"name": name, "version": version, "deps": meta["deps"], "yanked": meta["yanked"]}
    if not state["split_conflicts"]:
        shown["conflicts"] = meta["conflicts"]
    return shown


@tool()
def get_conflicts(state: State, name: str, version: str) -> dict[str, str]:
    """One version's conflicts: {package: range} that must not be installed alongside it.

    Args:
        name: the package name.
        version: one of its versions.
    """
    return _meta(state, name, version)["conflicts"]


@tool()
def dry_run(state: State, pins: list[str]) -> dict[str, Any]:
    """Check a candidate pin set without installing: broken ranges, conflicts, yanked pins.

    It does not check which packages were requested, nor whether versions are the newest.

    Args:
        pins: candidate pins as "name==version".
    """
    idx = _index(state)
    try:
        parsed = _parse_pins(idx, pins)
    except ValueError as e:
        raise ToolError(str(e)) from None
    problems = _problems(idx, parsed)
    problems += [f"{n}=={v} is yanked" for n, v in sorted(parsed.items()) if idx[n][v]["yanked"]]
    return {"ok": not problems, "problems": problems}


@tool()
def read_lockfile(state: State) -> dict[str, str]:
    """The project's lockfile: the pins currently installed, {package: version}."""
    if state["lockfile"] is None:
        raise ToolError("this project has no lockfile")
    return state["lockfile"]


# ---- the family -------------------------------------------------------------------------


@register_family
class DependencyResolution(Family[DepsConfig]):
    name = "dependency_resolution"
    summary = "Package manager: pin versions that satisfy every range and conflict."
    config_model = DepsConfig
    answer_model = PinSet
    submit_description = "Submit the complete set of pins to install."
    tools = (list_packages, search_packages, list_versions, get_metadata, get_conflicts,
             dry_run, read_lockfile)
    variants = (
        Variant("basic", ("list_packages", "list_versions", "get_metadata"), ("ranges",),
                {"conflict_rate": 0.0}),
        Variant("conflicts", ("list_versions", "get_metadata", "get_conflicts"),
                ("ranges", "conflicts"), {"split_conflicts": True, "conflict_rate": 0.35}),
        Variant("dry-run", ("list_packages", "list_versions", "get_metadata", "dry_run"),
                ("ranges", "conflicts")),
        Variant("newest", ("search_packages", "list_versions", "get_metadata"),
                ("ranges", "conflicts", "newest")),
        Variant("lockfile", ("read_lockfile", "list_versions", "get_metadata"),
                ("ranges", "conflicts", "locked"), {"lockfile": True}),
        Variant("yanked", ("search_packages", "list_versions", "get_metadata", "dry_run"),
                ("ranges", "conflicts", "yanked"), {"yanked_rate": 0.25, "packages": 14}),
    )

    def generate_state(self, rng: random.Random, config: DepsConfig) -> State:
        names = rng.sample(_NAMES, config.packages)
        versions = {n: self._versions(rng, config.max_versions) for n in names}
        # The newest version is never yanked, so every package stays installable.
        yanked = {n: {v for v in vs[:-1] if rng.random() < config.yanked_rate}
                  for n, vs in versions.items()}
        packages: list[dict[str, Any]] = []
        for i, name in enumerate(names):
            later = names[i + 1:]
            # Dependencies point to later packages only, so the graph has no cycles.
            deps = rng.sample(later, min(len(later), rng.choice((0, 1, 1, 2, 2, 3))))
            rows: list[dict[str, Any]] = []
            for k, version in enumerate(versions[name]):
                share = k / max(1, len(versions[name]) - 1)
                rows.append({
                    "version": version,
                    "deps": {d: self._range(rng, versions[d], yanked[d], share)
                             for d in sorted(deps)},
                    "conflicts": self._conflict(rng, name, names, versions, config.conflict_rate),
                    "yanked": version in yanked[name],
                })
            packages.append({"name": name, "versions": rows})
        packages.sort(key=lambda p: p["name"])
        state: State = {"packages": packages, "split_conflicts": config.split_conflicts,
                        "lockfile": None}
        if config.lockfile:
            state["lockfile"] = self._lockfile(rng, state)
        return state

    @staticmethod
    def _versions(rng: random.Random, most: int) -> list[str]:
        major, minor, out = rng.randint(0, 2), rng.randint(0, 3), []
        for _ in range(rng.randint(2, most)):
            out.append(f"{major}.{minor}.{rng.randint(0, 3)}")
            if rng.random() < 0.3:
                major, minor = major + 1, 0
            else:
                minor += 1
        return out

    @staticmethod
    def _range(rng: random.Random, dep_versions: list[str], yanked: set[str],
               share: float) -> str:
        # Newer versions of a package tend to need newer versions of what they depend on.
        top = len(dep_versions) - 1
        lo = max(0, min(top, round(share * top) - rng.randint(0, 2)))
        spec = f">={dep_versions[lo]}"
        if lo < top and rng.random() < 0.5:
            spec += f",<{dep_versions[rng.randint(lo + 1, top)]}"
        elif lo < top and rng.random() < 0.15:
            spec += f",!={dep_versions[-1]}"
        if all(v in yanked or not _in_range(v, spec) for v in dep_versions):
            return f">={dep_versions[lo]}"  # a range of yanked versions only is a dead end
        return spec

    @staticmethod
    def _conflict(rng: random.Random, name: str, names: list[str],
                  versions: Mapping[str, list[str]], rate: float) -> dict[str, str]:
        if rng.random() >= rate:
            return {}
        other = rng.choice([n for n in names if n != name])
        pivot = rng.choice(versions[other])
        return {other: rng.choice((f"<{pivot}", f">={pivot}", f"=={pivot}"))}

    def _lockfile(self, rng: random.Random, state: State) -> dict[str, str] | None:
        idx = _index(state)
        for _ in range(6):
            roots = rng.sample(sorted(idx), 2)
            found = _Search(idx, roots, {}).run()
            if found is not None:
                return dict(sorted(found.items()))
        return {}

    def generate_task(self, rng: random.Random, state: State, config: DepsConfig,
                      variant: Variant, level: int) -> TaskDraft | None:
        idx = _index(state)
        locked = state["lockfile"] or {}
        # Only packages installable on their own: a request that cannot resolve is no task.
        with_deps = [n for n in sorted(idx) if n not in locked
                     and any(m["deps"] for m in idx[n].values())
                     and _Search(idx, [n], locked).run() is not None]
        if not with_deps:
            return None
        newest = level == 2 or (level == 1 and "newest" in variant.constraints)
        count = (1, 2, rng.choice((2, 3)))[level]
        fallback = None
        for _ in range(6):
            requested = rng.sample(with_deps, min(count, len(with_deps)))
            search = _Search(idx, requested, locked)
            found = search.run()
            if found is None:
                continue
            trap = not self._naive_works(idx, requested, locked)
            args = (variant, config, level, requested, locked, found, newest, search.nodes, trap)
            # Prefer requests where "newest of everything" fails: they need real resolution.
            if trap or level == 0:
                return self._draft(*args)
            fallback = fallback or args
        return self._draft(*fallback) if fallback else None

    @staticmethod
    def _naive_works(idx: Mapping[str, Any], requested: list[str], locked: dict[str, str]) -> bool:
        """Whether 'newest of everything' already resolves: then the task has no trap."""
        pins = dict(locked)
        todo = list(requested)
        while todo:
            name = todo.pop()
            if name in pins:
                continue
            pins[name] = max(idx[name], key=_v)
            todo += list(idx[name][pins[name]]["deps"])
        return not _problems(idx, pins)

    def _draft(self, variant: Variant, config: DepsConfig, level: int, requested: list[str],
               locked: dict[str, str], found: dict[str, str], newest: bool,
               nodes: int, trap: bool) -> TaskDraft:
        ask = ", ".join(requested)
        text = f"Resolve an install of: {ask}. {RULES}."
        if config.yanked_rate > 0:
            text += " Yanked versions must not be installed."
        if locked:
            text += (" The project has a lockfile: keep every locked package at its locked "
                     "version; the locked packages stay installed and belong in your pin set.")
        if newest:
            text += (f" Among all valid pin sets, choose the newest possible version of "
                     f"{requested[0]}")
            if len(requested) > 1:
                text += (", then, keeping that, the newest possible version of each next "
                         f"package in the order {ask}")
            text += "."
        text += " Submit the complete pin set as \"name==version\" strings."
        return TaskDraft(
            instruction=text,
            goal={"requested": requested, "locked": locked,
                  "no_yanked": config.yanked_rate > 0,
                  "newest": {n: found[n] for n in requested} if newest else None,
                  "reference": sorted(f"{n}=={v}" for n, v in found.items())},
            knobs={"steps": len(found), "constraints": len(requested) + int(newest),
                   "distractors": nodes - len(found), "trap": int(trap)},
        )

    def solve(self, state: State, draft: TaskDraft, variant: Variant) -> list[Call]:
        g = draft.goal
        calls = [Call("read_lockfile"), Call("list_packages")]
        calls += [Call("search_packages", {"query": n}) for n in g["requested"]]
        for pin in g["reference"]:
            name, _, version = pin.partition("==")
            calls += [Call("list_versions", {"name": name}),
                      Call("get_metadata", {"name": name, "version": version}),
                      Call("get_conflicts", {"name": name, "version": version})]
        calls += [Call("dry_run", {"pins": g["reference"]})]
        calls = [c for c in calls if c.name in variant.tools]
        return [*calls, Call("submit", {"pins": g["reference"]})]

    def verify(self, final_state: State, answer: Mapping[str, Any] | None,
               goal: Mapping[str, Any]) -> Verdict:
        if not answer or answer.get("pins") is None:
            return Verdict(reward=0.0, reason="no pin set submitted")
        idx = _index(final_state)
        try:
            pins = _parse_pins(idx, answer["pins"])
        except ValueError as e:
            return Verdict(reward=0.0, components={"well_formed": 0.0}, reason=str(e))
        needed = set(goal["requested"]) | set(goal["locked"])
        for name, version in pins.items():
            needed |= set(idx[name][version]["deps"])
        parts = {
            "requested": all(n in pins for n in goal["requested"]),
            "closure": set(pins) <= needed,
            "consistent": not _problems(idx, pins),
            "not_yanked": not goal["no_yanked"] or not any(
                idx[n][v]["yanked"] for n, v in pins.items()),
            "locked": all(pins.get(n) == v for n, v in goal["locked"].items()),
            "newest": goal["newest"] is None or all(
                pins.get(n) == v for n, v in goal["newest"].items()),
        }
        failed = [k for k, ok in parts.items() if not ok]
        return Verdict(reward=0.0 if failed else 1.0,
                       components={k: float(ok) for k, ok in parts.items()},
                       reason="pin set resolves" if not failed
                       else f"failed checks: {', '.join(failed)}")

    def perturb(self, rng: random.Random, state: State, draft: TaskDraft,
                reference: list[Call], variant: Variant) -> dict[str, list[Call]]:
        g = draft.goal
        idx = _index(state)
        pins = dict(p.partition("==")[::2] for p in g["reference"])
        broken = self._break_range(idx, pins)
        # The wrong record: a package that was not asked for instead of one that was.
        target = g["requested"][-1]
        wrong = {n: v for n, v in pins.items() if n != target}
        strangers = [n for n in sorted(idx) if n not in pins]
        if strangers:
            wrong[strangers[0]] = max(idx[strangers[0]], key=_v)

        def submit(p: Mapping[str, str]) -> Call:
            return Call("submit", {"pins": sorted(f"{n}=={v}" for n, v in p.items())})

        # Answer-graded, so the reads of the reference add nothing to a near miss.
        return {"constraint_broken": [submit(broken)], "wrong_value": [submit(wrong)]}

    @staticmethod
    def _break_range(idx: Mapping[str, Any], pins: dict[str, str]) -> dict[str, str]:
        """The reference with one dependency moved outside its range (or left out)."""
        for name, version in sorted(pins.items()):
            for dep, spec in sorted(idx[name][version]["deps"].items()):
                outside = [v for v in idx[dep] if not _in_range(v, spec)]
                if outside:
                    return {**pins, dep: outside[-1]}
        name = next(n for n, v in sorted(pins.items()) if idx[n][v]["deps"])
        dep = sorted(idx[name][pins[name]]["deps"])[0]
        return {n: v for n, v in pins.items() if n != dep}
