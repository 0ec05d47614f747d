"""bank_ops: the bank's rules and the generator's choices against a hand-built bank."""

from __future__ import annotations

import copy
import random

import pytest

from envsynth.errors import ToolError
from pipelines.general.families import bank_ops as bank
from pipelines.general.family import load_families, state_digest

FAMILY = load_families().get("bank_ops")
TOOLS = FAMILY.tool_index


def _charge(tid: str, days_ago: int, amount: int, shop: str = "CafeLuna", status: str = "posted",
            disputed: bool = False) -> dict:
    return {"id": tid, "account_id": "AC1", "date": bank._day(days_ago), "amount": amount,
            "merchant": shop, "kind": "card", "card_id": "CD1", "status": status,
            "disputed": disputed}


def _bank() -> dict:
    """AC1: balance 1000.00, 400.00 held (H1 expired, H2 not), 400.00 already sent today of a
    1500.00 daily limit, 500.00 overdraft: by hand 600.00 can leave without overdraft and
    1100.00 at most. T3 duplicates T2; T4 is outside the 60-day window."""
    account = {"customer_id": "c1", "status": "open", "daily_limit": 150_000}
    return {
        "today": bank.TODAY.isoformat(), "next_id": 10, "disputes": [],
        "customers": [{"id": "c1", "name": "Ann Lee", "email": "ann@bank.test"},
                      {"id": "c2", "name": "Bob Ray", "email": "bob@bank.test"}],
        "accounts": [
            {**account, "id": "AC1", "type": "checking", "nickname": "checking",
             "balance": 100_000, "overdraft_limit": 50_000},
            {**account, "id": "AC2", "type": "savings", "nickname": "savings",
             "balance": 500_000, "overdraft_limit": 0},
            {**account, "id": "AC3", "customer_id": "c2", "type": "checking",
             "nickname": "checking", "balance": 20_000, "overdraft_limit": 0},
        ],
        "cards": [{"id": f"CD{i}", "account_id": "AC1", "last4": f"{i}{i}{i}{i}",
                   "status": "frozen" if i == 3 else "active", "reason": None} for i in (1, 2, 3)],
        "holds": [{"id": "H1", "account_id": "AC1", "merchant": "Hotel Aster", "amount": 30_000,
                   "placed_on": bank._day(10), "status": "active"},
                  {"id": "H2", "account_id": "AC1", "merchant": "CityFuel", "amount": 10_000,
                   "placed_on": bank._day(2), "status": "active"}],
        "transactions": [
            {**_charge("T1", 0, -40_000), "kind": "transfer", "card_id": None,
             "merchant": "transfer to a friend"},
            _charge("T2", 5, -5_000), _charge("T3", 5, -5_000), _charge("T4", 70, -7_000),
            _charge("T5", 1, -900, status="pending"), _charge("T6", 9, -1_200, disputed=True),
        ],
        "policy": {"overdraft_fee_cents": 2_500, "hold_period_days": 7,
                   "dispute_window_days": 60, "daily_limit": "", "provisional_credit": ""},
    }


def _call(state: dict, name: str, **args: object) -> object:
    return TOOLS[name].call(state, args)


def _balance(state: dict, account: str) -> int:
    return next(a["balance"] for a in state["accounts"] if a["id"] == account)


@pytest.mark.parametrize(("amount", "after"), [
    (60_000, 40_000),      # the no-overdraft maximum
    (100_000, 0),          # down to zero: no fee
    (105_000, -7_500),     # below zero: 25.00 fee
    (110_000, -12_500),    # every cent of the overdraft and the day's limit
])
def test_transfer_balances_by_hand(amount: int, after: int) -> None:
    state = _bank()
    _call(state, "transfer", from_account="AC1", to_account="AC2", amount_cents=amount)
    assert _balance(state, "AC1") == after
    assert _balance(state, "AC2") == 500_000 + amount


@pytest.mark.parametrize(("name", "args"), [
    ("transfer", {"from_account": "AC1", "to_account": "AC2", "amount_cents": 110_001}),
    ("transfer", {"from_account": "AC3", "to_account": "AC1", "amount_cents": 20_001}),
    ("transfer", {"from_account": "AC1", "to_account": "AC1", "amount_cents": 100}),
    ("transfer", {"from_account": "AC1", "to_account": "AC2", "amount_cents": 0}),
    ("dispute_transaction", {"transaction_id": "T4", "reason": "unauthorized"}),  # too old
    ("dispute_transaction", {"transaction_id": "T5", "reason": "unauthorized"}),  # pending
    ("dispute_transaction", {"transaction_id": "T6", "reason": "duplicate"}),     # again
    ("dispute_transaction", {"transaction_id": "T1", "reason": "duplicate"}),     # a transfer
    ("dispute_transaction", {"transaction_id": "T2", "reason": "stolen"}),
    ("release_hold", {"hold_id": "H2"}),                                           # too recent
    ("freeze_card", {"card_id": "CD3", "reason": "lost"}),                         # frozen
    ("get_account", {"account_id": "AC9"}),
])
def test_refused_calls_change_nothing(name: str, args: dict) -> None:
    state = _bank()
    before = copy.deepcopy(state)
    with pytest.raises(ToolError):
        TOOLS[name].call(state, args)
    assert state == before


def test_disputes_credit_by_reason() -> None:
    state = _bank()
    _call(state, "dispute_transaction", transaction_id="T2", reason="unauthorized")
    assert _balance(state, "AC1") == 105_000
    _call(state, "dispute_transaction", transaction_id="T3", reason="not_received")
    assert _balance(state, "AC1") == 105_000
    assert [d["provisional_credit"] for d in state["disputes"]] == [5_000, 0]


def test_lost_cards_are_blocked_others_frozen() -> None:
    state = _bank()
    _call(state, "freeze_card", card_id="CD1", reason="lost")
    _call(state, "freeze_card", card_id="CD2", reason="customer_request")
    assert [c["status"] for c in state["cards"]] == ["blocked", "frozen", "frozen"]


def test_generator_amounts_match_hand_computation() -> None:
    state = _bank()
    ann = state["customers"][0]
    job = bank._task_transfer(random.Random(0), state, ann, 1)
    assert job.actions[0]["arguments"]["amount_cents"] == 60_000
    # Releasing H1 (the only expired hold) frees 300.00: 900.00 can then leave.
    job = bank._task_holds(random.Random(0), state, ann, 2)
    assert [a["arguments"] for a in job.actions] == [
        {"hold_id": "H1"}, {"from_account": "AC1", "to_account": "AC2", "amount_cents": 90_000}]
    job = bank._task_dispute(random.Random(0), state, ann, 2)
    assert job.actions == [{"name": "dispute_transaction",
                            "arguments": {"transaction_id": "T3", "reason": "duplicate"}}]


def test_verifier_reads_graded_tables() -> None:
    state = _bank()
    goal = {"hash_tables": list(bank.TABLES), "state_hash": state_digest(state, bank.TABLES)}
    assert FAMILY.verify(state, None, goal).reward == 1.0
    _call(state, "release_hold", hold_id="H1")
    assert FAMILY.verify(state, None, goal).reward == 0.0
