"""The statistics behind a leaderboard row: spread over seeds, the gap closed, significance.

Every rule that decides whether a number is shown, or shown as n/a, lives here so the
terminal, markdown, HTML, CSV and JSON outputs cannot disagree about it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from scipy import stats

CONFIDENCE = 0.95
ALPHA = 0.05
"""Family-wise error rate of the Holm-corrected tests against the reference method."""

NAN = float("nan")


@dataclass(frozen=True)
class Spread:
    """Mean, sample standard deviation (ddof 1) and a t-distribution confidence interval."""

    n: int
    mean: float
    std: float
    ci_low: float
    ci_high: float


def spread(values: Sequence[float]) -> Spread:
    """Seeds are few (often 3), so the interval uses Student's t with n − 1 degrees of freedom.

    With one seed there is no spread to speak of: std and the interval are NaN, not 0.
    """
    values = [float(v) for v in values if not math.isnan(float(v))]
    n = len(values)
    if n == 0:
        return Spread(0, NAN, NAN, NAN, NAN)
    mean = math.fsum(values) / n
    if n == 1:
        return Spread(1, mean, NAN, NAN, NAN)
    std = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))
    half = stats.t.ppf(0.5 + CONFIDENCE / 2, n - 1) * std / math.sqrt(n)
    return Spread(n, mean, std, mean - half, mean + half)


def welch_p(a: Sequence[float], b: Sequence[float]) -> float:
    """Two-sided p-value of Welch's t-test (unequal variances); NaN when it is undefined.

    Undefined means fewer than two seeds on a side, or no variance on either side (identical
    seeds give no information about noise, so no p-value is claimed).
    """
    if len(a) < 2 or len(b) < 2:
        return NAN
    if spread(a).std == 0 and spread(b).std == 0:
        return NAN
    return float(stats.ttest_ind(a, b, equal_var=False).pvalue)


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm–Bonferroni adjusted p-values, in the input order; NaN entries are not tests.

    The k-th smallest of m p-values is multiplied by (m − k + 1), made monotone and capped
    at 1, so comparing each adjusted value with ALPHA controls the family-wise error rate.
    """
    tested = sorted((p, i) for i, p in enumerate(pvalues) if not math.isnan(p))
    adjusted = [NAN] * len(pvalues)
    running = 0.0
    for rank, (p, index) in enumerate(tested):
        running = max(running, min(1.0, (len(tested) - rank) * p))
        adjusted[index] = running
    return adjusted


def seed_noise(teacher_std: float, student_std: float) -> float:
    """The pooled seed std of teacher and student-only, sqrt((s_t² + s_s²) / 2).

    A reference with one seed has no measurable noise; it counts as 0.
    """
    variances = [s * s for s in (teacher_std, student_std) if not math.isnan(s)]
    return math.sqrt(math.fsum(variances) / 2) if variances else 0.0


def gap_closed(method: float, student: float, teacher: float, higher_is_better: bool,
               noise: float) -> float:
    """(method − student) / (teacher − student), measured in the "better" direction.

    NaN when the teacher is not ahead of the student-only baseline by more than ``noise``:
    a gap inside seed noise (or a teacher behind its student) makes the ratio meaningless.
    Values above 1 mean the method beats the teacher and are kept, not clipped.
    """
    sign = 1.0 if higher_is_better else -1.0
    gap = sign * (teacher - student)
    if math.isnan(gap) or math.isnan(method) or gap <= noise:
        return NAN
    return sign * (method - student) / gap
