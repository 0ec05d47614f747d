"""The unbiased pass@k estimator (Chen et al., 2021)."""

from __future__ import annotations

from math import comb


def pass_at_k(n: int, c: int, k: int) -> float:
    """Probability that at least one of k samples drawn from n (c of them correct) is correct.

    Computed as 1 - C(n-c, k) / C(n, k), without sampling.

    Args:
        n: samples drawn per task.
        c: correct samples among them.
        k: budget of attempts; must satisfy 1 <= k <= n.
    """
    if not 0 <= c <= n:
        raise ValueError(f"need 0 <= c <= n, got c={c}, n={n}")
    if not 1 <= k <= n:
        raise ValueError(f"need 1 <= k <= n, got k={k}, n={n}")
    if n - c < k:
        return 1.0
    return 1.0 - comb(n - c, k) / comb(n, k)


def default_ks(n: int) -> list[int]:
    """1, then powers of two and multiples of ten up to n, then n itself."""
    ks = {1, n}
    k = 2
    while k < n:
        ks.add(k)
        k *= 2
    ks.update(k for k in (10, 50, 100) if k <= n)
    return sorted(ks)
