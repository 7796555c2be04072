"""95% intervals for shares of 0/1 judgements: Wilson for one share, Newcombe for a paired difference.

A percentile bootstrap collapses to a point at 0% and 100% (every resample of 0/200 is 0/200, so
"0-0%"), just where a reader most needs to know how sure the figure is. Score intervals do not:

* :func:`wilson_interval` — Wilson's score interval for a proportion (Wilson 1927; Newcombe 1998a,
  method 3). 0 of 200 gives 0-1.9%.
* :func:`paired_difference_interval` — Newcombe's hybrid score interval for the difference of two
  proportions measured on the same subjects (Newcombe 1998, "Improved confidence intervals for the
  difference between binomial proportions based on paired data", Stat Med 17:2635, method 10): the
  two margins' Wilson intervals squared and added, with the correlation of the pair (phi) corrected
  as in that paper (Fagerland, Lydersen & Laake, *Statistical Analysis of Contingency Tables*, 8.5).
* :func:`balanced_interval` — the mean of two independent proportions (the verifier's balanced
  accuracy: its recall on the owner's and on the contacts' messages), by the same square-and-add of
  their Wilson intervals (MOVER, Zou & Donner 2008). At 100% on a handful of messages it says how
  few they were (5 of 5 and 5 of 5: 69-100%), where a bootstrap said "100-100%".
"""

from __future__ import annotations

import math
from collections.abc import Sequence

Z95 = 1.959963984540054  # the standard normal's 97.5th percentile


def wilson_interval(successes: float, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a proportion (95% by default); ``successes`` may be fractional.

    ``n`` of 0: the whole range, (0, 1).
    """
    if n <= 0:
        return 0.0, 1.0
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(max(p * (1 - p), 0.0) / n + z * z / (4 * n * n)) / denom
    low = 0.0 if successes <= 0 else max(0.0, centre - half)
    high = 1.0 if successes >= n else min(1.0, centre + half)
    return low, high


def paired_difference_interval(
    both: int, first_only: int, second_only: int, neither: int, z: float = Z95
) -> tuple[float, float]:
    """Newcombe's (method 10) 95% interval for p1 - p2 from a paired 2x2 table of counts.

    p1 is the share of subjects with the first flag set (``both + first_only``), p2 the share with the
    second (``both + second_only``). Bounds clamped to [-1, 1]; no subjects: (-1, 1).
    """
    n = both + first_only + second_only + neither
    if n <= 0:
        return -1.0, 1.0
    x1, x2 = both + first_only, both + second_only
    p1, p2 = x1 / n, x2 / n
    l1, u1 = wilson_interval(x1, n, z)
    l2, u2 = wilson_interval(x2, n, z)
    phi = _paired_phi(both, first_only, second_only, neither)
    low = (p1 - p2) - math.sqrt(max((p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2, 0.0))
    high = (p1 - p2) + math.sqrt(max((p2 - l2) ** 2 - 2 * phi * (p2 - l2) * (u1 - p1) + (u1 - p1) ** 2, 0.0))
    return max(-1.0, low), min(1.0, high)


def balanced_interval(x1: float, n1: int, x2: float, n2: int, z: float = Z95) -> tuple[float, float]:
    """95% interval of ``(x1/n1 + x2/n2) / 2`` for two independent proportions (MOVER over Wilson)."""
    if n1 <= 0 or n2 <= 0:
        return 0.0, 1.0
    p1, p2 = x1 / n1, x2 / n2
    (l1, u1), (l2, u2) = wilson_interval(x1, n1, z), wilson_interval(x2, n2, z)
    low = p1 + p2 - math.sqrt((p1 - l1) ** 2 + (p2 - l2) ** 2)
    high = p1 + p2 + math.sqrt((u1 - p1) ** 2 + (u2 - p2) ** 2)
    return max(0.0, low / 2), min(1.0, high / 2)


def _paired_phi(a: int, b: int, c: int, d: int) -> float:
    """The pair's correlation as Newcombe's method 10 uses it: 0 when a margin is empty; a positive
    ``ad - bc`` is reduced by n/2 (and floored at 0), a negative one is kept."""
    margins = (a + b) * (c + d) * (a + c) * (b + d)
    if margins == 0:
        return 0.0
    cross, n = a * d - b * c, a + b + c + d
    if cross > n / 2:
        return (cross - n / 2) / math.sqrt(margins)
    return cross / math.sqrt(margins) if cross < 0 else 0.0


def share(flags: Sequence[float]) -> dict:
    """Mean of 0/1 ``flags`` with its Wilson 95% interval: ``{share, low, high, n}``."""
    n = len(flags)
    if not n:
        return {"share": float("nan"), "low": float("nan"), "high": float("nan"), "n": 0}
    low, high = wilson_interval(sum(flags), n)
    return {"share": sum(flags) / n, "low": low, "high": high, "n": n}


def paired_difference(first: Sequence[float], second: Sequence[float]) -> dict:
    """Share of ``first`` minus share of ``second`` (0/1 flags, the same subjects in the same order),
    with Newcombe's paired 95% interval: ``{share, low, high, n}``."""
    if len(first) != len(second):
        raise ValueError(f"paired flags of different lengths: {len(first)} and {len(second)}")
    n = len(first)
    if not n:
        return {"share": float("nan"), "low": float("nan"), "high": float("nan"), "n": 0}
    pairs = [(bool(x), bool(y)) for x, y in zip(first, second, strict=True)]
    both = sum(x and y for x, y in pairs)
    first_only = sum(x and not y for x, y in pairs)
    second_only = sum(y and not x for x, y in pairs)
    low, high = paired_difference_interval(both, first_only, second_only, n - both - first_only - second_only)
    return {"share": (first_only - second_only) / n, "low": low, "high": high, "n": n}
