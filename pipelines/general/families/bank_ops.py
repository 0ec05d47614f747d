"""Bank back office: transfers under daily limits and holds, disputes, card freezes, hold releases.

The tools enforce the bank's hard rules (daily outgoing limit, overdraft limit, the dispute
window, the hold period) and apply its side effects (overdraft fee, provisional credit); the
customer adds their own conditions (no overdraft, a shorter look-back, merchants they know,
cards to keep). Graded like tau-bench: the final accounts, cards, transactions, holds and
disputes must hash to the state left by replaying the reference.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field

from envsynth.errors import ToolError
from envsynth.schema import Verdict
from pipelines.general.family import (
    Call,
    Family,
    FamilyConfig,
    TaskDraft,
    Variant,
    check_state_hash,
    register_family,
)
from pipelines.general.names import FIRST_NAMES, LAST_NAMES
from pipelines.general.tools import State, find_record, tool

_FIRST = list(FIRST_NAMES[:12])
_LAST = list(LAST_NAMES[:10])
_SHOPS = ["GroceryHub", "CityFuel", "StreamFlix", "BookNook", "QuickTaxi", "CafeLuna", "TechMart",
          "PharmaPlus", "GymPro", "AirSnack"]
_HOLDERS = ["Hotel Aster", "CarRent Go", "CityFuel", "Hotel Birch"]
TODAY = dt.date(2026, 6, 15)
TABLES = ("accounts", "cards", "transactions", "holds", "disputes")


class BankConfig(FamilyConfig):
    customers: int = Field(5, ge=3, le=12)
    charges_per_account: int = Field(6, ge=3, le=12)
    daily_limit_cents: int = Field(150_000, ge=10_000)
    overdraft_limit_cents: int = Field(50_000, ge=0)
    hold_period_days: int = Field(7, ge=1, le=30)
    dispute_window_days: int = Field(60, ge=14, le=120)


def _day(days_ago: int) -> str:
    return (TODAY - dt.timedelta(days=days_ago)).isoformat()


def _eur(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d} EUR"


# ---- records and rules ------------------------------------------------------------------


def _find(state: State, table: str, key: str) -> dict[str, Any]:
    return find_record(state[table], key, f"no {table[:-1]} {key!r}")


def _held(state: State, account_id: str) -> int:
    return sum(h["amount"] for h in state["holds"]
               if h["account_id"] == account_id and h["status"] == "active")


def _sent_today(state: State, account_id: str) -> int:
    return -sum(t["amount"] for t in state["transactions"] if t["account_id"] == account_id
                and t["kind"] == "transfer" and t["amount"] < 0 and t["date"] == TODAY.isoformat())


def _room(state: State, account_id: str) -> tuple[int, int, int]:
    """(available without overdraft, daily limit left, overdraft limit) of an account."""
    a = _find(state, "accounts", account_id)
    return (a["balance"] - _held(state, account_id),
            a["daily_limit"] - _sent_today(state, account_id), a["overdraft_limit"])


def _post(state: State, account_id: str, amount: int, kind: str, what: str) -> None:
    state["next_id"] += 1
    state["transactions"].append({
        "id": f"T{state['next_id']}", "account_id": account_id, "date": TODAY.isoformat(),
        "amount": amount, "merchant": what, "kind": kind, "card_id": None, "status": "posted",
        "disputed": False})
    _find(state, "accounts", account_id)["balance"] += amount


# ---- tools ------------------------------------------------------------------------------


@tool()
def find_customer(state: State, email: str) -> dict[str, Any]:
    """Look up a customer by email.

    Args:
        email: the customer's email, exactly as given.
    """
    return find_record(state["customers"], email, f"no customer with email {email!r}", key="email")


@tool()
def list_accounts(state: State, customer_id: str) -> list[dict[str, Any]]:
    """A customer's accounts (id, type, nickname, balance in cents, status).

    Args:
        customer_id: the customer's id, e.g. "c2".
    """
    return [{k: a[k] for k in ("id", "type", "nickname", "balance", "status")}
            for a in state["accounts"] if a["customer_id"] == customer_id]


@tool()
def get_account(state: State, account_id: str) -> dict[str, Any]:
    """An account with its limits: balance, held and available amounts, overdraft limit, daily
    outgoing-transfer limit and what was already sent today (all in cents).

    Args:
        account_id: the account's id, e.g. "AC1003".
    """
    a = _find(state, "accounts", account_id)
    return {**a, "held": _held(state, account_id),
            "available": a["balance"] - _held(state, account_id),
            "sent_today": _sent_today(state, account_id)}


@tool()
def list_transactions(state: State, account_id: str, since: str | None = None,
                      merchant: str | None = None) -> list[dict[str, Any]]:
    """An account's transactions (amounts in cents; charges are negative), oldest first.

    Args:
        account_id: the account.
        since: only transactions on or after this date, "YYYY-MM-DD".
        merchant: only transactions with this merchant (exact name).
    """
    _find(state, "accounts", account_id)
    return [t for t in state["transactions"] if t["account_id"] == account_id
            and (since is None or t["date"] >= since) and merchant in (None, t["merchant"])]


@tool()
def list_holds(state: State, account_id: str) -> list[dict[str, Any]]:
    """Authorisation holds on an account (merchant, amount in cents, date placed, status).

    Args:
        account_id: the account.
    """
    _find(state, "accounts", account_id)
    return [h for h in state["holds"] if h["account_id"] == account_id]


@tool()
def list_cards(state: State, customer_id: str) -> list[dict[str, Any]]:
    """A customer's cards: id, account, last four digits and status.

    Args:
        customer_id: the customer's id.
    """
    mine = {a["id"] for a in state["accounts"] if a["customer_id"] == customer_id}
    return [c for c in state["cards"] if c["account_id"] in mine]


@tool()
def bank_policy(state: State) -> dict[str, Any]:
    """The bank's rules: hold period, dispute window, overdraft fee, provisional credits."""
    return state["policy"]


@tool(writes=True)
def transfer(state: State, from_account: str, to_account: str, amount_cents: int) -> str:
    """Transfer money between accounts of this bank, today.

    Refused beyond the sender's daily outgoing limit or beyond its available balance plus
    overdraft limit. A transfer that leaves the balance below zero also charges the
    overdraft fee.

    Args:
        from_account: the account to debit.
        to_account: the account to credit.
        amount_cents: the amount in cents, positive.
    """
    src, dst = _find(state, "accounts", from_account), _find(state, "accounts", to_account)
    if from_account == to_account or amount_cents < 1:
        raise ToolError("transfer a positive amount between two different accounts")
    if src["status"] != "open" or dst["status"] != "open":
        raise ToolError("both accounts must be open")
    available, left, overdraft = _room(state, from_account)
    if amount_cents > left:
        raise ToolError(f"over the daily limit: {_eur(left)} can still be sent today")
    if amount_cents > available + overdraft:
        raise ToolError(f"insufficient funds: {_eur(available + overdraft)} at most")
    _post(state, from_account, -amount_cents, "transfer", f"transfer to {to_account}")
    _post(state, to_account, amount_cents, "transfer", f"transfer from {from_account}")
    if src["balance"] < 0:
        _post(state, from_account, -state["policy"]["overdraft_fee_cents"], "fee", "overdraft fee")
    return f"sent {_eur(amount_cents)} from {from_account} to {to_account}"


@tool(writes=True)
def dispute_transaction(state: State, transaction_id: str,
                        reason: Literal["unauthorized", "duplicate", "not_received"]) -> str:
    """Open a dispute on a posted card charge within the dispute window.

    Unauthorized and duplicate disputes credit the amount provisionally at once.

    Args:
        transaction_id: the charge to dispute.
        reason: unauthorized, duplicate or not_received.
    """
    t = _find(state, "transactions", transaction_id)
    if t["kind"] != "card" or t["status"] != "posted" or t["disputed"]:
        raise ToolError("only posted, undisputed card charges can be disputed")
    oldest = _day(state["policy"]["dispute_window_days"])
    if t["date"] < oldest:
        raise ToolError(f"charges before {oldest} are outside the dispute window")
    t["disputed"] = True
    credit = -t["amount"] if reason != "not_received" else 0
    state["disputes"].append({"id": f"D{len(state['disputes']) + 1}", "transaction_id": t["id"],
                              "reason": reason, "provisional_credit": credit})
    if credit:
        _find(state, "accounts", t["account_id"])["balance"] += credit
    return f"dispute opened on {transaction_id}" + (f"; {_eur(credit)} credited" if credit else "")


@tool(writes=True)
def freeze_card(state: State, card_id: str,
                reason: Literal["lost", "suspected_fraud", "customer_request"]) -> str:
    """Stop a card. A lost card is blocked for good; otherwise it is frozen (reversible).

    Args:
        card_id: the card's id.
        reason: lost, suspected_fraud or customer_request.
    """
    card = _find(state, "cards", card_id)
    if card["status"] != "active":
        raise ToolError(f"card {card_id} is already {card['status']}")
    card["status"] = "blocked" if reason == "lost" else "frozen"
    card["reason"] = reason
    return f"card {card_id} {card['status']}"


@tool(writes=True)
def release_hold(state: State, hold_id: str) -> str:
    """Release an authorisation hold that is past the bank's hold period.

    Args:
        hold_id: the hold's id.
    """
    h = _find(state, "holds", hold_id)
    if h["status"] != "active":
        raise ToolError(f"hold {hold_id} is already {h['status']}")
    if h["placed_on"] > _day(state["policy"]["hold_period_days"]):
        raise ToolError(f"hold {hold_id} is still within the {state['policy']['hold_period_days']}"
                        "-day hold period")
    h["status"] = "released"
    return f"hold {hold_id} released"


# ---- task generation --------------------------------------------------------------------


def _c(name: str, **arguments: Any) -> dict[str, Any]:
    return {"name": name, "arguments": arguments}


class _Job:
    """A task in the making: what the customer asks, the reference writes and two near misses."""

    def __init__(self, ask: str, actions: list[dict[str, Any]], broken: list[dict[str, Any]],
                 wrong: list[dict[str, Any]], constraints: int):
        self.ask, self.actions, self.broken, self.wrong = ask, actions, broken, wrong
        self.constraints = constraints


def _accounts(state: State, customer: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The customer's accounts by nickname ("checking", "savings", maybe "vacation")."""
    return {a["nickname"]: a for a in state["accounts"] if a["customer_id"] == customer["id"]}


def _task_transfer(rng: random.Random, state: State, customer: Mapping[str, Any], level: int
                   ) -> _Job | None:
    acc = _accounts(state, customer)
    chk, sav = acc["checking"]["id"], acc["savings"]["id"]
    available, left, overdraft = _room(state, chk)
    move = lambda a, b, x: _c("transfer", from_account=a, to_account=b, amount_cents=x)  # noqa: E731
    if level == 0:
        amount = min(available, left) // 2 // 1000 * 1000
        if amount < 1000:
            return None
        return _Job(f"Please move {_eur(amount)} from my checking account {chk} to my savings "
                    f"account {sav}.", [move(chk, sav, amount)], [move(chk, sav, 2 * amount)],
                    [move(chk, sav, amount - 100)], 1)
    if level == 1:
        amount = min(available, left)
        # A careless agent forgets the holds or leans on the overdraft; both pass the bank.
        greedy = min(available + overdraft, left)
        if amount < 1000 or greedy == amount:
            return None
        return _Job(f"Please move as much as possible from my checking account {chk} to my "
                    f"savings account {sav} today, without taking checking into overdraft "
                    "(money held for pending authorisations is not available).",
                    [move(chk, sav, amount)], [move(chk, sav, greedy)],
                    [move(chk, sav, amount - 100)], 3)
    payee = rng.choice([a for a in state["accounts"] if a["customer_id"] != customer["id"]
                        and a["status"] == "open"])["id"]
    s_available, s_left, _ = _room(state, sav)
    shortfall = rng.randrange(5_000, 60_000, 500)
    rent = available + shortfall
    if available < 0 or rent > left or shortfall > min(s_available, s_left):
        return None
    return _Job(f"Please pay {_eur(rent)} of rent from my checking account {chk} to my landlord's "
                f"account {payee}. Checking must not go into overdraft: if its available balance "
                f"does not cover the rent, first move exactly the missing amount from my savings "
                f"account {sav} to checking.",
                [move(sav, chk, shortfall), move(chk, payee, rent)],
                [move(chk, payee, rent)] if rent <= available + overdraft
                else [move(sav, chk, shortfall - 1000), move(chk, payee, rent)],
                [move(sav, chk, rent), move(chk, payee, rent)]
                if rent <= min(s_available, s_left) else [move(sav, chk, shortfall + 100),
                                                          move(chk, payee, rent)], 4)


def _charges(state: State, account_id: str) -> list[dict[str, Any]]:
    return [t for t in state["transactions"] if t["account_id"] == account_id
            and t["kind"] == "card"]


def _disputable(state: State, t: Mapping[str, Any], days: int | None = None) -> bool:
    days = days or state["policy"]["dispute_window_days"]
    return t["status"] == "posted" and not t["disputed"] and t["date"] >= _day(days)


def _dispute(t: Mapping[str, Any], reason: str) -> dict[str, Any]:
    return _c("dispute_transaction", transaction_id=t["id"], reason=reason)


def _task_dispute(rng: random.Random, state: State, customer: Mapping[str, Any], level: int
                  ) -> _Job | None:
    chk = _accounts(state, customer)["checking"]["id"]
    charges = _charges(state, chk)
    if level == 0:
        ok = [t for t in charges if _disputable(state, t)]
        if len(ok) < 2:
            return None
        t, other = rng.sample(ok, 2)
        return _Job(f"Please dispute the {_eur(-t['amount'])} card charge from {t['merchant']} on "
                    f"{t['date']} on my checking account: the goods never arrived.",
                    [_dispute(t, "not_received")], [_dispute(t, "unauthorized")],
                    [_dispute(other, "not_received")], 1)
    if level == 1:
        shop = rng.choice(sorted({t["merchant"] for t in charges}))
        mine = [t for t in charges if t["merchant"] == shop]
        hit = [t for t in mine if _disputable(state, t, 30)]
        # Older than the customer's 30 days but inside the bank's window: the tempting extra.
        extra = [t for t in mine if _disputable(state, t) and t not in hit]
        if not hit or not extra:
            return None
        actions = [_dispute(t, "unauthorized") for t in hit]
        return _Job(f"I never made the card payments to {shop}. Please dispute as unauthorized "
                    f"every card charge from {shop} on my checking account dated in the last 30 "
                    f"days (on or after {_day(30)}) that is not already disputed.",
                    actions, actions + [_dispute(extra[0], "unauthorized")],
                    [_dispute(t, "duplicate") for t in hit], 2)
    seen: dict[tuple[str, int, str], dict[str, Any]] = {}
    twins = []
    for t in charges:
        key = (t["merchant"], t["amount"], t["date"])
        if key in seen and _disputable(state, t):
            twins.append((seen[key], t))
        seen.setdefault(key, t)
    extra = [a for a, _ in twins if _disputable(state, a)]
    if not twins or not extra:
        return None
    actions = [_dispute(b, "duplicate") for _, b in twins]
    return _Job("Some card charges on my checking account were taken twice (same merchant, same "
                "amount, same day). For each such pair, dispute the later copy (the one with the "
                "higher transaction id) as a duplicate, and nothing else.",
                actions, actions + [_dispute(extra[0], "duplicate")],
                [_dispute(a, "duplicate") for a, _ in twins], 3)


def _task_cards(rng: random.Random, state: State, customer: Mapping[str, Any], level: int
                ) -> _Job | None:
    acc = _accounts(state, customer)
    cards = [c for c in state["cards"] if c["account_id"] in {a["id"] for a in acc.values()}
             and c["status"] == "active"]
    if len(cards) < 2:
        return None
    card, other = rng.sample(cards, 2)
    stop = lambda c, why: _c("freeze_card", card_id=c["id"], reason=why)  # noqa: E731
    if level == 0:
        return _Job(f"I lost my card ending in {card['last4']}. Please stop it for good.",
                    [stop(card, "lost")], [stop(card, "lost"), stop(other, "lost")],
                    [stop(card, "suspected_fraud")], 1)
    if level == 1:
        since = _day(rng.choice([10, 20, 30]))
        used = [t for t in state["transactions"] if t["card_id"] == card["id"]]
        known = sorted({t["merchant"] for t in used if t["date"] < since})[:3]
        hit = [t for t in used if t["date"] >= since and t["merchant"] not in known
               and _disputable(state, t)]
        mine = [t for t in used if t["date"] >= since and t["merchant"] in known
                and _disputable(state, t)]
        if not hit:
            return None
        known_text = ", ".join(known) if known else "none of them"
        base = [stop(card, "suspected_fraud")]
        return _Job(f"Someone is using my card ending in {card['last4']}. Please freeze it as "
                    f"suspected fraud, and dispute as unauthorized every charge made with that "
                    f"card since {since} except those from merchants I use: {known_text}.",
                    base + [_dispute(t, "unauthorized") for t in hit],
                    base + [_dispute(t, "unauthorized") for t in hit + mine[:1]]
                    if mine else base + [_dispute(t, "unauthorized") for t in hit[1:]],
                    [stop(card, "lost")] + [_dispute(t, "unauthorized") for t in hit], 3)
    keep = card
    stops = [stop(c, "customer_request") for c in cards if c is not keep]
    held = [h for h in state["holds"] if h["account_id"] in {a["id"] for a in acc.values()}
            and h["status"] == "active" and h["placed_on"] <= _day(state["policy"][
                "hold_period_days"])]
    if not held:
        return None
    shop = rng.choice(sorted({h["merchant"] for h in held}))
    frees = [_c("release_hold", hold_id=h["id"]) for h in held if h["merchant"] == shop]
    return _Job(f"I'm travelling and will only carry my card ending in {keep['last4']}. Please "
                f"freeze all my other active cards at my request, and release the expired holds "
                f"(past the hold period) that {shop} placed on my accounts.", stops + frees,
                stops + [stop(keep, "customer_request")] + frees,
                [stop(c, "lost") for c in cards if c is not keep] + frees, 3)


def _task_holds(rng: random.Random, state: State, customer: Mapping[str, Any], level: int
                ) -> _Job | None:
    acc = _accounts(state, customer)
    chk, sav = acc["checking"]["id"], acc["savings"]["id"]
    period = state["policy"]["hold_period_days"]
    active = [h for h in state["holds"] if h["account_id"] == chk and h["status"] == "active"]
    expired = [h for h in active if h["placed_on"] <= _day(period)]
    free = lambda h: _c("release_hold", hold_id=h["id"])  # noqa: E731
    if level == 0:
        if len(expired) < 2:
            return None
        h, other = rng.sample(expired, 2)
        return _Job(f"The {_eur(h['amount'])} hold that {h['merchant']} placed on my checking "
                    f"account on {h['placed_on']} should be gone by now. Please release it, and "
                    "only it.", [free(h)], [free(h), free(other)], [free(other)], 1)
    if level == 1:
        if len(expired) < 2:
            return None
        spare = rng.choice(expired)
        hit = [h for h in expired if h is not spare]
        return _Job("Please release every hold on my checking account that is past the bank's "
                    f"hold period, except the one from {spare['merchant']} placed on "
                    f"{spare['placed_on']}: that booking is still running.",
                    [free(h) for h in hit], [free(h) for h in expired],
                    [free(h) for h in hit[1:]] + [free(spare)], 2)
    if not expired:
        return None
    after = {**state, "holds": [{**h, "status": "released"} if h in expired else h
                                for h in state["holds"]]}
    available, left, overdraft = _room(after, chk)
    amount = min(available, left)
    before = min(_room(state, chk)[0], left)
    if amount < 1000 or before == amount or before < 1:
        return None
    move = _c("transfer", from_account=chk, to_account=sav, amount_cents=amount)
    return _Job("Please release every hold on my checking account that is past the bank's hold "
                f"period, then move as much as possible from checking ({chk}) to savings ({sav}) "
                "today without going into overdraft (held money is not available).",
                [*map(free, expired), move],
                [*map(free, expired), {**move, "arguments": {**move["arguments"], "amount_cents":
                                                             min(available + overdraft, left)}}]
                if overdraft and available < left else [*map(free, expired[1:]), move],
                [*map(free, expired), _c("transfer", from_account=chk, to_account=sav,
                                         amount_cents=before)], 3)


_KINDS = {"transfer": _task_transfer, "dispute": _task_dispute, "cards": _task_cards,
          "holds": _task_holds}
_READ = ("find_customer", "list_accounts")


@register_family
class BankOps(Family[BankConfig]):
    name = "bank_ops"
    summary = "Bank back office: transfers within limits, disputes, card freezes and hold releases."
    config_model = BankConfig
    tools = (find_customer, list_accounts, get_account, list_transactions, list_holds, list_cards,
             bank_policy, transfer, dispute_transaction, freeze_card, release_hold)
    variants = (
        Variant("transfers", (*_READ, "get_account", "transfer"),
                ("transfer", "daily_limit", "no_overdraft")),
        Variant("disputes", (*_READ, "list_transactions", "bank_policy", "dispute_transaction"),
                ("dispute", "dispute_window", "duplicates")),
        Variant("cards", (*_READ, "list_cards", "list_transactions", "list_holds", "freeze_card",
                          "dispute_transaction", "release_hold"),
                ("cards", "known_merchants", "keep_card")),
        Variant("holds", (*_READ, "get_account", "list_holds", "bank_policy", "release_hold",
                          "transfer"), ("holds", "hold_period", "available_balance")),
        Variant("full", tuple(t.name for t in tools),
                ("transfer", "dispute", "cards", "holds", "daily_limit", "dispute_window")),
        Variant("strict-bank", (*_READ, "get_account", "list_transactions", "list_holds",
                                "transfer", "dispute_transaction", "release_hold"),
                ("transfer", "dispute", "holds", "daily_limit", "hold_period"),
                {"daily_limit_cents": 60_000, "overdraft_limit_cents": 20_000,
                 "hold_period_days": 5, "dispute_window_days": 45}),
    )

    def generate_state(self, rng: random.Random, config: BankConfig) -> State:
        names = rng.sample([(f, la) for f in _FIRST for la in _LAST], config.customers)
        state: State = {
            "today": TODAY.isoformat(), "customers": [], "accounts": [], "cards": [],
            "transactions": [], "holds": [], "disputes": [], "next_id": 0,
            "policy": {"daily_limit": "outgoing transfers per account per day",
                       "overdraft_fee_cents": 2500, "hold_period_days": config.hold_period_days,
                       "dispute_window_days": config.dispute_window_days,
                       "provisional_credit": "unauthorized and duplicate disputes"},
        }
        charges: list[dict[str, Any]] = []
        for i, (f, la) in enumerate(names):
            cid = f"c{i + 1}"
            state["customers"].append({"id": cid, "name": f"{f} {la}",
                                       "email": f"{f.lower()}.{la.lower()}@bank.test"})
            for kind in ["checking", "savings"] + (["vacation"] if rng.random() < 0.3 else []):
                state["accounts"].append({
                    "id": f"AC{1001 + len(state['accounts'])}", "customer_id": cid,
                    "type": "checking" if kind == "checking" else "savings", "nickname": kind,
                    "balance": rng.randrange(20_000, 400_000, 100) * (1 + 3 * (kind != "checking")),
                    "overdraft_limit": config.overdraft_limit_cents if kind == "checking" else 0,
                    "daily_limit": config.daily_limit_cents, "status": "open"})
            chk = next(a for a in state["accounts"] if a["customer_id"] == cid)
            charges += _customer_activity(rng, state, chk, config)
        charges.sort(key=lambda t: t["date"])
        for t in charges:
            state["next_id"] += 1
            state["transactions"].append({"id": f"T{state['next_id']}", **t})
        return state

    def generate_task(self, rng: random.Random, state: State, config: BankConfig,
                      variant: Variant, level: int) -> TaskDraft | None:
        kinds = [k for k in variant.constraints if k in _KINDS]
        pairs = [(c, k) for c in state["customers"] for k in kinds]
        rng.shuffle(pairs)
        for c, kind in pairs[:12]:
            job = _KINDS[kind](rng, state, c, level)
            if job is None:
                continue
            return TaskDraft(
                instruction=f"I am {c['name']} ({c['email']}). {job.ask} Then submit.",
                goal={"email": c["email"], "kind": kind, "actions": job.actions,
                      "broken": job.broken, "wrong": job.wrong},
                knobs={"steps": 2 + len(job.actions), "constraints": job.constraints,
                       "distractors": len(state["customers"]) - 1},
                hash_tables=TABLES,
            )
        return None

    def solve(self, state: State, draft: TaskDraft, variant: Variant) -> list[Call]:
        return self._script(state, draft, variant, draft.goal["actions"])

    def _script(self, state: State, draft: TaskDraft, variant: Variant,
                actions: list[Mapping[str, Any]]) -> list[Call]:
        cid = next(c["id"] for c in state["customers"] if c["email"] == draft.goal["email"])
        calls = [Call("find_customer", {"email": draft.goal["email"]}),
                 Call("list_accounts", {"customer_id": cid})]
        calls += [Call(a["name"], a["arguments"]) for a in actions]
        return [*calls, Call("submit")]

    def verify(self, final_state: State, answer: Mapping[str, Any] | None,
               goal: Mapping[str, Any]) -> Verdict:
        return check_state_hash(final_state, goal)

    def perturb(self, rng: random.Random, state: State, draft: TaskDraft,
                reference: list[Call], variant: Variant) -> dict[str, list[Call]]:
        g = draft.goal
        return {"constraint_broken": self._script(state, draft, variant, g["broken"]),
                "wrong_value": self._script(state, draft, variant, g["wrong"])}


def _customer_activity(rng: random.Random, state: State, chk: Mapping[str, Any],
                       config: BankConfig) -> list[dict[str, Any]]:
    """Cards, holds, today's transfers and card charges of one checking account."""
    cards = []
    for _ in range(rng.randint(2, 3)):
        cards.append({"id": f"CD{len(state['cards']) + 1}", "account_id": chk["id"],
                      "last4": f"{rng.randrange(10_000):04d}",
                      "status": rng.choice(["active", "active", "active", "frozen"]),
                      "reason": None})
        state["cards"].append(cards[-1])
    for _ in range(rng.randint(1, 4)):
        state["holds"].append({"id": f"H{len(state['holds']) + 1}", "account_id": chk["id"],
                               "merchant": rng.choice(_HOLDERS),
                               "amount": rng.randrange(5_000, 40_000, 500),
                               "placed_on": _day(rng.randint(0, 2 * config.hold_period_days)),
                               "status": "active"})
    out = []
    if rng.random() < 0.5:
        sent = rng.randrange(10_000, config.daily_limit_cents // 2, 1000)
        out.append({"account_id": chk["id"], "date": TODAY.isoformat(), "amount": -sent,
                    "merchant": "transfer to a friend", "kind": "transfer", "card_id": None,
                    "status": "posted", "disputed": False})
    shops = rng.sample(_SHOPS, 3)
    for _ in range(config.charges_per_account):
        days_ago = rng.randint(0, config.dispute_window_days + 20)
        out.append({"account_id": chk["id"], "date": _day(days_ago),
                    "amount": -rng.randrange(500, 25_000, 5), "merchant": rng.choice(shops),
                    "kind": "card", "card_id": rng.choice(cards)["id"],
                    "status": "pending" if days_ago < 2 else "posted",
                    "disputed": rng.random() < 0.1})
    posted = [t for t in out if t["kind"] == "card" and t["status"] == "posted"]
    if posted and rng.random() < 0.6:
        out.append(dict(rng.choice(posted), disputed=False))
    return out
