"""Problem families: each draws a problem that needs code, its reference solution, and its answer.

Every family computes the answer here, in this process, by its own means, and writes a
reference solution for the kernel that prints it. The pipeline accepts a problem only when
the two agree: a family whose reference code and answer drift apart loses its problems,
not its correctness. Reference solutions use the standard library only, as the agent's
kernel has nothing else.
"""

from __future__ import annotations

import csv
import io
import random
import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from envsynth.errors import UnknownIdError


@dataclass(frozen=True)
class Problem:
    """One drawn problem.

    Attributes:
        family: the family that drew it.
        text: the problem as the agent reads it.
        reference_code: a cell whose last printed line is the answer.
        answer: the answer, computed in this process.
        files: file name → text, put in the kernel's working directory.
        tolerance: the largest accepted absolute difference of a numeric answer.
    """

    family: str
    text: str
    reference_code: str
    answer: str
    files: dict[str, str] = field(default_factory=dict)
    tolerance: float = 0.0


Family = Callable[[random.Random], Problem]
FAMILIES: dict[str, Family] = {}


def family(name: str) -> Callable[[Family], Family]:
    def register(fn: Family) -> Family:
        FAMILIES[name] = fn
        return fn

    return register


def get_family(name: str) -> Family:
    """The family called `name`.

    Raises:
        UnknownIdError: no such family, with the closest names.
    """
    if name not in FAMILIES:
        raise UnknownIdError("interpreter family", name, list(FAMILIES))
    return FAMILIES[name]


def _code(source: str) -> str:
    return textwrap.dedent(source).strip() + "\n"


@family("prime_sum")
def prime_sum(rng: random.Random) -> Problem:
    n = rng.randrange(200_000, 1_000_000)
    # Here: a plain sieve over a list of flags; the reference strikes bytearray slices.
    composite = [False] * n
    total = 0
    for k in range(2, n):
        if not composite[k]:
            total += k
            for multiple in range(k * k, n, k):
                composite[multiple] = True
    return Problem(
        family="prime_sum",
        text=f"What is the sum of all prime numbers below {n:,}? Give the exact integer.",
        reference_code=_code(
            f"""
            n = {n}
            sieve = bytearray([1]) * n
            sieve[0:2] = b"\\x00\\x00"
            for i in range(2, int(n ** 0.5) + 1):
                if sieve[i]:
                    sieve[i * i :: i] = bytearray(len(range(i * i, n, i)))
            print(sum(i for i in range(n) if sieve[i]))
            """
        ),
        answer=str(total),
    )


def _digit_sum(k: int) -> int:
    return sum(map(int, str(k)))


@family("digit_sums")
def digit_sums(rng: random.Random) -> Problem:
    n = rng.randrange(300_000, 1_000_000)
    m = rng.choice([7, 11, 13, 17, 19, 23])
    # Here: a digit DP over the decimal digits of n; the reference counts one by one.
    digits = list(map(int, str(n)))
    counts = {0: 1}  # digit-sum residue → count of prefixes equal to n's prefix so far
    below: dict[int, int] = {}  # residue → count of prefixes already below n's
    for d in digits:
        nxt: dict[int, int] = {}
        for r, c in below.items():
            for x in range(10):
                nxt[(r + x) % m] = nxt.get((r + x) % m, 0) + c
        for r, c in counts.items():
            for x in range(d):
                nxt[(r + x) % m] = nxt.get((r + x) % m, 0) + c
        counts = {(r + d) % m: c for r, c in counts.items()}
        below = nxt
    total = below.get(0, 0) + counts.get(0, 0) - 1  # numbers 0…n; 0 is not counted
    return Problem(
        family="digit_sums",
        text=(
            f"How many integers from 1 to {n:,} inclusive have a sum of decimal digits that "
            f"is divisible by {m}?"
        ),
        reference_code=_code(
            f"""
            print(sum(1 for k in range(1, {n} + 1) if sum(map(int, str(k))) % {m} == 0))
            """
        ),
        answer=str(total),
    )


@family("collatz")
def collatz(rng: random.Random) -> Problem:
    n = rng.randrange(20_000, 60_000)
    # Here: memoized lengths; the reference walks every sequence in full.
    length = {1: 1}

    def steps(k: int) -> int:
        path = []
        while k not in length:
            path.append(k)
            k = k // 2 if k % 2 == 0 else 3 * k + 1
        base = length[k]
        for i, v in enumerate(reversed(path), 1):
            length[v] = base + i
        return length[path[0]] if path else base

    best = max(range(1, n), key=lambda k: (steps(k), -k))
    return Problem(
        family="collatz",
        text=(
            f"Among the starting numbers 1 to {n - 1:,}, which one gives the longest Collatz "
            "sequence (n → n/2 if n is even, else 3n + 1, until 1)? If several tie, give the "
            "smallest."
        ),
        reference_code=_code(
            f"""
            def length(k):
                count = 1
                while k != 1:
                    k = k // 2 if k % 2 == 0 else 3 * k + 1
                    count += 1
                return count
            best = max(range(1, {n}), key=lambda k: (length(k), -k))
            print(best)
            """
        ),
        answer=str(best),
    )


_REGIONS = ("north", "south", "east", "west", "central")
_PRODUCTS = ("anvil", "bolt", "cable", "drill", "easel", "funnel", "gauge")


@family("sales_csv")
def sales_csv(rng: random.Random) -> Problem:
    rows: list[dict[str, Any]] = []
    for i in range(rng.randrange(800, 2000)):
        rows.append(
            {
                "order_id": f"O{i + 1:05d}",
                "region": rng.choice(_REGIONS),
                "product": rng.choice(_PRODUCTS),
                "units": rng.randrange(1, 40),
                "unit_price": f"{rng.randrange(100, 50_000) / 100:.2f}",
                "status": rng.choices(["paid", "refunded", "pending"], [8, 1, 1])[0],
            }
        )
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    region, product = rng.choice(_REGIONS), rng.choice(_PRODUCTS)
    # Here: exact cents with Fractions; the reference sums floats and rounds.
    revenue = sum(
        Fraction(r["units"]) * Fraction(str(r["unit_price"]))
        for r in rows
        if r["region"] == region and r["product"] == product and r["status"] == "paid"
    )
    return Problem(
        family="sales_csv",
        text=(
            f"The file sales.csv lists orders (order_id, region, product, units, unit_price, "
            f"status). What is the total revenue (units × unit_price) of the paid orders of "
            f"{product} in the {region} region? Give it in currency units with two decimals."
        ),
        reference_code=_code(
            f"""
            import csv
            with open("sales.csv", newline="") as f:
                total = sum(
                    int(r["units"]) * float(r["unit_price"])
                    for r in csv.DictReader(f)
                    if r["region"] == {region!r} and r["product"] == {product!r}
                    and r["status"] == "paid"
                )
            print(f"{{total:.2f}}")
            """
        ),
        answer=f"{float(revenue):.2f}",
        files={"sales.csv": buf.getvalue()},
        tolerance=0.005,
    )


_LEVELS = ("DEBUG", "INFO", "WARN", "ERROR")
_EVENTS = ("login failed", "timeout", "payment declined", "disk full", "retry", "cache miss")


@family("log_errors")
def log_errors(rng: random.Random) -> Problem:
    users = [f"u{rng.randrange(100, 999)}" for _ in range(12)]
    lines = []
    for _ in range(rng.randrange(3000, 6000)):
        hour, minute, second = rng.randrange(24), rng.randrange(60), rng.randrange(60)
        level = rng.choices(_LEVELS, [5, 10, 3, 2])[0]
        lines.append(
            (
                f"{hour:02d}:{minute:02d}:{second:02d}",
                level,
                f"user={rng.choice(users)} event={rng.choice(_EVENTS)}",
            )
        )
    lines.sort()
    user, start = rng.choice(users), rng.randrange(0, 14)
    end = start + rng.randrange(5, 11)
    # Here: over the tuples; the reference parses the text.
    count = sum(
        1
        for t, level, msg in lines
        if level == "ERROR" and f"user={user} " in msg and start <= int(t[:2]) < end
    )
    return Problem(
        family="log_errors",
        text=(
            f"The file app.log has one event per line: 'HH:MM:SS LEVEL user=<id> "
            f"event=<text>'. How many ERROR events of user {user} happened from "
            f"{start:02d}:00:00 up to but not including {end:02d}:00:00?"
        ),
        reference_code=_code(
            f"""
            count = 0
            with open("app.log") as f:
                for line in f:
                    time, level, rest = line.split(" ", 2)
                    if level == "ERROR" and rest.startswith("user={user} ") and (
                        {start} <= int(time[:2]) < {end}
                    ):
                        count += 1
            print(count)
            """
        ),
        answer=str(count),
        files={"app.log": "".join(f"{t} {lv} {m}\n" for t, lv, m in lines)},
    )


@family("determinant")
def determinant(rng: random.Random) -> Problem:
    size = rng.randrange(6, 9)
    matrix = [[rng.randrange(-9, 10) for _ in range(size)] for _ in range(size)]
    # Here: exact Gaussian elimination over Fractions; the reference uses Bareiss.
    a = [[Fraction(x) for x in row] for row in matrix]
    det = Fraction(1)
    for col in range(size):
        pivot = next((r for r in range(col, size) if a[r][col] != 0), None)
        if pivot is None:
            det = Fraction(0)
            break
        if pivot != col:
            a[col], a[pivot] = a[pivot], a[col]
            det = -det
        det *= a[col][col]
        for r in range(col + 1, size):
            factor = a[r][col] / a[col][col]
            a[r] = [x - factor * y for x, y in zip(a[r], a[col], strict=True)]
    rows = "\n".join(" ".join(f"{x:3d}" for x in row) for row in matrix)
    return Problem(
        family="determinant",
        text=(
            f"What is the determinant of this {size}×{size} integer matrix (one row per "
            f"line)? Give the exact integer.\n\n{rows}"
        ),
        reference_code=_code(
            f"""
            m = {matrix!r}
            n, sign, prev = len(m), 1, 1
            m = [row[:] for row in m]
            for k in range(n - 1):
                if m[k][k] == 0:
                    swap = next((r for r in range(k + 1, n) if m[r][k] != 0), None)
                    if swap is None:
                        print(0)
                        break
                    m[k], m[swap] = m[swap], m[k]
                    sign = -sign
                for i in range(k + 1, n):
                    for j in range(k + 1, n):
                        m[i][j] = (m[i][j] * m[k][k] - m[i][k] * m[k][j]) // prev
                prev = m[k][k]
            else:
                print(sign * m[n - 1][n - 1])
            """
        ),
        answer=str(int(det)),
    )
