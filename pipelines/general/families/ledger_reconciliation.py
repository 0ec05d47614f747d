"""Bank reconciliation: find the planted discrepancies between a ledger and a bank statement.

The state is one month of an internal ledger (invoice receipts and supplier payments, some in
foreign currency) and the bank statement for the same account. Entries match by reference,
which bank descriptions may spell loosely ("INV-1042", "inv 1042"). Planted problems: ledger
entries missing from the bank, bank lines missing from the ledger, duplicated ledger entries,
amount typos and dates beyond the tolerance; distractors that are NOT problems: dates within
tolerance, payments split over several bank lines, currency conversion, bank fees.

Answer-graded: the agent submits the discrepant ids per kind; the reward is 1 only when every
asked list equals the truth exactly (per-kind Jaccard scores are reported as components).
The truth is computed by a rule-based reconciler over the state.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping
from datetime import date, timedelta
from functools import lru_cache
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

KINDS = ("duplicate", "missing_in_bank", "amount_mismatch", "date_mismatch", "missing_in_ledger")
_FEE_PREFIX = "BANK FEE"
_MONTH_START = date(2025, 3, 1)
_PARTIES = ["Acme GmbH", "Borealis SA", "Cobalt Ltd", "Dunmore & Co", "Elbe Logistik",
            "Fjord AS", "Granite BV", "Helix Srl", "Iris Oy", "Juniper Inc"]
_RATES = {"USD": 0.9213, "GBP": 1.1675, "CHF": 1.0431}
_REF = re.compile(r"\b(INV|PO)[\s\-/]*(\d{4})\b", re.IGNORECASE)


class ReconConfig(FamilyConfig):
    entries: int = Field(16, ge=6, le=36)
    """Ledger entries that reconcile cleanly (before problems are planted)."""
    per_kind: int = Field(2, ge=1, le=4)
    """Planted problems of each kind."""
    date_tolerance_days: int = Field(3, ge=1, le=10)
    messy_refs: bool = False
    fees: int = Field(0, ge=0, le=6)
    split_payments: int = Field(0, ge=0, le=5)
    fx_share: float = Field(0.0, ge=0.0, le=0.5)
    page_size: int = Field(15, ge=5, le=50)


class ReconAnswer(Answer):
    duplicate: list[str] = Field(default_factory=list, description="later duplicate ledger ids")
    missing_in_bank: list[str] = Field(default_factory=list,
                                       description="ledger ids with no bank line")
    amount_mismatch: list[str] = Field(default_factory=list,
                                       description="ledger ids whose bank amount differs")
    date_mismatch: list[str] = Field(default_factory=list,
                                     description="ledger ids whose bank date is out of tolerance")
    missing_in_ledger: list[str] = Field(default_factory=list,
                                         description="bank line ids with no ledger entry")


# ---- the rules (shared by tools and the reconciler) ----------------------------------------


@lru_cache(maxsize=8192)
def _norm_ref(text: str) -> str | None:
    m = _REF.search(text)
    return f"{m.group(1).upper()}-{m.group(2)}" if m else None


@lru_cache(maxsize=1024)
def _day(iso: str) -> int:
    return date.fromisoformat(iso).toordinal()


def _in_eur(entry: Mapping[str, Any], rates: Mapping[str, float]) -> int:
    if entry["currency"] == "EUR":
        return entry["amount_cents"]
    return round(entry["amount_cents"] * rates[entry["currency"]])


def _reconcile(state: State) -> dict[str, list[str]]:
    """Every discrepancy of the state, by kind, following the rules stated to the agent."""
    tol = state["policy"]["date_tolerance_days"]
    out: dict[str, list[str]] = {k: [] for k in KINDS}
    lines_by_ref: dict[str | None, list[dict[str, Any]]] = {}
    for line in state["bank"]:
        if not line["description"].startswith(_FEE_PREFIX):
            lines_by_ref.setdefault(_norm_ref(line["description"]), []).append(line)
    seen: set[str | None] = set()
    for entry in sorted(state["ledger"], key=lambda e: e["id"]):
        ref = _norm_ref(entry["ref"])
        lines = lines_by_ref.get(ref, [])
        if ref in seen:
            out["duplicate"].append(entry["id"])
        elif not lines:
            out["missing_in_bank"].append(entry["id"])
        elif abs(sum(x["amount_cents"] for x in lines) - _in_eur(entry, state["fx_rates"])) > 1:
            out["amount_mismatch"].append(entry["id"])
        elif max(abs(_day(x["date"]) - _day(entry["date"])) for x in lines) > tol:
            out["date_mismatch"].append(entry["id"])
        seen.add(ref)
    for ref, lines in lines_by_ref.items():
        if ref not in seen:
            out["missing_in_ledger"] += [x["id"] for x in lines]
    return {k: sorted(v) for k, v in out.items()}


# ---- tools ---------------------------------------------------------------------------------


def _check_date(value: str | None, name: str) -> str | None:
    if value is not None:
        try:
            date.fromisoformat(value)
        except ValueError:
            raise ToolError(f"{name} must be a date like 2025-03-14, got {value!r}") from None
    return value


def _page(state: State, rows: list[dict[str, Any]], page: int, start: str | None,
          end: str | None) -> dict[str, Any]:
    start, end = _check_date(start, "start_date"), _check_date(end, "end_date")
    rows = [r for r in rows if (start is None or r["date"] >= start)
            and (end is None or r["date"] <= end)]
    size = state["page_size"]
    pages = max(1, -(-len(rows) // size))
    if not 1 <= page <= pages:
        raise ToolError(f"page must be between 1 and {pages}")
    return {"page": page, "pages": pages, "items": rows[(page - 1) * size: page * size]}


@tool()
def list_ledger(state: State, page: int = 1, start_date: str | None = None,
                end_date: str | None = None) -> dict[str, Any]:
    """List ledger entries (id, date, counterparty, ref, amount_cents, currency), a page at a time.

    Amounts are signed: receipts positive, payments negative, in the entry's own currency.

    Args:
        page: page number, from 1; the answer says how many pages there are.
        start_date: only entries dated on or after this day (YYYY-MM-DD).
        end_date: only entries dated on or before this day (YYYY-MM-DD).
    """
    return _page(state, state["ledger"], page, start_date, end_date)


@tool()
def list_bank(state: State, page: int = 1, start_date: str | None = None,
              end_date: str | None = None) -> dict[str, Any]:
    """List bank statement lines (id, date, description, amount_cents in EUR), a page at a time.

    Args:
        page: page number, from 1; the answer says how many pages there are.
        start_date: only lines dated on or after this day (YYYY-MM-DD).
        end_date: only lines dated on or before this day (YYYY-MM-DD).
    """
    return _page(state, state["bank"], page, start_date, end_date)


@tool()
def get_ledger_entry(state: State, entry_id: str) -> dict[str, Any]:
    """One ledger entry by id.

    Args:
        entry_id: a ledger id such as "L007".
    """
    return find_record(
        state["ledger"], entry_id, f"no ledger entry {entry_id!r}; ledger ids look like L001"
    )


@tool()
def search_bank(state: State, text: str) -> list[dict[str, Any]]:
    """Bank lines whose description contains `text`, ignoring letter case.

    Args:
        text: at least 2 characters, e.g. part of a counterparty name or a reference number.
    """
    if len(text.strip()) < 2:
        raise ToolError("search text must have at least 2 characters")
    needle = text.strip().lower()
    return [x for x in state["bank"] if needle in x["description"].lower()]


@tool()
def find_by_reference(state: State, ref: str) -> dict[str, Any]:
    """Ledger entries and bank lines carrying one reference, however the bank spelled it.

    Args:
        ref: an invoice or purchase-order reference such as "INV-1042" or "PO-3307".
    """
    key = _norm_ref(ref)
    if key is None:
        raise ToolError(f"{ref!r} is not a reference; they look like INV-1042 or PO-3307")
    return {"ledger": [e for e in state["ledger"] if _norm_ref(e["ref"]) == key],
            "bank": [x for x in state["bank"] if _norm_ref(x["description"]) == key]}


@tool()
def get_policy(state: State) -> dict[str, Any]:
    """The reconciliation policy: date tolerance, amount tolerance and the bank-fee prefix."""
    return {**state["policy"], "amount_tolerance_cents": 1, "bank_fee_prefix": _FEE_PREFIX}


@tool()
def fx_rates(state: State) -> dict[str, float]:
    """Month-end exchange rates: EUR per one unit of each foreign currency."""
    return state["fx_rates"]


# ---- generation ----------------------------------------------------------------------------


def _iso(day: int) -> str:
    return (_MONTH_START + timedelta(days=day - 1)).isoformat()


def _spell(ref: str, messy: bool, rng: random.Random) -> str:
    if not messy:
        return ref
    prefix, number = ref.split("-")
    return rng.choice([ref, f"{prefix.lower()} {number}", f"{prefix}{number}",
                       f"{prefix.title()}/{number}", f"{prefix} - {number}"])


def _typo(cents: int, rng: random.Random) -> int:
    """A keying error of at least 9 cents: two adjacent digits swapped, else a digit off."""
    digits = str(abs(cents))
    swaps = [i for i in range(len(digits) - 1) if digits[i] != digits[i + 1]]
    if swaps:
        i = rng.choice(swaps)
        digits = digits[:i] + digits[i + 1] + digits[i] + digits[i + 2:]
        return int(digits) * (1 if cents > 0 else -1)
    return cents + rng.choice([-900, 900])


def _plant(rng: random.Random, config: ReconConfig, rates: Mapping[str, float]
           ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Ledger entries and bank lines (without ids) with the problems planted."""
    tol = config.date_tolerance_days
    plan = (["ok"] * config.entries + ["split"] * config.split_payments
            + [k for k in KINDS for _ in range(config.per_kind)])
    rng.shuffle(plan)
    numbers = iter(rng.sample(range(1000, 10_000), len(plan)))
    ledger: list[dict[str, Any]] = []
    bank: list[dict[str, Any]] = []
    for kind in plan:
        receipt = rng.random() < 0.55
        ref = f"{'INV' if receipt else 'PO'}-{next(numbers)}"
        party = rng.choice(_PARTIES)
        day = rng.randint(1, 28)
        currency = rng.choice(sorted(rates)) if rng.random() < config.fx_share else "EUR"
        cents = rng.randrange(2_000, 900_000) * (1 if receipt else -1)
        entry = {"date": _iso(day), "counterparty": party, "ref": ref, "amount_cents": cents,
                 "currency": currency}
        eur = _in_eur(entry, rates)
        text = f"SEPA {'CR' if receipt else 'DD'} {_spell(ref, config.messy_refs, rng)} "
        text += party.upper()
        if kind != "missing_in_ledger":
            ledger.append(entry)
        if kind == "duplicate":
            ledger.append({**entry, "date": _iso(day + rng.randint(0, 1))})
        if kind == "missing_in_bank":
            continue
        if kind == "split":
            part = round(eur * rng.uniform(0.3, 0.7))
            bank += [{"date": _iso(day + rng.randint(0, tol)), "description": text,
                      "amount_cents": amount} for amount in (part, eur - part)]
            continue
        shift = rng.randint(0, tol)
        if kind == "date_mismatch":
            shift = (tol + rng.randint(1, 4)) * (-1 if day > tol + 5 and rng.random() < 0.5 else 1)
        bank.append({"date": _iso(day + shift), "description": text,
                     "amount_cents": _typo(eur, rng) if kind == "amount_mismatch" else eur})
    for _ in range(config.fees):
        bank.append({"date": _iso(rng.randint(1, 31)), "amount_cents": -rng.randrange(150, 4_000),
                     "description": f"{_FEE_PREFIX} {rng.choice(['ACCOUNT', 'SEPA', 'CARD'])}"})
    return ledger, bank


def _number(rows: list[dict[str, Any]], prefix: str) -> list[dict[str, Any]]:
    rows.sort(key=lambda r: r["date"])
    return [{"id": f"{prefix}{i + 1:03d}", **r} for i, r in enumerate(rows)]


# ---- the family ----------------------------------------------------------------------------

_WORDS = {
    "duplicate": "`duplicate`: ledger entries repeating the reference of an entry with a lower "
                 "id (report only the later ones)",
    "missing_in_bank": "`missing_in_bank`: ledger entries with no bank line",
    "amount_mismatch": "`amount_mismatch`: ledger entries whose bank amount differs",
    "date_mismatch": "`date_mismatch`: ledger entries with a bank line dated beyond the tolerance",
    "missing_in_ledger": "`missing_in_ledger`: bank lines with no ledger entry",
}


@register_family
class LedgerReconciliation(Family[ReconConfig]):
    name = "ledger_reconciliation"
    summary = "Reconcile a ledger against a bank statement and report each planted discrepancy."
    config_model = ReconConfig
    answer_model = ReconAnswer
    tools = (list_ledger, list_bank, get_ledger_entry, search_bank, find_by_reference,
             get_policy, fx_rates)
    variants = (
        Variant("by-reference", ("list_ledger", "find_by_reference", "get_policy"),
                ("date_tolerance", "duplicates")),
        Variant("statement-scan", ("list_ledger", "list_bank"), ("date_tolerance", "duplicates"),
                {"date_tolerance_days": 2}),
        Variant("loose-references", ("list_ledger", "list_bank", "search_bank"),
                ("date_tolerance", "duplicates", "reference_spelling"), {"messy_refs": True}),
        Variant("foreign-currency", ("list_ledger", "list_bank", "fx_rates", "get_policy"),
                ("date_tolerance", "duplicates", "fx_conversion"), {"fx_share": 0.35}),
        Variant("fees-and-splits", ("list_ledger", "list_bank", "search_bank", "get_ledger_entry"),
                ("date_tolerance", "duplicates", "bank_fees", "split_payments"),
                {"fees": 3, "split_payments": 2, "date_tolerance_days": 4}),
        Variant("month-end", ("list_ledger", "list_bank", "find_by_reference", "fx_rates"),
                ("date_tolerance", "duplicates", "reference_spelling", "fx_conversion",
                 "bank_fees", "split_payments"),
                {"entries": 24, "messy_refs": True, "fx_share": 0.25, "fees": 2,
                 "split_payments": 2, "date_tolerance_days": 5, "page_size": 10}),
    )

    def generate_state(self, rng: random.Random, config: ReconConfig) -> State:
        rates = _RATES if config.fx_share > 0 else {}
        ledger, bank = _plant(rng, config, rates)
        return {"ledger": _number(ledger, "L"), "bank": _number(bank, "B"),
                "policy": {"date_tolerance_days": config.date_tolerance_days},
                "fx_rates": dict(rates), "page_size": config.page_size}

    def generate_task(self, rng: random.Random, state: State, config: ReconConfig,
                      variant: Variant, level: int) -> TaskDraft | None:
        kinds = ["missing_in_bank", "missing_in_ledger"] if level == 0 else list(KINDS)
        window = None
        if level == 1:
            window = rng.choice([(_iso(1), _iso(15)), (_iso(16), _iso(31))])
        truth = _restrict(state, _reconcile(state), kinds, window)
        if not any(truth.values()):
            return None
        tol = state["policy"]["date_tolerance_days"]
        distractors = sum(1 for x in state["bank"] if x["description"].startswith(_FEE_PREFIX))
        distractors += sum(1 for e in state["ledger"] if e["currency"] != "EUR")
        return TaskDraft(
            instruction=_instruction(variant, kinds, window, tol),
            goal={"kinds": kinds, "expected": truth, "window": window},
            knobs={"steps": 2 + len(state["ledger"]) // state["page_size"] + level,
                   "constraints": len(variant.constraints) + (window is not None),
                   "distractors": distractors},
        )

    def solve(self, state: State, draft: TaskDraft, variant: Variant) -> list[Call]:
        calls = []
        for tool_name, rows in (("list_ledger", state["ledger"]), ("list_bank", state["bank"])):
            if tool_name in variant.tools:
                pages = max(1, -(-len(rows) // state["page_size"]))
                calls += [Call(tool_name, {"page": p}) for p in range(1, pages + 1)]
        for extra in ("get_policy", "fx_rates"):
            if extra in variant.tools:
                calls.append(Call(extra))
        if "find_by_reference" in variant.tools:
            calls += [Call("find_by_reference", {"ref": e["ref"]}) for e in state["ledger"][:3]]
        return [*calls, Call("submit", dict(draft.goal["expected"]))]

    def verify(self, final_state: State, answer: Mapping[str, Any] | None,
               goal: Mapping[str, Any]) -> Verdict:
        if answer is None:
            return Verdict(reward=0.0, reason="no answer was submitted")
        scores, wrong = {}, []
        for kind in goal["kinds"]:
            got, want = set(answer.get(kind) or []), set(goal["expected"][kind])
            union = got | want
            scores[kind] = len(got & want) / len(union) if union else 1.0
            if got != want:
                wrong.append(f"{kind}: missed {sorted(want - got)}, extra {sorted(got - want)}")
        ok = not wrong
        return Verdict(reward=float(ok), components=scores,
                       reason="every discrepancy found" if ok else "; ".join(wrong))

    def perturb(self, rng: random.Random, state: State, draft: TaskDraft,
                reference: list[Call], variant: Variant) -> dict[str, list[Call]]:
        g = draft.goal
        truth = {k: list(v) for k, v in g["expected"].items()}
        head = reference[:-1]
        broken = _careless(state, truth, g["kinds"], g["window"])
        wrong = {k: list(v) for k, v in truth.items()}
        kind = next(k for k in g["kinds"] if truth[k])
        flagged = {i for v in truth.values() for i in v}
        pool = state["bank"] if kind == "missing_in_ledger" else state["ledger"]
        decoy = next(r["id"] for r in pool if r["id"] not in flagged
                     and not r.get("description", "").startswith(_FEE_PREFIX))
        wrong[kind] = [decoy, *wrong[kind][1:]]
        return {"constraint_broken": [*head, Call("submit", broken)],
                "wrong_value": [*head, Call("submit", wrong)]}


def _restrict(state: State, found: Mapping[str, list[str]], kinds: list[str],
              window: tuple[str, str] | list[str] | None) -> dict[str, list[str]]:
    """Only the asked kinds, and only records dated inside the window (by their own date)."""
    dated = {r["id"]: r["date"] for r in (*state["ledger"], *state["bank"])}
    return {k: [i for i in found[k] if window is None or window[0] <= dated[i] <= window[1]]
            if k in kinds else [] for k in KINDS}


def _careless(state: State, truth: Mapping[str, list[str]], kinds: list[str],
              window: tuple[str, str] | list[str] | None) -> dict[str, list[str]]:
    """The truth with one rule broken, choosing the first mistake the task allows."""
    out = {k: list(v) for k, v in truth.items()}
    tol = state["policy"]["date_tolerance_days"]
    found = _reconcile(state)
    inside = {r["id"] for r in (*state["ledger"], *state["bank"])
              if window is None or window[0] <= r["date"] <= window[1]}
    flagged = {i for v in found.values() for i in v}
    lines: dict[str | None, list[dict[str, Any]]] = {}
    for x in state["bank"]:
        lines.setdefault(_norm_ref(x["description"]), []).append(x)
    for e in state["ledger"]:
        if e["id"] in flagged or e["id"] not in inside:
            continue
        mine = lines.get(_norm_ref(e["ref"]), [])
        if "date_mismatch" in kinds and any(0 < abs(_day(x["date"]) - _day(e["date"])) <= tol
                                            for x in mine):
            out["date_mismatch"].append(e["id"])  # within tolerance is not a mismatch
            return out
        if "amount_mismatch" in kinds and (len(mine) > 1 or e["currency"] != "EUR"):
            out["amount_mismatch"].append(e["id"])  # split or converted amounts still match
            return out
    outside = [(k, i) for k in kinds for i in found[k] if i not in inside]
    if outside:  # a problem, but dated outside the asked period
        out[outside[0][0]].append(outside[0][1])
        return out
    fees = [x["id"] for x in state["bank"]
            if x["description"].startswith(_FEE_PREFIX) and x["id"] in inside]
    if fees:
        out["missing_in_ledger"].append(fees[0])
        return out
    # Matching by amount instead of reference: a mistyped amount looks like a missing entry.
    typo = next((i for i in found["amount_mismatch"] if i in inside), None)
    if typo is not None and "missing_in_bank" in kinds:
        out["missing_in_bank"].append(typo)
        out["amount_mismatch"] = [i for i in out["amount_mismatch"] if i != typo]
        return out
    out["missing_in_bank"] = out["missing_in_bank"][1:]
    return out


def _instruction(variant: Variant, kinds: list[str], window: Any, tol: int) -> str:
    period = (f"ledger entries and bank lines dated {window[0]} to {window[1]}" if window
              else "the whole of March 2025")
    ask = "; ".join(_WORDS[k] for k in kinds)
    tolerance = ("the date tolerance of the reconciliation policy (get_policy)"
                 if "get_policy" in variant.tools else f"{tol} days")
    rules = [
        "An entry and bank lines match by their invoice or purchase-order reference (INV-1234, "
        "PO-1234); bank descriptions may spell it with other case, spaces or punctuation.",
        "Amounts match when they differ by at most 1 cent; a ledger entry in another currency "
        "is first converted to EUR at the fx rates (EUR per unit) and rounded to the cent.",
        "An entry may be paid by several bank lines with its reference: compare their sum.",
        f"Dates match when every bank line of the entry is within {tolerance} of the entry's "
        "date, either way.",
        f"Bank lines whose description starts with '{_FEE_PREFIX}' are booked separately: "
        "never report them.",
        "Report each ledger entry at most once, under the first kind that applies in the order "
        "duplicate, missing_in_bank, amount_mismatch, date_mismatch.",
    ]
    return (f"Reconcile our ledger with the bank statement for {period}. Find {ask}. Match "
            "against the whole ledger and statement, but report only records dated in that "
            "period. " + " ".join(rules) + " Submit the ids in the lists of those names; leave "
            "any other list empty.")
