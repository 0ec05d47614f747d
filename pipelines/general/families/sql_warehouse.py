"""Analytical SQL over a messy sales warehouse.

The state holds a small warehouse (customers, products, orders, returns, regions) whose data
is messy the way real exports are: country codes in mixed case with stray spaces, the same
customer entered twice with a differently-cased email and trailing spaces, NULL amounts, and
in some variants amounts stored as text ("$1,234.50") and dates in two formats. The agent
explores it with read-only SQL (an in-memory SQLite database built from the state) and
submits a number or a ranked list of emails.

Answer-graded: the expected answer is computed at generation time in plain Python over the
normalised state (never in SQL) and compared with a tolerance of half a cent.
"""

from __future__ import annotations

import random
import sqlite3
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
from pipelines.general.names import FIRST_NAMES, LAST_NAMES
from pipelines.general.tools import State, tool

_REGIONS = {"DE": "EMEA", "FR": "EMEA", "GB": "EMEA", "US": "Americas", "BR": "Americas",
            "CA": "Americas", "JP": "APAC", "IN": "APAC", "AU": "APAC"}
_FIRST = list(FIRST_NAMES[:13])
_LAST = list(LAST_NAMES[:10])
_CATEGORIES = ["audio", "garden", "kitchen", "office", "toys"]
_MONTHS = ["January", "February", "March", "April", "May", "June"]
_SCHEMA = {
    "customers": [("customer_id", "INTEGER"), ("name", "TEXT"), ("email", "TEXT"),
                  ("country", "TEXT")],
    "products": [("product_id", "INTEGER"), ("name", "TEXT"), ("category", "TEXT"),
                 ("unit_price", "REAL")],
    "orders": [("order_id", "INTEGER"), ("customer_id", "INTEGER"), ("product_id", "INTEGER"),
               ("qty", "INTEGER"), ("amount", "REAL"), ("order_date", "TEXT"), ("status", "TEXT")],
    "returns": [("return_id", "INTEGER"), ("order_id", "INTEGER"), ("amount", "REAL"),
                ("return_date", "TEXT")],
    "regions": [("country_code", "TEXT"), ("region", "TEXT")],
}
# Enough for any honest query on tens of rows; stops runaway recursive CTEs.
_MAX_VM_STEPS = 2_000_000


class WarehouseConfig(FamilyConfig):
    customers: int = Field(10, ge=4, le=30)
    duplicates: int = Field(3, ge=0, le=8)
    """Extra customer rows re-entering an existing customer (email case/spaces differ)."""
    products: int = Field(6, ge=3, le=20)
    orders: int = Field(40, ge=12, le=80)
    returns: int = Field(6, ge=0, le=20)
    null_rate: float = Field(0.08, ge=0.0, le=0.3)
    text_amounts: bool = False
    """Store money as text such as "$1,234.50" (SQLite's CAST reads that as 0 or 1)."""
    mixed_dates: bool = False
    """Store some dates as DD/MM/YYYY next to YYYY-MM-DD."""
    max_rows: int = Field(30, ge=5, le=200)


class WarehouseAnswer(Answer):
    value: float | None = Field(None, description="the number asked for, when a number is asked")
    emails: list[str] | None = Field(None, description="the ranked emails, when a list is asked")


# ---- messy formatting and its normalisation ----------------------------------------------


def _money(cents: int, as_text: bool, rng: random.Random) -> float | str:
    if not as_text:
        return cents / 100
    text = f"{cents / 100:,.2f}"
    return "$" + text if rng.random() < 0.4 else text


def _cents(raw: float | str | None) -> int | None:
    if raw is None:
        return None
    if isinstance(raw, str):
        raw = raw.replace("$", "").replace(",", "")
    return round(float(raw) * 100)


def _naive_cents(raw: float | str | None) -> int | None:
    """What CAST(amount AS REAL) gives: the numeric prefix only ("1,234.50" -> 1, "$5" -> 0)."""
    if raw is None or not isinstance(raw, str):
        return _cents(raw)
    digits = ""
    for ch in raw.strip():
        if not (ch.isdigit() or ch == "."):
            break
        digits += ch
    return round(float(digits) * 100) if digits.strip(".") else 0


def _month(date: str) -> str:
    return f"{date[6:10]}-{date[3:5]}" if "/" in date else date[:7]


def _messy_code(code: str, rng: random.Random) -> str:
    return rng.choice([code, code, code.lower(), code.title(), f" {code}", f"{code} "])


# ---- tools -------------------------------------------------------------------------------


def _table(state: State, table: str) -> dict[str, Any]:
    tables = state["tables"]
    if table not in tables:
        raise ToolError(f"no table {table!r}; tables: {', '.join(tables)}")
    return tables[table]


@tool()
def list_tables(state: State) -> list[dict[str, Any]]:
    """List the warehouse tables with their row counts."""
    return [{"table": name, "rows": len(t["rows"])} for name, t in state["tables"].items()]


@tool()
def describe_table(state: State, table: str) -> list[dict[str, str]]:
    """The columns of a table with their declared SQL types.

    Args:
        table: a table name from list_tables, e.g. "orders".
    """
    return [{"column": c, "type": t} for c, t in _table(state, table)["columns"]]


@tool()
def sample_rows(state: State, table: str, n: int = 5) -> list[dict[str, Any]]:
    """The first `n` rows of a table, as column -> value objects.

    Args:
        table: a table name, e.g. "customers".
        n: how many rows (1 to 20).
    """
    if not 1 <= n <= 20:
        raise ToolError("n must be between 1 and 20")
    t = _table(state, table)
    names = [c for c, _ in t["columns"]]
    return [dict(zip(names, row, strict=True)) for row in t["rows"][:n]]


@tool()
def column_profile(state: State, table: str, column: str) -> dict[str, Any]:
    """Profile one column: NULL count and its 15 most frequent distinct values (exact text).

    Args:
        table: a table name.
        column: a column of that table.
    """
    t = _table(state, table)
    names = [c for c, _ in t["columns"]]
    if column not in names:
        raise ToolError(f"table {table} has no column {column!r}; columns: {', '.join(names)}")
    i = names.index(column)
    counts: dict[str, int] = {}
    nulls = 0
    for row in t["rows"]:
        if row[i] is None:
            nulls += 1
        else:
            counts[repr(row[i])] = counts.get(repr(row[i]), 0) + 1
    top = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:15]
    return {"nulls": nulls, "distinct": len(counts), "top_values": [{"value": v, "count": n}
                                                                   for v, n in top]}


def _allow_reads(action: int, *_: Any) -> int:
    read_only = (sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION,
                 sqlite3.SQLITE_RECURSIVE)
    return sqlite3.SQLITE_OK if action in read_only else sqlite3.SQLITE_DENY


def _connect(state: State) -> sqlite3.Connection:
    db = sqlite3.connect(":memory:")
    for name, t in state["tables"].items():
        cols = ", ".join(f"{c} {ty}" for c, ty in t["columns"])
        db.execute(f"CREATE TABLE {name} ({cols})")
        marks = ", ".join("?" * len(t["columns"]))
        db.executemany(f"INSERT INTO {name} VALUES ({marks})", t["rows"])
    # The agent's SQL may only read: writes, ATTACH and PRAGMA are denied by the authorizer.
    db.set_authorizer(_allow_reads)
    db.set_progress_handler(_Budget().tick, 1000)
    return db


class _Budget:
    def __init__(self) -> None:
        self.ticks = 0

    def tick(self) -> int:
        self.ticks += 1
        return int(self.ticks * 1000 > _MAX_VM_STEPS)


@tool()
def run_sql(state: State, query: str) -> dict[str, Any]:
    """Run one read-only SQLite query on the warehouse and return its rows.

    Only SELECT (and WITH ... SELECT) queries are allowed. At most the state's row cap of rows
    come back; `truncated` says when more matched.

    Args:
        query: a single SQLite SELECT statement.
    """
    db = _connect(state)
    try:
        cursor = db.execute(query)
        cap = state["max_rows"]
        rows = cursor.fetchmany(cap + 1)
        columns = [d[0] for d in cursor.description or []]
    except sqlite3.DatabaseError as e:
        hint = " (queries are read-only and limited in cost)" if "not authorized" in str(e) \
            or "interrupted" in str(e) else ""
        raise ToolError(f"SQL error: {e}{hint}") from None
    except sqlite3.ProgrammingError as e:
        raise ToolError(f"SQL error: {e}") from None
    finally:
        db.close()
    return {"columns": columns, "rows": [list(r) for r in rows[:cap]],
            "truncated": len(rows) > cap}


# ---- ground truth in plain Python --------------------------------------------------------


def _facts(state: State) -> list[dict[str, Any]]:
    """One record per order with every messy field normalised, next to its naive reading."""
    t = state["tables"]
    customers = {r[0]: r for r in t["customers"]["rows"]}
    regions = {r[0]: r[1] for r in t["regions"]["rows"]}
    category = {r[0]: r[2] for r in t["products"]["rows"]}
    returned: dict[int, tuple[int, int]] = {}
    for _, order_id, amount, _ in t["returns"]["rows"]:
        good, naive = returned.get(order_id, (0, 0))
        returned[order_id] = (good + (_cents(amount) or 0), naive + (_naive_cents(amount) or 0))
    facts = []
    for order_id, cid, pid, _, amount, date, status in t["orders"]["rows"]:
        _, _, email, country = customers[cid]
        ret = returned.get(order_id, (0, 0))
        facts.append({
            "customer_id": cid, "person": email.strip().lower(),
            "region": regions.get(country.strip().upper()) if country else None,
            "naive_region": regions.get(country) if country else None,
            "category": category[pid], "status": status,
            "cents": _cents(amount), "naive_cents": _naive_cents(amount),
            "returned": ret[0], "naive_returned": ret[1],
            "month": _month(date), "naive_month": date[:7] if "-" in date else None,
        })
    return facts


def _evaluate(facts: list[dict[str, Any]], spec: Mapping[str, Any], trap: str = "") -> Any:
    """The answer to `spec`; `trap` names one rule to get wrong (a careless agent's answer)."""
    cents = "naive_cents" if trap == "amounts" else "cents"
    region = "naive_region" if trap == "countries" else "region"
    month = "naive_month" if trap == "dates" else "month"
    net = spec.get("net", False) and trap != "returns"
    rows = [f for f in facts if f[cents] is not None
            and (f["status"] == "completed" or trap == "status")]

    def value(f: dict[str, Any]) -> int:
        return f[cents] - (f["naive_returned" if trap == "amounts" else "returned"] if net else 0)

    kind = spec["kind"]
    if kind == "region_revenue":
        return sum(value(f) for f in rows if f[region] == spec["region"]) / 100
    if kind == "distinct_customers":
        key = "customer_id" if trap == "merge" else "person"
        return float(len({f[key] for f in rows if f["category"] == spec["category"]}))
    if kind == "mom_growth":
        prev = sum(value(f) for f in rows if f[month] == spec["prev"])
        cur = sum(value(f) for f in rows if f[month] == spec["month"])
        return None if prev <= 0 else round((cur - prev) * 100 / prev, 2)
    totals: dict[Any, int] = {}
    key = "customer_id" if trap == "merge" else "person"
    for f in rows:
        totals[f[key]] = totals.get(f[key], 0) + value(f)
    ranked = sorted(totals.items(), key=lambda kv: -kv[1])
    k = spec["k"]
    if len(ranked) <= k or any(ranked[i][1] - ranked[i + 1][1] < 100 for i in range(k)):
        return None  # ties or near-ties at the top would make the ranking ambiguous
    if trap == "merge":
        email = {f["customer_id"]: f["person"] for f in facts}
        return [email[c] for c, _ in ranked[:k]]
    return [p for p, _ in ranked[:k]]


# ---- reference SQL (an independent way to the same numbers, used by `solve`) -------------

_AMOUNT = "CAST(REPLACE(REPLACE({}, '$', ''), ',', '') AS REAL)"
_MONTH_SQL = ("(CASE WHEN o.order_date LIKE '%/%' THEN substr(o.order_date, 7, 4) || '-' || "
              "substr(o.order_date, 4, 2) ELSE substr(o.order_date, 1, 7) END)")
_BASE = ("FROM orders o JOIN customers c ON c.customer_id = o.customer_id "
         "JOIN products p ON p.product_id = o.product_id "
         "LEFT JOIN regions g ON g.country_code = UPPER(TRIM(c.country)) "
         "LEFT JOIN (SELECT order_id, SUM(" + _AMOUNT.format("amount") + ") AS back "
         "FROM returns GROUP BY order_id) r ON r.order_id = o.order_id "
         "WHERE o.status = 'completed' AND o.amount IS NOT NULL")


def _reference_sql(spec: Mapping[str, Any]) -> str:
    value = _AMOUNT.format("o.amount") + (" - COALESCE(r.back, 0)" if spec.get("net") else "")
    kind = spec["kind"]
    if kind == "region_revenue":
        return f"SELECT ROUND(SUM({value}), 2) {_BASE} AND g.region = '{spec['region']}'"
    if kind == "distinct_customers":
        return (f"SELECT COUNT(DISTINCT LOWER(TRIM(c.email))) {_BASE} "
                f"AND p.category = '{spec['category']}'")
    if kind == "mom_growth":
        return (f"SELECT {_MONTH_SQL} AS month, ROUND(SUM({value}), 2) {_BASE} "
                f"AND {_MONTH_SQL} IN ('{spec['prev']}', '{spec['month']}') GROUP BY month "
                "ORDER BY month")
    # The alias must not be `email`: SQLite would group by the raw column of that name.
    return (f"SELECT LOWER(TRIM(c.email)) AS person, ROUND(SUM({value}), 2) AS total {_BASE} "
            f"GROUP BY person ORDER BY total DESC LIMIT {spec['k']}")


# ---- the family --------------------------------------------------------------------------

_TRAPS = {  # kind -> rules a careless query gets wrong, in order of preference
    "region_revenue": ("countries", "amounts", "returns", "status"),
    "distinct_customers": ("merge", "status"),
    "mom_growth": ("dates", "amounts", "returns", "status"),
    "top_customers": ("merge", "amounts", "returns", "status"),
}


def _differs(a: Any, b: Any) -> bool:
    if isinstance(b, list) or a is None:
        return a != b
    return abs(a - b) > 0.02


@register_family
class SqlWarehouse(Family[WarehouseConfig]):
    name = "sql_warehouse"
    summary = "Answer analytical questions with read-only SQL over a messy sales warehouse."
    config_model = WarehouseConfig
    answer_model = WarehouseAnswer
    tools = (list_tables, describe_table, sample_rows, column_profile, run_sql)
    variants = (
        Variant("schema-first", ("list_tables", "describe_table", "run_sql"),
                ("country_case", "dedupe")),
        Variant("sql-only", ("run_sql",), ("country_case", "dedupe")),
        Variant("text-amounts", ("list_tables", "sample_rows", "run_sql"),
                ("country_case", "dedupe", "text_amounts"), {"text_amounts": True}),
        Variant("two-date-formats", ("describe_table", "column_profile", "run_sql"),
                ("country_case", "dedupe", "date_formats"), {"mixed_dates": True}),
        Variant("all-mess", ("list_tables", "describe_table", "sample_rows", "column_profile",
                             "run_sql"),
                ("country_case", "dedupe", "text_amounts", "date_formats"),
                {"text_amounts": True, "mixed_dates": True, "customers": 14, "duplicates": 5,
                 "orders": 56, "returns": 9}),
        Variant("profile-and-sample", ("sample_rows", "column_profile", "run_sql"),
                ("country_case", "dedupe", "nulls"), {"null_rate": 0.2, "duplicates": 5}),
    )

    def generate_state(self, rng: random.Random, config: WarehouseConfig) -> State:
        codes = rng.sample(sorted(_REGIONS), 6)
        people = rng.sample([(f, la) for f in _FIRST for la in _LAST], config.customers)
        ids = rng.sample(range(100, 1000), config.customers + config.duplicates)
        customers: list[list[Any]] = []
        for i, (first, last) in enumerate(people):
            code = _messy_code(rng.choice(codes), rng)
            country = None if rng.random() < config.null_rate else code
            email = f"{first.lower()}.{last.lower()}@mail.test"
            customers.append([ids[i], f"{first} {last}", email, country])
        for j, src in enumerate(rng.sample(customers, config.duplicates)):
            email = src[2].upper() if rng.random() < 0.5 else src[2].title()
            email += " " * rng.randint(0, 2)
            country = src[3] and _messy_code(src[3].strip().upper(), rng)
            customers.append([ids[config.customers + j], src[1] + " ", email, country])
        rng.shuffle(customers)
        products: list[list[Any]] = [
            [i + 1, f"{cat} item {i + 1}", cat, rng.randrange(1000, 45_000, 5) / 100]
            for i, cat in enumerate(rng.choices(_CATEGORIES, k=config.products))]
        orders = []
        for order_id in range(1, config.orders + 1):
            product = rng.choice(products)
            qty = rng.randint(1, 5)
            month, day = rng.randint(1, 6), rng.randint(1, 28)
            date = (f"{day:02d}/{month:02d}/2025" if config.mixed_dates and rng.random() < 0.35
                    else f"2025-{month:02d}-{day:02d}")
            cents = qty * round(product[3] * 100)
            amount = None if rng.random() < config.null_rate else _money(cents,
                                                                         config.text_amounts, rng)
            status = rng.choices(["completed", "cancelled", "pending"], [7, 2, 1])[0]
            buyer = rng.choice(customers)[0]
            orders.append([order_id, buyer, product[0], qty, amount, date, status])
        returnable = [o for o in orders if o[6] == "completed" and o[4] is not None]
        returns = []
        for i, o in enumerate(rng.sample(returnable, min(config.returns, len(returnable)))):
            cents = _cents(o[4]) or 0
            back = cents if rng.random() < 0.5 else cents // o[3]
            returns.append([i + 1, o[0], _money(back, config.text_amounts, rng), o[5]])
        schema = {t: [list(c) for c in cols] for t, cols in _SCHEMA.items()}
        if config.text_amounts:
            schema["orders"][4][1] = schema["returns"][2][1] = "TEXT"
        rows = {"customers": customers, "products": products, "orders": orders,
                "returns": returns, "regions": [[c, r] for c, r in sorted(_REGIONS.items())]}
        return {"tables": {t: {"columns": schema[t], "rows": rows[t]} for t in _SCHEMA},
                "max_rows": config.max_rows}

    def generate_task(self, rng: random.Random, state: State, config: WarehouseConfig,
                      variant: Variant, level: int) -> TaskDraft | None:
        facts = _facts(state)
        kinds = [["region_revenue", "distinct_customers"],
                 ["region_revenue", "mom_growth", "distinct_customers"],
                 ["top_customers", "mom_growth"]][level]
        for _ in range(10):
            spec = _draw_spec(rng, rng.choice(kinds), level)
            expected = _evaluate(facts, spec)
            if expected is None or expected == 0:
                continue
            traps = [t for t in _TRAPS[spec["kind"]]
                     if (t != "returns" or spec.get("net"))
                     and _differs(_evaluate(facts, spec, t), expected)]
            if not traps:
                continue
            dupes = len(state["tables"]["customers"]["rows"]) - len({f["person"] for f in facts})
            return TaskDraft(
                instruction=_instruction(spec),
                goal={**spec, "expected": expected, "traps": traps,
                      "tolerance": 0.0 if spec["kind"] == "distinct_customers" else 0.011},
                knobs={"steps": 3 + level, "constraints": len(traps), "distractors": dupes},
            )
        return None

    def solve(self, state: State, draft: TaskDraft, variant: Variant) -> list[Call]:
        g = draft.goal
        calls = [Call("list_tables")] if "list_tables" in variant.tools else []
        if "describe_table" in variant.tools:
            calls.append(Call("describe_table", {"table": "orders"}))
        calls.append(Call("run_sql", {"query": _reference_sql(g)}))
        return [*calls, Call("submit", _submission(g, g["expected"]))]

    def verify(self, final_state: State, answer: Mapping[str, Any] | None,
               goal: Mapping[str, Any]) -> Verdict:
        if answer is None:
            return Verdict(reward=0.0, reason="no answer was submitted")
        if goal["kind"] == "top_customers":
            got = [e.strip().lower() for e in answer.get("emails") or []]
            ok = got == goal["expected"]
            reason = f"ranking {got} vs expected {goal['expected']}"
        else:
            value = answer.get("value")
            ok = value is not None and abs(value - goal["expected"]) <= goal["tolerance"]
            reason = f"value {value} vs expected {goal['expected']} (±{goal['tolerance']})"
        return Verdict(reward=float(ok), components={"correct": float(ok)},
                       reason=("correct: " if ok else "wrong: ") + reason)

    def perturb(self, rng: random.Random, state: State, draft: TaskDraft,
                reference: list[Call], variant: Variant) -> dict[str, list[Call]]:
        g = draft.goal
        facts = _facts(state)
        careless = _evaluate(facts, g, g["traps"][0])
        if g["kind"] == "top_customers":
            wrong: Any = [g["expected"][1], g["expected"][0], *g["expected"][2:]]
        elif g["kind"] == "region_revenue":
            others = [r for r in sorted(set(_REGIONS.values())) if r != g["region"]]
            values = [_evaluate(facts, {**g, "region": r}) for r in others]
            wrong = next((v for v in values if _differs(v, g["expected"])), g["expected"] + 1)
        else:
            wrong = g["expected"] + 1
        # The reference's SQL is left out: these runs grade only the submitted answer.
        head = [c for c in reference[:-1] if c.name != "run_sql"]
        return {"constraint_broken": [*head, Call("submit", _submission(g, careless))],
                "wrong_value": [*head, Call("submit", _submission(g, wrong))]}


def _draw_spec(rng: random.Random, kind: str, level: int) -> dict[str, Any]:
    if kind == "region_revenue":
        return {"kind": kind, "region": rng.choice(sorted(set(_REGIONS.values()))),
                "net": level >= 1}
    if kind == "distinct_customers":
        return {"kind": kind, "category": rng.choice(_CATEGORIES)}
    if kind == "mom_growth":
        m = rng.randint(2, 6)
        return {"kind": kind, "month": f"2025-{m:02d}", "prev": f"2025-{m - 1:02d}",
                "net": level == 2}
    return {"kind": kind, "k": 3, "net": True}


def _submission(goal: Mapping[str, Any], value: Any) -> dict[str, Any]:
    return {"emails": value} if goal["kind"] == "top_customers" else {"value": value}


def _instruction(spec: Mapping[str, Any]) -> str:
    rules = ["Revenue is the amount of orders whose status is 'completed'; orders with a NULL "
             "amount are left out."]
    if spec.get("net"):
        rules.append("Net revenue subtracts, for each such order, the amounts refunded in the "
                     "returns table.")
    money = "net revenue" if spec.get("net") else "revenue"
    kind = spec["kind"]
    if kind == "region_revenue":
        rules.append("A customer's region is the region the regions table gives for their "
                     "country code; customers without a country belong to no region.")
        ask = (f"What is the total {money} from customers in the {spec['region']} region? "
               "Submit it as `value` in dollars, rounded to cents.")
    elif kind == "distinct_customers":
        ask = (f"How many distinct customers have at least one completed order of a product in "
               f"category '{spec['category']}'? Submit the count as `value`.")
    elif kind == "mom_growth":
        cur, prev = _MONTHS[int(spec["month"][5:]) - 1], _MONTHS[int(spec["prev"][5:]) - 1]
        ask = (f"By what percentage did {money} change from {prev} 2025 to {cur} 2025 (by "
               "order date)? Submit `value` as a percentage rounded to 2 decimals, e.g. -12.5 "
               "for a 12.5% drop.")
    else:
        ask = (f"Who are the top {spec['k']} customers by {money}? Submit `emails`: their email "
               "addresses in lower case without surrounding spaces, highest first.")
    if kind in ("distinct_customers", "top_customers"):
        rules.append("Customer rows whose emails are equal ignoring letter case and surrounding "
                     "spaces are the same customer.")
    return "Using the sales warehouse: " + ask + " Definitions: " + " ".join(rules)
