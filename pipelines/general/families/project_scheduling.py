"""Project scheduling: critical paths, slack and deadline schedules over a task network.

The state is a small construction project: activities with durations in days, the
activities each one waits for and, in some variants, the crew it needs out of a limited
pool. Tasks ask for an earliest finish, a slack or latest start, a critical path, the
activities that can slip, or (state-changing) a start day for every activity that meets a
deadline. Answers are graded against a forward/backward longest-path pass stored at
generation; chains and schedules are checked for validity against the network itself.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
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

_WORK = ["survey site", "clear ground", "dig footings", "pour foundation", "frame walls",
         "install roof", "rough plumbing", "rough wiring", "insulate", "hang drywall",
         "fit windows", "lay flooring", "paint", "fit kitchen", "landscape", "inspect"]


class SchedulingConfig(FamilyConfig):
    activities: int = Field(11, ge=6, le=16)
    max_deps: int = Field(2, ge=1, le=3)
    crews: bool = False
    """Activities need crew members from a pool of `crew_pool`."""
    crew_pool: int = Field(4, ge=2, le=8)


class ScheduleAnswer(Answer):
    value: int | None = Field(
        None, description="a whole number of days or a day number, for numeric questions")
    tasks: list[str] | None = Field(
        None, description="activity ids, for questions answered by a path or a set")


# ---- network analysis: forward and backward passes ----------------------------------------------


def _durations(state: State, extra: Mapping[str, int]) -> dict[str, int]:
    return {t["id"]: t["duration"] + extra.get(t["id"], 0) for t in state["tasks"]}


def _forward(state: State, extra: Mapping[str, int]) -> dict[str, int]:
    """Earliest start of every activity (activities are stored in a topological order)."""
    dur = _durations(state, extra)
    es: dict[str, int] = {}
    for t in state["tasks"]:
        es[t["id"]] = max((es[d] + dur[d] for d in t["depends_on"]), default=0)
    return es


def _latest_starts(state: State, extra: Mapping[str, int], finish_by: int) -> dict[str, int]:
    dur = _durations(state, extra)
    ls: dict[str, int] = {}
    successors = _successors(state)
    for t in reversed(state["tasks"]):
        lf = min((ls[s] for s in successors[t["id"]]), default=finish_by)
        ls[t["id"]] = lf - dur[t["id"]]
    return ls


def _successors(state: State) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {t["id"]: [] for t in state["tasks"]}
    for t in state["tasks"]:
        for d in t["depends_on"]:
            out[d].append(t["id"])
    return out


def _makespan(state: State, extra: Mapping[str, int]) -> int:
    es, dur = _forward(state, extra), _durations(state, extra)
    return max(es[i] + dur[i] for i in es)


def _critical_chain(state: State, extra: Mapping[str, int], end: str | None) -> list[str]:
    """One longest chain ending at `end` (or at the activity that finishes last)."""
    es, dur = _forward(state, extra), _durations(state, extra)
    deps = {t["id"]: t["depends_on"] for t in state["tasks"]}
    node = end or max(es, key=lambda i: (es[i] + dur[i], i))
    chain = [node]
    while deps[node]:
        node = max(d for d in deps[node] if es[d] + dur[d] == es[node])
        chain.append(node)
    return chain[::-1]


def _chain_problem(state: State, chain: Sequence[str], goal: Mapping[str, Any]) -> str | None:
    """Why `chain` is not a longest chain of the asked kind, or None."""
    deps = {t["id"]: t["depends_on"] for t in state["tasks"]}
    if not chain or any(c not in deps for c in chain):
        return "the path names unknown activities"
    if deps[chain[0]]:
        return f"{chain[0]} waits for other activities, so the path does not start the project"
    for a, b in zip(chain, chain[1:], strict=False):
        if a not in deps[b]:
            return f"{b} does not wait for {a}"
    if goal["target"] is not None and chain[-1] != goal["target"]:
        return f"the path must end at {goal['target']}"
    length = sum(_durations(state, goal["extra"])[c] for c in chain)
    if length != goal["expected"]:
        return f"the path takes {length} days; the longest takes {goal['expected']}"
    return None


def _crew_use(state: State, starts: Mapping[str, int]) -> dict[int, int]:
    """Crew members at work on each day (0 everywhere when crews are not used)."""
    use: dict[int, int] = {}
    for t in state["tasks"]:
        if t["id"] in starts:
            for day in range(starts[t["id"]], starts[t["id"]] + t["duration"]):
                use[day] = use.get(day, 0) + t.get("crew", 0)
    return use


def _schedule_problem(state: State, starts: Mapping[str, int], deadline: int) -> str | None:
    for t in state["tasks"]:
        s = starts.get(t["id"])
        if s is None:
            return f"{t['id']} has no start day"
        for d in t["depends_on"]:
            ready = starts.get(d, 0) + next(x["duration"] for x in state["tasks"] if x["id"] == d)
            if s < ready:
                return f"{t['id']} starts on day {s}, before {d} finishes on day {ready}"
        if s + t["duration"] > deadline:
            return f"{t['id']} finishes on day {s + t['duration']}, after the deadline {deadline}"
    pool = state["crew_pool"]
    over = sorted(day for day, n in _crew_use(state, starts).items() if pool and n > pool)
    return f"day {over[0]} needs more than {pool} crew" if over else None


def _serial_schedule(state: State, order: Sequence[str]) -> dict[str, int]:
    """Serial schedule generation: each activity in `order` at its earliest crew-feasible day."""
    tasks = {t["id"]: t for t in state["tasks"]}
    starts: dict[str, int] = {}
    use: dict[int, int] = {}
    for tid in order:
        t = tasks[tid]
        day = max((starts[d] + tasks[d]["duration"] for d in t["depends_on"]), default=0)
        while state["crew_pool"] and any(use.get(x, 0) + t.get("crew", 0) > state["crew_pool"]
                                         for x in range(day, day + t["duration"])):
            day += 1
        starts[tid] = day
        for x in range(day, day + t["duration"]):
            use[x] = use.get(x, 0) + t.get("crew", 0)
    return starts


# ---- tools ------------------------------------------------------------------------------------


def _task(state: State, task_id: str) -> dict[str, Any]:
    return find_record(state["tasks"], task_id, f"no activity {task_id!r}; ids look like 'A3'")


@tool()
def list_tasks(state: State) -> list[dict[str, Any]]:
    """Every activity: id, name, duration in days, depends_on (the activities it waits for;
    it may start only once they have all finished) and, where crews apply, its crew size."""
    return state["tasks"]


@tool()
def list_task_ids(state: State) -> list[dict[str, str]]:
    """Activity ids and names only; use get_task for durations and dependencies."""
    return [{"id": t["id"], "name": t["name"]} for t in state["tasks"]]


@tool()
def get_task(state: State, task_id: str) -> dict[str, Any]:
    """One activity: duration in days, the activities it waits for, crew size where used.

    Args:
        task_id: the activity's id, e.g. "A4".
    """
    return _task(state, task_id)


@tool()
def get_successors(state: State, task_id: str) -> list[str]:
    """The activities that wait for this one.

    Args:
        task_id: the activity's id, e.g. "A4".
    """
    _task(state, task_id)
    return _successors(state)[task_id]


@tool(writes=True)
def set_start(state: State, task_id: str, day: int) -> str:
    """Schedule an activity to start on a day (day 0 is the project's first day). An activity
    starting on day s with duration d works days s..s+d-1 and finishes on day s+d. The tool
    does not check dependencies, crews or the deadline.

    Args:
        task_id: the activity's id.
        day: its start day, 0 or later.
    """
    t = _task(state, task_id)
    if day < 0:
        raise ToolError("start days are 0 or later")
    state["schedule"][task_id] = day
    return f"{task_id} starts on day {day} and finishes on day {day + t['duration']}"


@tool(writes=True)
def clear_start(state: State, task_id: str) -> str:
    """Remove an activity's start day from the schedule.

    Args:
        task_id: the activity's id.
    """
    if task_id not in state["schedule"]:
        raise ToolError(f"{task_id} is not scheduled")
    del state["schedule"][task_id]
    return f"{task_id} unscheduled"


@tool()
def view_schedule(state: State) -> dict[str, Any]:
    """The schedule so far (start and finish day per activity), the crew pool and the crew in
    use on each working day."""
    starts = state["schedule"]
    return {"activities": {k: {"start": v, "finish": v + _task(state, k)["duration"]}
                           for k, v in starts.items()},
            "crew_pool": state["crew_pool"],
            "crew_by_day": {str(d): n for d, n in sorted(_crew_use(state, starts).items())}}


# ---- questions --------------------------------------------------------------------------------

_QUESTIONS = {
    "makespan": ("finish", "makespan", "makespan_if"),
    "slack": ("earliest_start", "total_slack", "latest_start"),
    "critical": ("chain_to", "chain", "chain_if"),
    "can-slip": ("slip", "slip", "slip_deadline"),
}
_ASK = {
    "finish": "On which day (day 0 = the first day) can activity {target} finish at the earliest?",
    "makespan": "How many days does the whole project take at the earliest?",
    "makespan_if": "How many days would the whole project take at the earliest{what_if}?",
    "earliest_start": "On which day (day 0 = the first day) can activity {target} start at the "
                      "earliest?",
    "total_slack": "How many days can activity {target} start later than its earliest start "
                   "without delaying the project's earliest completion (its total slack)?",
    "latest_start": "The project must be complete by day {deadline} (every activity finished by "
                    "then). What is the latest day activity {target} can start?",
    "chain_to": "List a longest chain of activities that ends at {target}: each activity waits "
                "for the previous one and the first waits for nothing.",
    "chain": "List the critical path: a chain of activities as long as the whole project, each "
             "waiting for the previous one, the first waiting for nothing.",
    "chain_if": "List the critical path{what_if}: a chain of activities as long as the whole "
                "project, each waiting for the previous one, the first waiting for nothing.",
    "slip": "Which activities could each start {k} days later than their earliest start without "
            "pushing the end of the project past its earliest completion (day {deadline})?",
    "slip_deadline": "The deadline is day {deadline}. Which activities could each start {k} days "
                     "later than their earliest start without the project missing it?",
}


def _value(state: State, goal: Mapping[str, Any]) -> int:
    """The number a value question asks for, by forward and backward passes."""
    q, t, extra = goal["question"], goal["target"], goal["extra"]
    es, dur = _forward(state, extra), _durations(state, extra)
    if q == "finish":
        return es[t] + dur[t]
    if q == "earliest_start":
        return es[t]
    if q == "total_slack":
        return _latest_starts(state, extra, _makespan(state, extra))[t] - es[t]
    if q == "latest_start":
        return _latest_starts(state, extra, goal["deadline"])[t]
    return _makespan(state, extra)


def _slippers(state: State, goal: Mapping[str, Any]) -> list[str]:
    es, ls = _forward(state, goal["extra"]), _latest_starts(state, goal["extra"], goal["deadline"])
    return [t["id"] for t in state["tasks"] if ls[t["id"]] - es[t["id"]] >= goal["k"]]


def _without_edge(state: State, task: str, dep: str) -> State:
    """The network with one dependency forgotten: the classic slip of a hand calculation."""
    return {**state, "tasks": [{**t, "depends_on": [d for d in t["depends_on"] if d != dep]}
                               if t["id"] == task else t for t in state["tasks"]]}


def _heuristic_schedules(state: State) -> list[dict[str, int]]:
    """Serial schedules under four priority rules, shortest first."""
    ids = [t["id"] for t in state["tasks"]]
    dur = _durations(state, {})
    es, ls = _forward(state, {}), _latest_starts(state, {}, _makespan(state, {}))
    rules = [sorted(ids, key=lambda i: (ls[i], i)), sorted(ids, key=lambda i: (es[i], i)), ids,
             sorted(ids, key=lambda i: (-dur[i], ids.index(i)))]
    schedules = [_serial_schedule(state, _topological(state, r)) for r in rules]
    return sorted(schedules, key=lambda s: max(s[i] + dur[i] for i in s))


# ---- the family -------------------------------------------------------------------------------


@register_family
class ProjectScheduling(Family[SchedulingConfig]):
    name = "project_scheduling"
    summary = "Critical paths, slack and deadline schedules of a project's activity network."
    config_model = SchedulingConfig
    answer_model = ScheduleAnswer
    submit_description = ("End the task with your answer in `value` or `tasks`, as the question "
                          "asks; a scheduling task passes no arguments.")
    tools = (list_tasks, list_task_ids, get_task, get_successors, set_start, clear_start,
             view_schedule)
    variants = (
        Variant("makespan", ("list_tasks",), ("precedence",)),
        Variant("slack", ("list_task_ids", "get_task"), ("precedence", "deadline")),
        Variant("critical", ("list_tasks", "get_successors"), ("precedence",),
                {"activities": 13}),
        Variant("can-slip", ("list_task_ids", "get_task", "get_successors"),
                ("precedence", "deadline"), {"max_deps": 3}),
        Variant("crew-schedule", ("list_tasks", "set_start", "clear_start", "view_schedule"),
                ("precedence", "crews", "deadline"), {"crews": True, "activities": 9}),
        Variant("schedule", ("list_task_ids", "get_task", "set_start", "view_schedule"),
                ("precedence", "deadline"), {"activities": 8}),
    )

    def generate_state(self, rng: random.Random, config: SchedulingConfig) -> State:
        tasks = []
        for i, name in enumerate(rng.sample(_WORK, config.activities)):
            # A few early activities wait for nothing, so the network has several sources;
            # dependencies lean on recent activities, which makes long chains.
            free = i == 0 or (i < 4 and rng.random() < 0.4)
            n = 0 if free else rng.randint(1, min(i, config.max_deps))
            deps = sorted(rng.sample(range(max(0, i - 5), i), min(n, i - max(0, i - 5))))
            task: dict[str, Any] = {"id": f"A{i + 1}", "name": name,
                                    "duration": rng.randint(1, 6),
                                    "depends_on": [f"A{d + 1}" for d in deps]}
            if config.crews:
                task["crew"] = rng.randint(1, config.crew_pool - 1)
            tasks.append(task)
        return {"tasks": tasks, "schedule": {},
                "crew_pool": config.crew_pool if config.crews else None}

    def generate_task(self, rng: random.Random, state: State, config: SchedulingConfig,
                      variant: Variant, level: int) -> TaskDraft | None:
        if "set_start" in variant.tools:
            return self._schedule_task(state, level)
        question = _QUESTIONS[variant.name][level]
        ids = [t["id"] for t in state["tasks"]]
        extra = _pick_delay(rng, state) if question.endswith("_if") else {}
        span = _makespan(state, extra)
        inner = _inner(state)
        goal: dict[str, Any] = {"question": question, "extra": extra, "k": None,
                                "target": rng.choice(inner[len(inner) // 3:] or ids),
                                "deadline": span + (rng.randint(1, 6) if question in (
                                    "latest_start", "slip_deadline") else 0)}
        if question == "total_slack":
            es, ls = _forward(state, extra), _latest_starts(state, extra, span)
            goal["target"] = max(ids, key=lambda i: (ls[i] > es[i], rng.random()))
        if question in ("makespan", "makespan_if", "chain", "chain_if"):
            goal["target"] = None
        if question.startswith("chain"):
            chain = _critical_chain(state, extra, goal["target"])
            es, dur = _forward(state, extra), _durations(state, extra)
            goal.update(kind="chain", expected=es[chain[-1]] + dur[chain[-1]])
        elif question.startswith("slip"):
            es, ls = _forward(state, extra), _latest_starts(state, extra, goal["deadline"])
            # A slip within the deadline's own margin suits every activity: ask past it.
            slips = sorted(f for f in {ls[i] - es[i] for i in ids} if f > goal["deadline"] - span)
            if not slips:
                return None
            goal["k"] = rng.choice(slips[: 2 + level])
            goal.update(kind="set", expected=_slippers(state, goal))
        else:
            goal.update(kind="value", expected=_value(state, goal))
        what_if = (f" if activity {next(iter(extra))} took {next(iter(extra.values()))} days "
                   "longer than planned" if extra else "")
        ask = _ASK[question].format(what_if=what_if, **goal)
        field = "`value` (a whole number)" if goal["kind"] == "value" else "`tasks` (activity ids)"
        return TaskDraft(
            instruction=f"{ask} An activity starts only after every activity it waits for has "
                        f"finished. Submit the answer as {field}.",
            goal=goal,
            knobs={"activities": len(ids), "what_if": int(bool(extra)),
                   "steps": 2 if "list_tasks" in variant.tools else len(ids) + 2})

    def _schedule_task(self, state: State, level: int) -> TaskDraft:
        best = _heuristic_schedules(state)[0]
        slack = (4, 1, 0)[level]
        # Easier levels leave slack past the best schedule the priority rules found.
        deadline = max(best[t["id"]] + t["duration"] for t in state["tasks"]) + slack
        pool = state["crew_pool"]
        crews = f"no day needs more than {pool} crew members in total, " if pool else ""
        return TaskDraft(
            instruction="Schedule every activity with set_start so that each starts only after "
                        f"all activities it waits for have finished, {crews}and everything is "
                        f"finished by day {deadline} (an activity starting on day s with "
                        "duration d finishes on day s+d). Then submit.",
            goal={"kind": "schedule", "deadline": deadline},
            knobs={"activities": len(state["tasks"]), "steps": len(state["tasks"]) + 2,
                   "slack_days": slack, "crews": int(pool is not None)})

    def solve(self, state: State, draft: TaskDraft, variant: Variant) -> list[Call]:
        g = draft.goal
        reads = self._reads(state, variant)
        if g["kind"] == "schedule":
            return [*reads, *_placements(self._schedule(state, g)), Call("view_schedule"),
                    Call("submit")]
        if g["kind"] == "value":
            return [*reads, Call("submit", {"value": g["expected"]})]
        if g["kind"] == "set":
            return [*reads, Call("submit", {"tasks": list(g["expected"])})]
        return [*reads, Call("submit", {"tasks": _critical_chain(state, g["extra"], g["target"])})]

    @staticmethod
    def _reads(state: State, variant: Variant) -> list[Call]:
        if "list_tasks" in variant.tools:
            calls = [Call("list_tasks")]
        else:
            calls = [Call("list_task_ids")] + [Call("get_task", {"task_id": t["id"]})
                                               for t in state["tasks"]]
        if "get_successors" in variant.tools:
            calls += [Call("get_successors", {"task_id": t["id"]}) for t in state["tasks"][:2]]
        return calls

    @staticmethod
    def _schedule(state: State, goal: Mapping[str, Any]) -> dict[str, int]:
        for starts in _heuristic_schedules(state):
            if _schedule_problem(state, starts, goal["deadline"]) is None:
                return starts
        raise ValueError("the deadline was set from one of these schedules")

    def verify(self, final_state: State, answer: Mapping[str, Any] | None,
               goal: Mapping[str, Any]) -> Verdict:
        kind = goal["kind"]
        if kind == "schedule":
            problem = _schedule_problem(final_state, final_state["schedule"], goal["deadline"])
            return Verdict(reward=float(problem is None), components={"valid": float(not problem)},
                           reason=problem or "every activity is scheduled validly in time")
        field = "value" if kind == "value" else "tasks"
        got = answer.get(field) if answer else None
        if got is None:
            return Verdict(reward=0.0, reason=f"no `{field}` was submitted")
        if kind == "value":
            ok, why = got == goal["expected"], f"expected {goal['expected']}, got {got}"
        elif kind == "set":
            ok = len(set(got)) == len(got) and set(got) == set(goal["expected"])
            why = "the set of activities differs from the correct one"
        else:
            problem = _chain_problem(final_state, got, goal)
            ok, why = problem is None, problem or ""
        return Verdict(reward=float(ok), components={"correct": float(ok)},
                       reason="correct" if ok else why)

    def perturb(self, rng: random.Random, state: State, draft: TaskDraft, reference: list[Call],
                variant: Variant) -> dict[str, list[Call]]:
        g = draft.goal
        reads = self._reads(state, variant)
        if g["kind"] == "schedule":
            broken, late = _bad_schedules(state, self._schedule(state, g), g["deadline"])
            return {"constraint_broken": [*reads, *_placements(broken), Call("submit")],
                    "wrong_value": [*reads, *_placements(late), Call("submit")]}
        if g["kind"] == "value":
            broken_v, wrong_v = _bad_values(state, g)
            return {"constraint_broken": [*reads, Call("submit", {"value": broken_v})],
                    "wrong_value": [*reads, Call("submit", {"value": wrong_v})]}
        if g["kind"] == "set":
            expected = list(g["expected"])
            es, ls = _forward(state, g["extra"]), _latest_starts(state, g["extra"], g["deadline"])
            outside = [t["id"] for t in state["tasks"] if t["id"] not in expected]
            # The activity closest to being allowed to slip is the tempting extra.
            near = max(outside, key=lambda i: ls[i] - es[i]) if outside else None
            return {"constraint_broken": [*reads, Call("submit", {
                        "tasks": expected + [near] if near else expected[1:]})],
                    "wrong_value": [*reads, Call("submit", {"tasks": expected[:-1]})]}
        chain = _critical_chain(state, g["extra"], g["target"])
        skipped = chain[:-2] + chain[-1:] if len(chain) > 2 else chain[1:]
        return {"constraint_broken": [*reads, Call("submit", {"tasks": skipped})],
                "wrong_value": [*reads, Call("submit", {"tasks": _shorter_chain(state, g, chain)})]}


def _inner(state: State) -> list[str]:
    """Activities that others wait for (asking about a final one repeats the project)."""
    waited = {d for t in state["tasks"] for d in t["depends_on"]}
    return [t["id"] for t in state["tasks"] if t["id"] in waited]


def _pick_delay(rng: random.Random, state: State) -> dict[str, int]:
    """A what-if delay that changes the critical path (or at least the project's length)."""
    ids = [t["id"] for t in state["tasks"]]
    base_chain, base_span = _critical_chain(state, {}, None), _makespan(state, {})
    fallback = None
    for tid in rng.sample(ids, min(8, len(ids))):
        extra = {tid: rng.randint(2, 5)}
        if _critical_chain(state, extra, None) != base_chain:
            return extra
        if fallback is None and _makespan(state, extra) != base_span:
            fallback = extra
    return fallback or {ids[0]: 3}


def _placements(starts: Mapping[str, int]) -> list[Call]:
    return [Call("set_start", {"task_id": t, "day": d}) for t, d in starts.items()]


def _bad_values(state: State, goal: Mapping[str, Any]) -> tuple[int, int]:
    """Near-miss numbers: one dependency forgotten (or the what-if ignored), and a start day
    confused with a finish day."""
    expected = goal["expected"]
    if goal["extra"]:
        broken = _value(state, {**goal, "extra": {}})
    else:
        chain = _critical_chain(state, goal["extra"], goal["target"])
        broken = (_value(_without_edge(state, chain[-1], chain[-2]), goal) if len(chain) > 1
                  else expected + 1)
    t = goal["target"]
    shift = _durations(state, goal["extra"])[t] if t else 1
    wrong = expected + (-shift if goal["question"] in ("finish", "makespan") else shift)
    return (broken if broken != expected else expected - 1,
            wrong if wrong != expected else expected + 1)


def _shorter_chain(state: State, goal: Mapping[str, Any], chain: list[str]) -> list[str]:
    """A valid chain that is not a longest one: branch off at a non-critical dependency."""
    deps = {t["id"]: t["depends_on"] for t in state["tasks"]}
    for i in range(len(chain) - 1, 0, -1):
        for d in deps[chain[i]]:
            if d != chain[i - 1]:
                other = _critical_chain(state, goal["extra"], d) + chain[i:]
                if _chain_problem(state, other, goal):
                    return other
    return chain[:-1] or chain[::-1]


def _bad_schedules(state: State, starts: Mapping[str, int], deadline: int
                   ) -> tuple[dict[str, int], dict[str, int]]:
    """A schedule that starts an activity the day before its predecessor finishes, and one
    whose last activity ends a day past the deadline."""
    dur = _durations(state, {})
    tight = next(((t["id"], starts[t["id"]]) for t in state["tasks"] for d in t["depends_on"]
                  if starts[t["id"]] == starts[d] + dur[d]), None)
    early = dict(starts)
    if tight:
        early[tight[0]] = tight[1] - 1
    else:
        early.pop(state["tasks"][-1]["id"])
    last = max(starts, key=lambda i: starts[i] + dur[i])
    return early, {**starts, last: deadline - dur[last] + 1}


def _topological(state: State, priority: Sequence[str]) -> list[str]:
    """The activities in `priority` order, each moved after everything it waits for."""
    deps = {t["id"]: t["depends_on"] for t in state["tasks"]}
    done: list[str] = []
    pending = list(priority)
    while pending:
        nxt = next(i for i in pending if all(d in done for d in deps[i]))
        done.append(nxt)
        pending.remove(nxt)
    return done
