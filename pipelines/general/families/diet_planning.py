"""Meal planning: a day's menu that meets nutrition targets, allergies and a budget.

A catalog of foods gives per-serving calories, protein, sodium, cost, allergens and a
vegetarian flag; dietary profiles hold a person's targets. The agent submits a menu (food
ids with whole servings, at most a fixed number per food) meeting the task's constraints:
a calorie range, a protein minimum, a sodium maximum, excluded allergens, a vegetarian
diet, a budget, or a breakfast-and-main structure. At higher levels the menu must also be
as cheap as possible.

Validity-graded: the verifier totals the submitted menu over the catalog and checks every
constraint; where the task asks for the cheapest menu, its cost must equal the optimum
found at generation time by exhaustive enumeration of every serving vector.
"""

from __future__ import annotations

import functools
import math
import random
from collections.abc import Mapping
from typing import Any

import numpy as np
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

# name, category, kcal, protein g, sodium mg, cost cents, allergens, vegetarian
_CATALOG = [
    ("oatmeal", "breakfast", 150, 5, 100, 60, ["gluten"], True),
    ("greek yogurt", "breakfast", 130, 12, 60, 110, ["dairy"], True),
    ("scrambled eggs", "breakfast", 180, 13, 320, 90, ["egg"], True),
    ("peanut butter toast", "breakfast", 290, 11, 340, 80, ["gluten", "nuts"], True),
    ("smoked salmon bagel", "breakfast", 340, 20, 700, 280, ["gluten", "fish"], False),
    ("granola bar", "snack", 190, 4, 90, 70, ["gluten", "nuts"], True),
    ("almonds", "snack", 170, 6, 0, 120, ["nuts"], True),
    ("banana", "snack", 105, 1, 1, 30, [], True),
    ("protein shake", "snack", 160, 25, 150, 200, ["dairy"], True),
    ("hummus and carrots", "snack", 150, 5, 300, 110, ["sesame"], True),
    ("chicken breast", "main", 230, 43, 100, 260, [], False),
    ("salmon fillet", "main", 280, 39, 90, 420, ["fish"], False),
    ("tofu stir-fry", "main", 210, 18, 540, 200, ["soy"], True),
    ("lentil soup", "main", 230, 18, 600, 150, [], True),
    ("beef chili", "main", 320, 25, 900, 300, [], False),
    ("pasta marinara", "main", 350, 12, 480, 160, ["gluten"], True),
    ("tuna sandwich", "main", 360, 28, 780, 240, ["gluten", "fish"], False),
    ("brown rice", "side", 215, 5, 10, 50, [], True),
    ("steamed broccoli", "side", 55, 4, 30, 60, [], True),
    ("cheese toast", "side", 260, 11, 520, 90, ["gluten", "dairy"], True),
]
_NUTRIENTS = ("kcal", "protein_g", "sodium_mg", "cost_cents")
_PEOPLE = ["Ada", "Bo", "Cy", "Dee", "Eli", "Fay", "Gus", "Hana", "Ivo", "Jun"]


class DietConfig(FamilyConfig):
    foods: int = Field(10, ge=6, le=10)
    """Catalog size; the exact optimum enumerates (max_servings + 1) ** foods menus."""
    max_servings: int = Field(2, ge=1, le=2)
    profiles: int = Field(3, ge=1, le=6)
    prices_separate: bool = False
    """Whether costs are hidden from get_food and read with get_price."""


class Menu(Answer):
    menu: list[str] = Field(
        description='The menu as "food_id:servings" entries, e.g. ["f2:1", "f7:2"].')


# ---- menus --------------------------------------------------------------------------------


def _parse_menu(entries: list[str], foods: Mapping[str, Any], top: int) -> dict[str, int]:
    """`food_id:servings` strings to a dict; ValueError says what is wrong."""
    out: dict[str, int] = {}
    for entry in entries:
        fid, sep, count = entry.partition(":")
        if not sep or fid not in foods or not count.isdigit():
            raise ValueError(f"{entry!r} is not a known food_id:servings entry")
        if fid in out:
            raise ValueError(f"{fid} appears twice")
        if not 1 <= int(count) <= top:
            raise ValueError(f"{fid}: servings must be 1..{top}")
        out[fid] = int(count)
    return out


def _totals(menu: Mapping[str, int], foods: Mapping[str, Any]) -> dict[str, int]:
    return {k: sum(n * foods[f][k] for f, n in menu.items()) for k in _NUTRIENTS}


def _broken(menu: Mapping[str, int], foods: Mapping[str, Any], c: Mapping[str, Any]) -> list[str]:
    """Names of the constraints in `c` that `menu` breaks."""
    t = _totals(menu, foods)
    chosen = [foods[f] for f in menu]
    checks = {
        "kcal": c["kcal"][0] <= t["kcal"] <= c["kcal"][1],
        "protein": t["protein_g"] >= c["protein_min"],
        "sodium": c["sodium_max"] is None or t["sodium_mg"] <= c["sodium_max"],
        "allergens": not any(set(x["allergens"]) & set(c["allergens"]) for x in chosen),
        "vegetarian": not c["vegetarian"] or all(x["vegetarian"] for x in chosen),
        "budget": c["budget"] is None or t["cost_cents"] <= c["budget"],
        "cover": all(any(x["category"] == cat for x in chosen) for cat in c["cover"]),
        "optimal": c["min_cost"] is None or t["cost_cents"] <= c["min_cost"],
    }
    return [k for k, ok in checks.items() if not ok]


@functools.cache
def _grid(n: int, top: int) -> np.ndarray:
    """Every serving vector of `n` foods with 0..top servings each, one per row."""
    return np.indices((top + 1,) * n).reshape(n, -1).T.astype(np.float64)


def _cheapest(foods: list[dict[str, Any]], c: Mapping[str, Any], top: int) -> dict[str, int]:
    """The cheapest menu meeting `c` (ignoring its optimum), by exhaustive enumeration."""
    ok = [f for f in foods if not set(f["allergens"]) & set(c["allergens"])
          and (f["vegetarian"] or not c["vegetarian"])]
    grid = _grid(len(ok), top)
    t = grid @ np.array([[f[k] for k in _NUTRIENTS] for f in ok], dtype=np.float64)
    feasible = (t[:, 0] >= c["kcal"][0]) & (t[:, 0] <= c["kcal"][1])
    feasible &= t[:, 1] >= c["protein_min"]
    if c["sodium_max"] is not None:
        feasible &= t[:, 2] <= c["sodium_max"]
    if c["budget"] is not None:
        feasible &= t[:, 3] <= c["budget"]
    for cat in c["cover"]:
        cols = [i for i, f in enumerate(ok) if f["category"] == cat]
        feasible &= grid[:, cols].sum(axis=1) > 0
    cost = np.where(feasible, t[:, 3], np.inf)
    row = grid[int(np.argmin(cost))]
    return {ok[i]["id"]: int(n) for i, n in enumerate(row) if n}


def _entries(menu: Mapping[str, int]) -> list[str]:
    return [f"{f}:{n}" for f, n in sorted(menu.items(), key=lambda x: int(x[0][1:]))]


# ---- tools ------------------------------------------------------------------------------


def _food(state: State, food_id: str) -> dict[str, Any]:
    return find_record(
        state["foods"], food_id, f"no food {food_id!r}; list_foods or search_foods show the ids"
    )


def _shown(state: State, food: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in food.items() if k != "cost_cents" or not state["prices_separate"]}


@tool()
def list_foods(state: State) -> list[dict[str, str]]:
    """List the catalog: each food's id, name and category (use get_food for nutrients)."""
    return [{k: f[k] for k in ("id", "name", "category")} for f in state["foods"]]


@tool()
def search_foods(state: State, category: str | None = None, without_allergen: str | None = None,
                 vegetarian: bool | None = None) -> list[dict[str, str]]:
    """Find foods (id, name, category) by category, excluded allergen and/or vegetarian flag.

    Args:
        category: breakfast, main, side or snack.
        without_allergen: leave out foods containing this allergen, e.g. "gluten".
        vegetarian: true for vegetarian foods only.
    """
    return [{k: f[k] for k in ("id", "name", "category")} for f in state["foods"]
            if (category is None or f["category"] == category)
            and (without_allergen is None or without_allergen not in f["allergens"])
            and (not vegetarian or f["vegetarian"])]


@tool()
def get_food(state: State, food_id: str) -> dict[str, Any]:
    """One food, per serving: kcal, protein_g, sodium_mg, allergens, vegetarian (and cost).

    Args:
        food_id: the food's id, e.g. "f4".
    """
    return _shown(state, _food(state, food_id))


@tool()
def get_price(state: State, food_id: str) -> int:
    """The cost of one serving of a food, in cents.

    Args:
        food_id: the food's id.
    """
    return _food(state, food_id)["cost_cents"]


@tool()
def get_profile(state: State, name: str) -> dict[str, Any]:
    """A person's dietary profile: calorie range, protein minimum, sodium maximum, allergies.

    Args:
        name: the person's first name.
    """
    for p in state["profiles"]:
        if p["name"].lower() == name.lower():
            return p
    raise ToolError(f"no profile for {name!r}")


@tool()
def evaluate_menu(state: State, menu: list[str]) -> dict[str, Any]:
    """Totals of a candidate menu (kcal, protein_g, sodium_mg, cost_cents) and its allergens.

    Args:
        menu: entries "food_id:servings", e.g. ["f2:1", "f7:2"].
    """
    foods = {f["id"]: f for f in state["foods"]}
    try:
        parsed = _parse_menu(menu, foods, state["max_servings"])
    except ValueError as e:
        raise ToolError(str(e)) from None
    allergens = sorted({a for f in parsed for a in foods[f]["allergens"]})
    return {**_totals(parsed, foods), "allergens": allergens,
            "vegetarian": all(foods[f]["vegetarian"] for f in parsed)}


# ---- the family -------------------------------------------------------------------------


@register_family
class DietPlanning(Family[DietConfig]):
    name = "diet_planning"
    summary = "Meal planning: a day's menu meeting nutrition targets, allergies and budget."
    config_model = DietConfig
    answer_model = Menu
    submit_description = "Submit the day's menu."
    tools = (list_foods, search_foods, get_food, get_price, get_profile, evaluate_menu)
    variants = (
        Variant("targets", ("list_foods", "get_food"), ("kcal", "protein", "sodium")),
        Variant("allergies", ("list_foods", "get_food", "get_profile"),
                ("kcal", "protein", "sodium", "allergens", "vegetarian")),
        Variant("budget", ("list_foods", "get_food", "get_price"),
                ("kcal", "protein", "budget"), {"prices_separate": True}),
        Variant("cheapest", ("search_foods", "get_food", "evaluate_menu"),
                ("kcal", "protein", "sodium", "allergens", "optimal")),
        Variant("meals", ("list_foods", "search_foods", "get_food", "get_profile"),
                ("kcal", "protein", "allergens", "cover")),
        Variant("full", ("search_foods", "get_food", "get_price", "get_profile",
                         "evaluate_menu"),
                ("kcal", "protein", "sodium", "allergens", "vegetarian", "budget", "cover"),
                {"prices_separate": True, "profiles": 5}),
    )

    def generate_state(self, rng: random.Random, config: DietConfig) -> State:
        breakfasts = [x for x in _CATALOG if x[1] == "breakfast"]
        mains = [x for x in _CATALOG if x[1] == "main"]
        rest = [x for x in _CATALOG if x[1] not in ("breakfast", "main")]
        picked = rng.sample(breakfasts, 2) + rng.sample(mains, 3)
        picked += rng.sample(rest, config.foods - len(picked))
        rng.shuffle(picked)
        foods = [
            {"id": f"f{i}", "name": name, "category": cat,
             "kcal": 5 * round(kcal * rng.uniform(0.9, 1.1) / 5),
             "protein_g": max(0, round(protein * rng.uniform(0.9, 1.1))),
             "sodium_mg": 10 * round(sodium * rng.uniform(0.85, 1.15) / 10),
             "cost_cents": 5 * round(cost * rng.uniform(0.85, 1.15) / 5),
             "allergens": allergens, "vegetarian": veg}
            for i, (name, cat, kcal, protein, sodium, cost, allergens, veg) in enumerate(picked)
        ]
        names = rng.sample(_PEOPLE, config.profiles)
        profiles = [self._profile(rng, name, foods, config.max_servings) for name in names]
        return {"foods": foods, "profiles": profiles, "max_servings": config.max_servings,
                "prices_separate": config.prices_separate}

    @staticmethod
    def _profile(rng: random.Random, name: str, foods: list[dict[str, Any]],
                 top: int) -> dict[str, Any]:
        """Targets around a planted menu of allowed foods, so every profile is satisfiable."""
        present = sorted({a for f in foods for a in f["allergens"]})
        while True:
            allergies = rng.sample(present, rng.randint(0, min(2, len(present))))
            vegetarian = rng.random() < 0.25
            ok = [f for f in foods if not set(f["allergens"]) & set(allergies)
                  and (f["vegetarian"] or not vegetarian)]
            cats = {f["category"] for f in ok}
            if {"breakfast", "main"} <= cats and len(ok) >= 4:
                break
        plant = [rng.choice([f for f in ok if f["category"] == c]) for c in ("breakfast", "main")]
        plant += rng.sample([f for f in ok if f not in plant], rng.randint(1, 2))
        totals = _totals({f["id"]: rng.randint(1, top) for f in plant},
                         {f["id"]: f for f in foods})
        return {"name": name, "allergies": sorted(allergies), "vegetarian": vegetarian,
                "kcal_min": 50 * ((totals["kcal"] - rng.randint(2, 6) * 50) // 50),
                "kcal_max": 50 * math.ceil((totals["kcal"] + rng.randint(2, 6) * 50) / 50),
                "protein_min": 5 * math.floor(totals["protein_g"] * 0.9 / 5),
                "sodium_max": 50 * math.ceil(totals["sodium_mg"] * 1.15 / 50)}

    def generate_task(self, rng: random.Random, state: State, config: DietConfig,
                      variant: Variant, level: int) -> TaskDraft | None:
        profile = rng.choice(state["profiles"])
        kinds = set(variant.constraints)
        active = {"kcal", "protein"} | ({"cover"} & kinds)
        if level >= 1:
            active |= kinds & {"sodium", "allergens", "vegetarian", "budget"}
        optimal = level == 2 or (level == 1 and "optimal" in kinds)
        c: dict[str, Any] = {
            "kcal": [profile["kcal_min"], profile["kcal_max"]],
            "protein_min": profile["protein_min"],
            "sodium_max": profile["sodium_max"] if "sodium" in active else None,
            "allergens": profile["allergies"] if "allergens" in active else [],
            "vegetarian": profile["vegetarian"] and "vegetarian" in active,
            "budget": None,
            "cover": ["breakfast", "main"] if "cover" in active else [],
            "min_cost": None,
        }
        best = _cheapest(state["foods"], c, state["max_servings"])
        if not best:
            return None
        cost = _totals(best, {f["id"]: f for f in state["foods"]})["cost_cents"]
        if "budget" in active:
            # A quarter above the cheapest menu: tight enough that cost must be watched.
            c["budget"] = 10 * math.ceil(cost * 1.25 / 10)
        if optimal:
            c["min_cost"] = cost
        text = self._instruction(profile, c, active, variant, optimal, state["max_servings"])
        return TaskDraft(
            instruction=text,
            goal={"constraints": c, "reference": _entries(best), "max_servings":
                  state["max_servings"]},
            knobs={"steps": len(best), "constraints": len(active) + int(optimal),
                   "distractors": len(state["foods"]) - len(best)},
        )

    @staticmethod
    def _instruction(profile: Mapping[str, Any], c: Mapping[str, Any], active: set[str],
                     variant: Variant, optimal: bool, top: int) -> str:
        if "get_profile" in variant.tools:
            fields = ["calorie range (kcal_min..kcal_max)", "protein minimum"]
            fields += ["sodium maximum"] * ("sodium" in active)
            fields += ["allergies (no food containing any of them)"] * ("allergens" in active)
            fields += ["vegetarian flag (if true, vegetarian foods only)"] * (
                "vegetarian" in active)
            rules = [f"follow these parts of {profile['name']}'s dietary profile (get_profile): "
                     + ", ".join(fields)]
        else:
            rules = [f"total calories between {c['kcal'][0]} and {c['kcal'][1]} kcal",
                     f"at least {c['protein_min']} g of protein"]
            if c["sodium_max"] is not None:
                rules.append(f"at most {c['sodium_max']} mg of sodium")
            if c["allergens"]:
                rules.append(f"no food containing {' or '.join(c['allergens'])}")
            if c["vegetarian"]:
                rules.append("vegetarian foods only")
        if c["budget"] is not None:
            rules.append(f"a total cost of at most {c['budget']} cents")
        if c["cover"]:
            rules.append("at least one breakfast food and at least one main")
        who = profile["name"] if "get_profile" in variant.tools else "a client"
        text = (f"Plan one day's menu for {who}: " + "; ".join(rules) + ". Each food may be "
                f"served 1 to {top} times (whole servings); totals are per-serving values "
                "times servings.")
        if optimal:
            text += " Among all menus that meet these rules, pick one of the lowest total cost."
        return text + ' Submit the menu as "food_id:servings" entries.'

    def solve(self, state: State, draft: TaskDraft, variant: Variant) -> list[Call]:
        g = draft.goal
        name = next((p["name"] for p in state["profiles"] if p["name"] in draft.instruction), "")
        calls = [Call("get_profile", {"name": name}), Call("list_foods"), Call("search_foods")]
        for f in state["foods"]:
            calls += [Call("get_food", {"food_id": f["id"]}),
                      Call("get_price", {"food_id": f["id"]})]
        calls += [Call("evaluate_menu", {"menu": g["reference"]})]
        calls = [c for c in calls if c.name in variant.tools]
        return [*calls, Call("submit", {"menu": g["reference"]})]

    def verify(self, final_state: State, answer: Mapping[str, Any] | None,
               goal: Mapping[str, Any]) -> Verdict:
        if not answer or answer.get("menu") is None:
            return Verdict(reward=0.0, reason="no menu submitted")
        foods = {f["id"]: f for f in final_state["foods"]}
        try:
            menu = _parse_menu(answer["menu"], foods, goal["max_servings"])
        except ValueError as e:
            return Verdict(reward=0.0, components={"well_formed": 0.0}, reason=str(e))
        broken = _broken(menu, foods, goal["constraints"])
        return Verdict(reward=0.0 if broken else 1.0,
                       components={"well_formed": 1.0, "constraints_met": float(not broken)},
                       reason=f"broken: {', '.join(broken)}" if broken else "menu meets the plan")

    def perturb(self, rng: random.Random, state: State, draft: TaskDraft,
                reference: list[Call], variant: Variant) -> dict[str, list[Call]]:
        g = draft.goal
        c = g["constraints"]
        foods = {f["id"]: f for f in state["foods"]}
        ref = dict((e.split(":")[0], int(e.split(":")[1])) for e in g["reference"])
        top = g["max_servings"]
        # Breaking a rule: a banned food swapped in, or else more food than the calorie cap.
        banned = [f for f, x in foods.items() if set(x["allergens"]) & set(c["allergens"])
                  or (c["vegetarian"] and not x["vegetarian"])]
        if banned:
            fid = max(ref, key=lambda f: foods[f]["kcal"])
            over = {**{f: n for f, n in ref.items() if f != fid}, banned[0]: 1}
        else:
            over = dict(ref)
            for fid in sorted(foods, key=lambda f: -foods[f]["kcal"]):
                if _totals(over, foods)["kcal"] > c["kcal"][1]:
                    break
                over[fid] = top
        wrong = self._wrong_food(ref, foods, c)

        def submit(menu: Mapping[str, int]) -> Call:
            return Call("submit", {"menu": _entries(menu)})

        return {"constraint_broken": [submit(over)], "wrong_value": [submit(wrong)]}

    @staticmethod
    def _wrong_food(ref: dict[str, int], foods: Mapping[str, Any],
                    c: Mapping[str, Any]) -> dict[str, int]:
        """The reference with one food swapped for a same-category one that misses the plan."""
        for fid in ref:
            for other, x in foods.items():
                if other in ref or x["category"] != foods[fid]["category"]:
                    continue
                menu = {**{f: n for f, n in ref.items() if f != fid}, other: ref[fid]}
                if _broken(menu, foods, c):
                    return menu
        dropped = dict(list(ref.items())[1:])
        return dropped if _broken(dropped, foods, c) else {**ref, next(iter(ref)): 9}
