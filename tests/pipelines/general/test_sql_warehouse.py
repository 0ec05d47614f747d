"""sql_warehouse: hand-computed answers on a tiny messy warehouse, SQLite as a second oracle."""

from __future__ import annotations

import copy
from typing import Any

import orjson
import pytest

from envsynth.errors import ToolError
from pipelines.general.episode import Episode
from pipelines.general.families.sql_warehouse import (
    _SCHEMA,
    _evaluate,
    _facts,
    describe_table,
    run_sql,
    sample_rows,
)
from pipelines.general.family import load_families
from pipelines.general.synthesize import EnvPlan, build_environment

FAMILY = load_families().get("sql_warehouse")


def tiny_state() -> dict[str, Any]:
    """Ann appears twice (id 1 and 3); amounts are text; two date formats; one NULL amount."""
    rows = {
        "customers": [[1, "Ann", "ann@x.test", "de"], [2, "Bob", "bob@x.test", "US"],
                      [3, "Ann ", "ANN@x.test ", " DE"], [4, "Cat", "cat@x.test", None]],
        "products": [[1, "p", "toys", 10.0], [2, "q", "garden", 20.0]],
        "orders": [[1, 1, 1, 1, "$1,000.00", "2025-01-05", "completed"],
                   [2, 3, 2, 1, "250.50", "10/02/2025", "completed"],
                   [3, 2, 1, 1, "300.00", "2025-02-11", "completed"],
                   [4, 2, 2, 1, "999.00", "2025-01-20", "cancelled"],
                   [5, 4, 1, 1, None, "2025-01-03", "completed"],
                   [6, 4, 2, 1, "80.00", "03/01/2025", "completed"],
                   [7, 1, 2, 1, "20.00", "2025-02-01", "completed"]],
        "returns": [[1, 1, "$100.00", "2025-01-09"]],
        "regions": [["DE", "EMEA"], ["US", "Americas"]],
    }
    columns = {t: [list(c) for c in cols] for t, cols in _SCHEMA.items()}
    columns["orders"][4][1] = columns["returns"][2][1] = "TEXT"
    return {"tables": {t: {"columns": columns[t], "rows": rows[t]} for t in _SCHEMA},
            "max_rows": 10}


# Worked out by hand from tiny_state (see the comments for the arithmetic).
HAND = [
    ({"kind": "region_revenue", "region": "EMEA", "net": False}, 1270.50),  # 1000+250.50+20
    ({"kind": "region_revenue", "region": "EMEA", "net": True}, 1170.50),   # less the $100 return
    ({"kind": "region_revenue", "region": "Americas", "net": False}, 300.0),
    ({"kind": "distinct_customers", "category": "garden"}, 2.0),            # Ann (twice) and Cat
    ({"kind": "distinct_customers", "category": "toys"}, 2.0),              # NULL-amount order out
    ({"kind": "mom_growth", "month": "2025-02", "prev": "2025-01", "net": False}, -47.18),
    ({"kind": "mom_growth", "month": "2025-02", "prev": "2025-01", "net": True}, -41.79),
    ({"kind": "top_customers", "k": 2, "net": True}, ["ann@x.test", "bob@x.test"]),
]


@pytest.mark.parametrize(("spec", "answer"), HAND)
def test_expected_answers_match_hand_computation(spec: dict[str, Any], answer: Any) -> None:
    assert _evaluate(_facts(tiny_state()), spec) == pytest.approx(answer, abs=0.005)


def test_careless_readings_differ_from_the_truth() -> None:
    facts = _facts(tiny_state())
    # Exact-match country codes miss both lower-case "de" and " DE": EMEA gets nothing.
    assert _evaluate(facts, HAND[0][0], "countries") == 0.0
    # Counting customer ids counts Ann twice for garden: ids 1, 3, 4.
    assert _evaluate(facts, HAND[3][0], "merge") == 3.0
    # CAST reads "$1,000.00" as 0, so only 250.50 + 20.00 remain.
    assert _evaluate(facts, HAND[0][0], "amounts") == pytest.approx(270.50)


def _goal(spec: dict[str, Any], expected: Any) -> dict[str, Any]:
    tol = 0.0 if spec["kind"] == "distinct_customers" else 0.011
    return {**spec, "expected": expected, "traps": [], "tolerance": tol}


def test_verify_accepts_within_tolerance_and_rejects_outside() -> None:
    goal = _goal(*HAND[1])
    assert FAMILY.verify({}, {"value": 1170.50, "emails": None}, goal).reward == 1.0
    assert FAMILY.verify({}, {"value": 1170.509, "emails": None}, goal).reward == 1.0
    assert FAMILY.verify({}, {"value": 1170.52, "emails": None}, goal).reward == 0.0
    assert FAMILY.verify({}, {"value": None, "emails": None}, goal).reward == 0.0
    assert FAMILY.verify({}, None, goal).reward == 0.0
    count = _goal(*HAND[3])
    assert FAMILY.verify({}, {"value": 3.0, "emails": None}, count).reward == 0.0


def test_verify_ranking_is_ordered_but_lenient_on_case_and_spaces() -> None:
    goal = _goal(*HAND[-1])
    assert FAMILY.verify({}, {"value": None, "emails": [" ANN@x.test", "bob@x.test"]},
                         goal).reward == 1.0
    assert FAMILY.verify({}, {"value": None, "emails": ["bob@x.test", "ann@x.test"]},
                         goal).reward == 0.0
    assert FAMILY.verify({}, {"value": None, "emails": ["ann@x.test"]}, goal).reward == 0.0


def test_sqlite_agrees_with_python_on_generated_tasks() -> None:
    """SQLite evaluating the reference query is an oracle independent of the Python truth."""
    checked = 0
    for variant in FAMILY.variants:
        for seed in range(6):
            built = build_environment(EnvPlan(0, FAMILY.name, variant.name, seed), "t")
            for cand in built.candidates:
                payload = cand.task.payload
                query = next(c for c in payload.reference if c.name == "run_sql")
                rows = Episode(payload).call("run_sql", orjson.loads(query.arguments))["rows"]
                g = payload.goal
                if g["kind"] == "top_customers":
                    assert [r[0] for r in rows] == g["expected"]
                elif g["kind"] == "mom_growth":
                    (_, prev), (_, cur) = rows
                    assert (cur - prev) * 100 / prev == pytest.approx(g["expected"], abs=0.006)
                else:
                    assert rows[0][0] == pytest.approx(g["expected"], abs=0.006)
                checked += 1
    assert checked >= 80


def test_a_naive_sum_in_sqlite_falls_into_the_text_amount_trap() -> None:
    query = "SELECT SUM(amount) FROM orders WHERE order_id <= 2"
    out = run_sql.call(tiny_state(), {"query": query})
    assert out["rows"] == [[250.5]]  # "$1,000.00" counts as 0


@pytest.mark.parametrize("query", [
    "DELETE FROM orders", "UPDATE orders SET amount = 0", "CREATE TABLE t(x)",
    "ATTACH ':memory:' AS other", "PRAGMA writable_schema = 1", "SELECT 1; DELETE FROM orders",
    "WITH RECURSIVE r(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM r) SELECT count(*) FROM r",
    "SELECT * FROM no_such_table",
])
def test_hostile_or_bad_sql_is_a_tool_error_and_changes_nothing(query: str) -> None:
    state = tiny_state()
    before = copy.deepcopy(state)
    with pytest.raises(ToolError):
        run_sql.call(state, {"query": query})
    assert state == before


def test_row_cap_truncates() -> None:
    state = tiny_state()
    state["max_rows"] = 3
    out = run_sql.call(state, {"query": "SELECT order_id FROM orders ORDER BY order_id"})
    assert out["rows"] == [[1], [2], [3]] and out["truncated"] is True


def test_bad_arguments_of_other_tools_are_tool_errors() -> None:
    state = tiny_state()
    with pytest.raises(ToolError, match="no table"):
        describe_table.call(state, {"table": "sales"})
    with pytest.raises(ToolError, match="between 1 and 20"):
        sample_rows.call(state, {"table": "orders", "n": 0})
    with pytest.raises(ToolError):
        sample_rows.call(state, {"table": "orders", "n": "3"})  # strict: no "3" for 3
    assert state == tiny_state()
