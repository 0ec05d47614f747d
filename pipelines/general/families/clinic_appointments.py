"""Clinic scheduler: doctors with specialties, shifts and insurance networks; patients' visits.

The agent books, moves and cancels appointments. The booking tools only guard the doctor's
calendar (shift, slot grid, no double booking); the specialty, the patient's insurance
network and referral rules, the visit type (a new patient needs a double slot), the
patient's own calendar, language and availability are the agent's to respect, and each
visit must take the earliest possible start. The verifier checks every requested visit in
the final appointment book for validity and compares its start with the earliest one,
found at generation time by scanning every doctor, day and slot.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from pydantic import Field

from envsynth.errors import ToolError
from envsynth.ids import content_hash
from envsynth.schema import Verdict
from pipelines.general.family import (
    Call,
    Family,
    FamilyConfig,
    TaskDraft,
    Variant,
    register_family,
)
from pipelines.general.names import FIRST_NAMES, LAST_NAMES
from pipelines.general.tools import State, find_record, tool

_FIRST = list(FIRST_NAMES[:12])
_LAST = list(LAST_NAMES[:10])
_SPECIALTIES = ["general", "general", "cardiology", "dermatology", "orthopedics"]
_PLANS = {"Acme PPO": "ppo", "Blue HMO": "hmo", "Civic PPO": "ppo", "Delta HMO": "hmo",
          "self-pay": "none"}
_LANGS = {"en": "English", "es": "Spanish", "fr": "French"}
_DAYS = ["2026-03-02", "2026-03-03", "2026-03-04", "2026-03-05", "2026-03-06"]


class ClinicConfig(FamilyConfig):
    doctors: int = Field(7, ge=5, le=12)
    patients: int = Field(8, ge=4, le=16)
    days: int = Field(4, ge=2, le=5)
    fill: float = Field(0.4, ge=0.0, le=0.8)
    """Rough share of the doctors' slots already booked."""


@functools.lru_cache(maxsize=512)
def _min(hhmm: str) -> int:
    return int(hhmm[:2]) * 60 + int(hhmm[3:])


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _find(state: State, table: str, key: str) -> dict[str, Any]:
    return find_record(state[table], key, f"no {table[:-1]} {key!r}")


def _length(doctor: Mapping[str, Any], kind: str) -> int:
    """Minutes of a visit: a new patient takes two slots, a follow-up one."""
    return doctor["slot_min"] * (2 if kind == "new" else 1)


def _booked(state: State, **match: str) -> list[dict[str, Any]]:
    return [a for a in state["appointments"] if a["status"] == "booked"
            and all(a[k] == v for k, v in match.items())]


def _clash(spans: Sequence[Mapping[str, Any]], date: str, start: int, end: int, skip: str) -> bool:
    return any(a["date"] == date and a.get("id") != skip and _min(a["start"]) < end
               and start < _min(a["end"]) for a in spans)


def _doctor_busy(state: State, doctor: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """A doctor's blocked time (surgery, meetings) and booked appointments."""
    return [*doctor["busy"], *_booked(state, doctor_id=doctor["id"])]


def _on_grid(doctor: Mapping[str, Any], date: str, start: int, end: int) -> bool:
    return any(s["date"] == date and _min(s["start"]) <= start and end <= _min(s["end"])
               and (start - _min(s["start"])) % doctor["slot_min"] == 0
               for s in doctor["shifts"])


# ---- tools ------------------------------------------------------------------------------


@tool()
def find_patient(state: State, email: str) -> dict[str, Any]:
    """A patient's record: id, insurance plan, language, referrals on file and the doctors who
    have seen them before.

    Args:
        email: the patient's email, exactly as given.
    """
    return find_record(state["patients"], email, f"no patient with email {email!r}", key="email")


@tool()
def insurance_plans(state: State) -> dict[str, Any]:
    """Insurance plans and the clinic's rules on networks, referrals and visit lengths."""
    return {"plans": _PLANS, "rules": state["rules"]}


@tool()
def list_doctors(state: State, specialty: str | None = None) -> list[dict[str, Any]]:
    """Doctors (id, name, specialty, languages, insurance networks), optionally of one specialty.

    Args:
        specialty: general, cardiology, dermatology or orthopedics; all when omitted.
    """
    return [{k: d[k] for k in ("id", "name", "specialty", "languages", "networks")}
            for d in state["doctors"] if specialty in (None, d["specialty"])]


@tool()
def get_doctor(state: State, doctor_id: str) -> dict[str, Any]:
    """A doctor's record: shifts (date, start, end), slot length in minutes, networks.

    Args:
        doctor_id: the doctor's id, e.g. "d3".
    """
    return {k: v for k, v in _find(state, "doctors", doctor_id).items() if k != "busy"}


@tool()
def doctor_schedule(state: State, doctor_id: str, date: str) -> list[dict[str, str]]:
    """When a doctor is busy on one date (booked visits and blocked time, start and end).

    Args:
        doctor_id: the doctor.
        date: "YYYY-MM-DD".
    """
    doctor = _find(state, "doctors", doctor_id)
    return sorted(({"start": a["start"], "end": a["end"]} for a in _doctor_busy(state, doctor)
                   if a["date"] == date), key=lambda a: a["start"])


@tool()
def open_slots(state: State, doctor_id: str, date: str, kind: Literal["new", "follow_up"]
               ) -> list[str]:
    """Start times at which a doctor can still take a visit of this type on one date.

    Args:
        doctor_id: the doctor.
        date: "YYYY-MM-DD".
        kind: "new" (two slots) or "follow_up" (one slot).
    """
    d = _find(state, "doctors", doctor_id)
    out = []
    for s in d["shifts"]:
        if s["date"] != date:
            continue
        for t in range(_min(s["start"]), _min(s["end"]) - _length(d, kind) + 1, d["slot_min"]):
            if not _clash(_doctor_busy(state, d), date, t, t + _length(d, kind), ""):
                out.append(_hhmm(t))
    return out


@tool()
def list_appointments(state: State, patient_id: str) -> list[dict[str, Any]]:
    """A patient's appointments (id, doctor, date, start, end, type, status).

    Args:
        patient_id: the patient's id, e.g. "p2".
    """
    return [a for a in state["appointments"] if a["patient_id"] == patient_id]


def _place(state: State, doctor: Mapping[str, Any], date: str, start: str, kind: str,
           skip: str = "") -> tuple[str, str]:
    """Check a doctor's calendar for a visit; returns its (start, end) or raises ToolError."""
    if len(start) != 5 or start[2] != ":" or not (start[:2] + start[3:]).isdigit():
        raise ToolError("start must look like '09:40'")
    a = _min(start)
    b = a + _length(doctor, kind)
    if not _on_grid(doctor, date, a, b):
        raise ToolError(f"{doctor['id']} has no {kind} visit starting {date} {start} (outside "
                        f"a shift or off the {doctor['slot_min']}-minute grid)")
    if _clash(_doctor_busy(state, doctor), date, a, b, skip):
        raise ToolError(f"{doctor['id']} is already booked then")
    return start, _hhmm(b)


@tool(writes=True)
def book_appointment(state: State, doctor_id: str, patient_id: str, date: str, start: str,
                     kind: Literal["new", "follow_up"]) -> str:
    """Book a visit. New patients of a doctor need a "new" visit (two slots), patients the
    doctor has seen before a "follow_up" (one slot).

    Args:
        doctor_id: the doctor.
        patient_id: the patient.
        date: "YYYY-MM-DD".
        start: start time "HH:MM", on the doctor's slot grid within a shift.
        kind: "new" or "follow_up".
    """
    doctor = _find(state, "doctors", doctor_id)
    _find(state, "patients", patient_id)
    begin, end = _place(state, doctor, date, start, kind)
    aid = f"A{state['next_id']}"
    state["next_id"] += 1
    state["appointments"].append({"id": aid, "doctor_id": doctor_id, "patient_id": patient_id,
                                  "date": date, "start": begin, "end": end, "kind": kind,
                                  "status": "booked"})
    return f"booked {aid}: {doctor_id} on {date} {begin}-{end}"


@tool(writes=True)
def reschedule_appointment(state: State, appointment_id: str, date: str, start: str) -> str:
    """Move a booked appointment to another time with the same doctor.

    Args:
        appointment_id: the appointment.
        date: new date "YYYY-MM-DD".
        start: new start time "HH:MM".
    """
    appt = _find(state, "appointments", appointment_id)
    if appt["status"] != "booked":
        raise ToolError(f"appointment {appointment_id} is {appt['status']}")
    doctor = _find(state, "doctors", appt["doctor_id"])
    begin, end = _place(state, doctor, date, start, appt["kind"], skip=appt["id"])
    appt.update(date=date, start=begin, end=end)
    return f"{appointment_id} moved to {date} {begin}-{end}"


@tool(writes=True)
def cancel_appointment(state: State, appointment_id: str) -> str:
    """Cancel a booked appointment.

    Args:
        appointment_id: the appointment.
    """
    appt = _find(state, "appointments", appointment_id)
    if appt["status"] != "booked":
        raise ToolError(f"appointment {appointment_id} is already {appt['status']}")
    appt["status"] = "cancelled"
    return f"{appointment_id} cancelled"


# ---- what makes a visit valid, and the earliest one -------------------------------------


def _expected_kind(patient: Mapping[str, Any], doctor: Mapping[str, Any]) -> str:
    return "follow_up" if doctor["id"] in patient["seen_by"] else "new"


def _doctor_fits(req: Mapping[str, Any], patient: Mapping[str, Any],
                 doctor: Mapping[str, Any], relax: frozenset[str] = frozenset()) -> str | None:
    """Why this doctor cannot take the requested visit, or None (`relax` skips checks)."""
    if req.get("specialty") and doctor["specialty"] != req["specialty"]:
        return f"{doctor['id']} is not a {req['specialty']} doctor"
    if ("network" not in relax and patient["insurance"] != "self-pay"
            and patient["insurance"] not in doctor["networks"]):
        return f"{doctor['id']} is outside the {patient['insurance']} network"
    if "language" not in relax and req.get("language") and req["language"] not in doctor[
            "languages"]:
        return f"{doctor['id']} does not speak {_LANGS[req['language']]}"
    return None


def _time_fits(req: Mapping[str, Any], date: str, start: int, end: int,
               after: str | None) -> str | None:
    """Why this time breaks the patient's window or the referral order, or None."""
    window = req.get("window")
    if window and (date not in window["dates"] or start < _min(window["from"])
                   or end > _min(window["to"])):
        return "outside the times the patient can come"
    if after and date <= after:
        return f"not on a day after the referral visit ({after})"
    return None


def _visit_problem(state: State, req: Mapping[str, Any], appt: Mapping[str, Any],
                   after: str | None) -> str | None:
    """Why a booked visit does not satisfy its request (validity only, not earliness)."""
    doctor = _find(state, "doctors", appt["doctor_id"])
    patient = _find(state, "patients", appt["patient_id"])
    start, end = _min(appt["start"]), _min(appt["end"])
    return (_doctor_fits(req, patient, doctor)
            or (f"a {appt['kind']} visit, but this is a {_expected_kind(patient, doctor)} one"
                if appt["kind"] != _expected_kind(patient, doctor) else None)
            or (None if _on_grid(doctor, appt["date"], start, end)
                and end - start == _length(doctor, appt["kind"]) else "not a slot of the doctor")
            or ("the doctor is double-booked"
                if _clash(_doctor_busy(state, doctor), appt["date"], start, end, appt["id"])
                else None)
            or ("the patient has another visit then"
                if _clash(_booked(state, patient_id=patient["id"]), appt["date"], start, end,
                          appt["id"]) else None)
            or _time_fits(req, appt["date"], start, end, after))


def _slots(state: State, req: Mapping[str, Any], patient: Mapping[str, Any],
           after: str | None, relax: frozenset[str] = frozenset(), skip: str = ""
           ) -> list[tuple[str, int, str, str]]:
    """Every valid (date, start, doctor id, kind) for a request, earliest first.

    `relax` drops checks ("network", "language", "time") to build near misses; `skip` is an
    appointment being moved, which frees its own time.
    """
    doctors = [d for d in state["doctors"] if (req.get("doctor") in (None, d["id"]))
               and not _doctor_fits(req, patient, d, relax)]
    mine = _spans(_booked(state, patient_id=patient["id"]), skip)
    out = []
    for d in doctors:
        kind = _expected_kind(patient, d)
        length, busy = _length(d, kind), _spans(_doctor_busy(state, d), skip)
        for shift in d["shifts"]:
            date = shift["date"]
            taken = busy.get(date, []) + mine.get(date, [])
            for t in range(_min(shift["start"]), _min(shift["end"]) - length + 1, d["slot_min"]):
                end = t + length
                if (any(a < end and t < b for a, b in taken)
                        or ("time" not in relax and _time_fits(req, date, t, end, after))):
                    continue
                out.append((date, t, d["id"], kind))
    return sorted(out)


def _spans(items: Sequence[Mapping[str, Any]], skip: str) -> dict[str, list[tuple[int, int]]]:
    """Busy (start, end) minutes by date, parsed once for a scan."""
    out: dict[str, list[tuple[int, int]]] = {}
    for a in items:
        if a.get("id") != skip:
            out.setdefault(a["date"], []).append((_min(a["start"]), _min(a["end"])))
    return out


# ---- the family -------------------------------------------------------------------------

_RULES = ("Insured patients may only see doctors in their plan's network (self-pay patients "
          "may see anyone). A doctor's new patient needs a 'new' visit (two slots); a patient "
          "the doctor has seen before needs a 'follow_up' (one slot).")


def _visit(doctor: str, patient: str, slot: tuple[str, int, str, str]) -> Call:
    return Call("book_appointment", {"doctor_id": slot[2], "patient_id": patient,
                                     "date": slot[0], "start": _hhmm(slot[1]), "kind": slot[3]})


def _window(rng: random.Random, state: State) -> dict[str, Any]:
    start = rng.choice([8, 9, 10, 13])
    return {"dates": sorted(rng.sample(state["days"], 2)), "from": f"{start:02d}:00",
            "to": f"{start + rng.choice([3, 4, 5]):02d}:00"}


def _window_text(w: Mapping[str, Any] | None) -> str:
    return (f" I can only come on {' or '.join(w['dates'])}, between {w['from']} and {w['to']}."
            if w else "")


@register_family
class ClinicAppointments(Family[ClinicConfig]):
    name = "clinic_appointments"
    summary = "Clinic scheduler: earliest valid visits under specialty, network, referral rules."
    config_model = ClinicConfig
    tools = (find_patient, insurance_plans, list_doctors, get_doctor, doctor_schedule,
             open_slots, list_appointments, book_appointment, reschedule_appointment,
             cancel_appointment)
    variants = (
        Variant("gp", ("find_patient", "list_doctors", "get_doctor", "doctor_schedule",
                       "book_appointment"), ("book", "network", "visit_type", "earliest")),
        Variant("open-slots", ("find_patient", "list_doctors", "open_slots", "list_appointments",
                               "book_appointment"), ("book", "network", "language", "window")),
        Variant("referrals", ("find_patient", "insurance_plans", "list_doctors", "get_doctor",
                              "doctor_schedule", "list_appointments", "book_appointment"),
                ("book", "referral", "network", "window")),
        Variant("reschedule", ("find_patient", "list_appointments", "list_doctors", "get_doctor",
                               "doctor_schedule", "reschedule_appointment",
                               "cancel_appointment", "book_appointment"),
                ("move", "window", "same_doctor")),
        Variant("front-desk", tuple(t.name for t in tools),
                ("book", "move", "network", "referral", "language", "window")),
        Variant("busy-clinic", ("find_patient", "list_doctors", "get_doctor", "open_slots",
                                "doctor_schedule", "book_appointment", "cancel_appointment"),
                ("book", "network", "window"), {"fill": 0.6, "doctors": 9}),
    )

    def generate_state(self, rng: random.Random, config: ClinicConfig) -> State:
        days = _DAYS[:config.days]
        specialties = _SPECIALTIES + [rng.choice(_SPECIALTIES)
                                      for _ in range(config.doctors - len(_SPECIALTIES))]
        names = rng.sample([(f, la) for f in _FIRST for la in _LAST],
                           config.doctors + config.patients)
        insured = [p for p in _PLANS if p != "self-pay"]
        doctors: list[dict[str, Any]] = []
        for i, spec in enumerate(specialties):
            slot = rng.choice([15, 20, 30])
            shifts = []
            for day in days:
                if rng.random() < 0.75:
                    a = rng.choice([8, 9, 13, 14]) * 60
                    shifts.append({"date": day, "start": _hhmm(a),
                                   "end": _hhmm(a + rng.choice([2, 3]) * 60)})
            busy = []
            for s in shifts:
                for t in range(_min(s["start"]), _min(s["end"]), slot):
                    if rng.random() < config.fill:
                        busy.append({"date": s["date"], "start": _hhmm(t),
                                     "end": _hhmm(t + slot)})
            f, la = names[i]
            doctors.append({
                "id": f"d{i + 1}", "name": f"Dr. {f} {la}", "specialty": spec,
                "languages": sorted({"en", *rng.sample(list(_LANGS), rng.randint(0, 1))}),
                "networks": sorted(rng.sample(insured, rng.randint(2, 3))),
                "slot_min": slot, "shifts": shifts, "busy": _merge(busy)})
        patients = []
        for j, (f, la) in enumerate(names[config.doctors:]):
            plan = rng.choice(list(_PLANS))
            patients.append({
                "id": f"p{j + 1}", "name": f"{f} {la}",
                "email": f"{f.lower()}.{la.lower()}@mail.test",
                "insurance": plan, "language": rng.choice(["en", "en", "en", "es", "fr"]),
                "referrals": sorted(rng.sample(["cardiology", "dermatology", "orthopedics"],
                                               rng.randint(0, 1))) if _PLANS[plan] == "hmo" else [],
                "seen_by": sorted(d["id"] for d in rng.sample(doctors, rng.randint(0, 2)))})
        state: State = {"days": days, "doctors": doctors, "patients": patients,
                        "appointments": [], "next_id": 1,
                        "rules": {"networks": _RULES.split(". ")[0] + ".",
                                  "referrals": "HMO plans need a referral on file for any "
                                  "specialty other than general; a general visit issues one, "
                                  "valid from the next day", "visit_length": _RULES.split(". ")[1]}}
        for p in patients:
            self._existing_visit(rng, state, p)
        return state

    def _existing_visit(self, rng: random.Random, state: State, p: Mapping[str, Any]) -> None:
        """A follow-up already booked with a doctor who has seen the patient, in network."""
        for did in p["seen_by"]:
            d = _find(state, "doctors", did)
            slots = _slots(state, {"doctor": did}, p, None)
            if slots and not _doctor_fits({}, p, d):
                date, start, _, kind = rng.choice(slots[len(slots) // 2:])
                state["appointments"].append({
                    "id": f"A{state['next_id']}", "doctor_id": did, "patient_id": p["id"],
                    "date": date, "start": _hhmm(start), "end": _hhmm(start + _length(d, kind)),
                    "kind": kind, "status": "booked"})
                state["next_id"] += 1
                return

    def generate_task(self, rng: random.Random, state: State, config: ClinicConfig,
                      variant: Variant, level: int) -> TaskDraft | None:
        kinds = [k for k in ("book", "move") if k in variant.constraints]
        pairs = [(p, k) for p in state["patients"] for k in kinds]
        rng.shuffle(pairs)
        for p, kind in pairs[:12]:
            made = (self._book(rng, state, p, level, variant) if kind == "book"
                    else self._move(rng, state, p, level))
            if made is None:
                continue
            text, requests, plan = made
            touched = [r["appointment"] for r in requests if "appointment" in r]
            goal = {"email": p["email"], "requests": requests, "plan": plan, "touched": touched,
                    "base_ids": [a["id"] for a in state["appointments"]],
                    "base_digest": content_hash([a for a in state["appointments"]
                                                 if a["id"] not in touched])}
            return TaskDraft(
                instruction=f"I am {p['name']} ({p['email']}). {text} The clinic books "
                f"{', '.join(state['days'])}. {_RULES} Then submit.",
                goal=goal,
                knobs={"steps": 2 + 2 * len(requests),
                       "constraints": 2 + sum(bool(r.get("window")) + bool(r.get("language"))
                                              + ("after_request" in r) for r in requests),
                       "distractors": len(state["doctors"])},
            )
        return None

    def _book(self, rng: random.Random, state: State, p: Mapping[str, Any], level: int,
              variant: Variant) -> tuple[str, list[dict[str, Any]], list[Any]] | None:
        hmo = _PLANS[p["insurance"]] == "hmo"
        language = p["language"] if p["language"] != "en" and (
            "language" in variant.constraints) else None
        ask = f" with a doctor who speaks {_LANGS[language]}" if language else ""
        if level < 2:
            spec = rng.choice(["general", *p["referrals"]] if hmo else _SPECIALTIES)
            req = {"op": "book", "patient": p["id"], "specialty": spec, "language": language,
                   "window": _window(rng, state) if level else None}
            slots = _slots(state, req, p, None)
            if not slots:
                return None
            req["earliest"] = {"date": slots[0][0], "start": _hhmm(slots[0][1])}
            return (f"Please book me the earliest possible {spec} visit{ask}."
                    + _window_text(req["window"]), [req], [list(slots[0])])
        needs = [s for s in ("cardiology", "dermatology", "orthopedics") if s not in p["referrals"]]
        if not hmo:
            return None
        first = {"op": "book", "patient": p["id"], "specialty": "general", "language": language,
                 "window": None}
        gp = _slots(state, first, p, None)
        rng.shuffle(needs)
        for spec in needs if gp else []:
            second = {"op": "book", "patient": p["id"], "specialty": spec, "language": language,
                      "window": None, "after_request": 0}
            later = _slots(state, second, p, gp[0][0])
            if not later:
                continue
            first["earliest"] = {"date": gp[0][0], "start": _hhmm(gp[0][1])}
            second["earliest"] = {"date": later[0][0], "start": _hhmm(later[0][1])}
            return (f"I need a visit in {spec}{ask}. My plan needs a referral from a general "
                    f"practitioner first and I have none for {spec}: book the earliest general "
                    f"visit{ask}, then the earliest {spec} visit on a later day than that "
                    "general visit.", [first, second], [list(gp[0]), list(later[0])])
        return None

    def _move(self, rng: random.Random, state: State, p: Mapping[str, Any], level: int
              ) -> tuple[str, list[dict[str, Any]], list[Any]] | None:
        mine = _booked(state, patient_id=p["id"])
        if not mine:
            return None
        a = mine[0]
        d = _find(state, "doctors", a["doctor_id"])
        now = (a["date"], _min(a["start"]))
        window = _window(rng, state) if level else None
        if window and not _time_fits({"window": window}, a["date"], now[1], _min(a["end"]),
                                     None):
            return None  # already inside the window: nothing to move
        if level < 2:
            req = {"op": "move", "appointment": a["id"], "patient": p["id"], "doctor": d["id"],
                   "window": window}
            slots = [s for s in _slots(state, req, p, None, skip=a["id"]) if s[:2] != now]
            # Two free times besides the current one: the later one makes the wrong answer.
            if len(slots) < 2 or (not window and slots[0][:2] > now):
                return None
            req["earliest"] = {"date": slots[0][0], "start": _hhmm(slots[0][1])}
            return (f"Please move my appointment {a['id']} with {d['name']} ({a['date']} "
                    f"{a['start']}) to the earliest time the same doctor can see me."
                    + _window_text(window), [req], [list(slots[0])])
        book = {"op": "book", "patient": p["id"], "specialty": d["specialty"], "language": None,
                "window": window}
        slots = _slots(state, book, p, None, skip=a["id"])
        if not slots:
            return None
        book["earliest"] = {"date": slots[0][0], "start": _hhmm(slots[0][1])}
        return (f"Please cancel my appointment {a['id']} with {d['name']} and instead book the "
                f"earliest {d['specialty']} visit with any suitable doctor."
                + _window_text(window),
                [{"op": "cancel", "appointment": a["id"]}, book], [None, list(slots[0])])

    def solve(self, state: State, draft: TaskDraft, variant: Variant) -> list[Call]:
        return self._script(draft, variant, self._writes(draft.goal, draft.goal["plan"]))

    def _writes(self, goal: Mapping[str, Any], plan: list[Any]) -> list[Call]:
        calls = []
        for req, slot in zip(goal["requests"], plan, strict=True):
            if req["op"] == "cancel":
                calls.append(Call("cancel_appointment", {"appointment_id": req["appointment"]}))
            elif req["op"] == "move":
                calls.append(Call("reschedule_appointment", {
                    "appointment_id": req["appointment"], "date": slot[0],
                    "start": _hhmm(slot[1])}))
            else:
                calls.append(_visit(slot[2], req["patient"], tuple(slot)))
        return calls

    def _script(self, draft: TaskDraft, variant: Variant, writes: list[Call]) -> list[Call]:
        calls = [Call("find_patient", {"email": draft.goal["email"]})]
        if "list_doctors" in variant.tools:
            calls.append(Call("list_doctors"))
        return [*calls, *writes, Call("submit")]

    def verify(self, final_state: State, answer: Mapping[str, Any] | None,
               goal: Mapping[str, Any]) -> Verdict:
        appts = final_state["appointments"]
        base = set(goal["base_ids"])
        if content_hash([a for a in appts if a["id"] in base and a["id"] not in goal["touched"]]
                        ) != goal["base_digest"]:
            return _fail("appointments the patient did not ask about were changed")
        new = [a for a in appts if a["id"] not in base and a["status"] == "booked"]
        if len(new) != sum(r["op"] == "book" for r in goal["requests"]):
            return _fail(f"{len(new)} new appointments, "
                         f"{sum(r['op'] == 'book' for r in goal['requests'])} requested")
        dates: list[str | None] = []
        specialty = {d["id"]: d["specialty"] for d in final_state["doctors"]}
        for req in goal["requests"]:
            if req["op"] == "cancel":
                gone = next(a for a in appts if a["id"] == req["appointment"])
                if gone["status"] != "cancelled":
                    return _fail(f"appointment {req['appointment']} was not cancelled")
                dates.append(None)
                continue
            if req["op"] == "move":
                found = [a for a in appts if a["id"] == req["appointment"]
                         and a["status"] == "booked"]
            else:
                found = [a for a in new if a["patient_id"] == req["patient"]
                         and specialty[a["doctor_id"]] == req["specialty"]]
            if len(found) != 1:
                return _fail(f"no single {req.get('specialty', 'moved')} visit to judge")
            appt = found[0]
            after = dates[req["after_request"]] if "after_request" in req else None
            problem = _visit_problem(final_state, req, appt, after)
            if problem:
                return _fail(f"{appt['id']}: {problem}")
            if (appt["date"], appt["start"]) != (req["earliest"]["date"], req["earliest"]["start"]):
                return Verdict(reward=0.0, components={"valid": 1.0, "earliest": 0.0},
                               reason=f"{appt['id']} is valid but {req['earliest']['date']} "
                               f"{req['earliest']['start']} was possible earlier")
            dates.append(appt["date"])
        return Verdict(reward=1.0, components={"valid": 1.0, "earliest": 1.0},
                       reason="every visit valid and at its earliest time")

    def perturb(self, rng: random.Random, state: State, draft: TaskDraft,
                reference: list[Call], variant: Variant) -> dict[str, list[Call]]:
        g = draft.goal
        last, req = len(g["requests"]) - 1, g["requests"][-1]
        patient = _find(state, "patients", req["patient"])
        after = g["plan"][0][0] if "after_request" in req else None
        skip = g["requests"][0].get("appointment", "") if req["op"] == "book" else req.get(
            "appointment", "")
        valid = _slots(state, req, patient, after, skip=skip)
        broken = [s for relax in ("network", "language", "time")
                  for s in _slots(state, req, patient, after, frozenset({relax}), skip)[:3]
                  if s not in valid]
        flipped = [[*g["plan"][-1][:3], "new" if g["plan"][-1][3] == "follow_up"
                    else "follow_up"]] if req["op"] == "book" else []
        here = next(((a["date"], _min(a["start"])) for a in state["appointments"]
                     if a["id"] == req.get("appointment")), None)
        wrong = [s for s in valid if s[:2] > tuple(g["plan"][-1][:2]) and s[:2] != here][:3]
        out = {}
        # A visit of the wrong type is a last resort for both when nothing else fails.
        for name, options in (("constraint_broken", [*broken, *flipped]),
                              ("wrong_value", [*wrong, *flipped])):
            calls = [self._writes(g, [*g["plan"][:last], list(o)]) for o in options]
            if req["op"] == "book" and g["requests"][0]["op"] == "cancel":
                calls.append(self._writes(g, g["plan"])[1:])  # forgets to cancel
            if req["op"] == "move" and name == "constraint_broken":
                calls += self._other_doctor(state, req, patient)
            out[name] = self._script(draft, variant, self._first_failing(state, g, calls))
        return out

    def _other_doctor(self, state: State, req: Mapping[str, Any], patient: Mapping[str, Any]
                      ) -> list[list[Call]]:
        """Moves that break "the same doctor": cancel, then book a colleague's earliest slot."""
        spec = _find(state, "doctors", req["doctor"])["specialty"]
        other = {"specialty": spec, "window": req["window"]}
        cancel = Call("cancel_appointment", {"appointment_id": req["appointment"]})
        colleagues = [[cancel, _visit(s[2], patient["id"], s)]
                      for s in _slots(state, other, patient, None, skip=req["appointment"])
                      if s[2] != req["doctor"]][:2]
        # Or a second visit booked at the right time while the old one stays: not a move.
        first = _slots(state, req, patient, None, skip=req["appointment"])[:1]
        return colleagues + [[_visit(s[2], patient["id"], s)] for s in first]


    def _first_failing(self, state: State, goal: Mapping[str, Any], options: list[list[Call]]
                       ) -> list[Call]:
        """The first near miss that the tools accept and the verifier rejects."""
        from pipelines.general.family import copy_state

        for calls in options:
            work = copy_state(state)
            try:
                for c in calls:
                    self.tool_index[c.name].fn(work, **c.arguments)
            except ToolError:
                continue
            if self.verify(work, None, goal).reward < 1.0:
                return calls
        return options[-1] if options else []


def _merge(spans: list[dict[str, str]]) -> list[dict[str, str]]:
    """Adjacent blocked slots as one block: a smaller record, the same calendar."""
    out: list[dict[str, str]] = []
    for s in spans:
        if out and out[-1]["date"] == s["date"] and out[-1]["end"] == s["start"]:
            out[-1]["end"] = s["end"]
        else:
            out.append(dict(s))
    return out


def _fail(reason: str) -> Verdict:
    return Verdict(reward=0.0, components={"valid": 0.0}, reason=reason)
