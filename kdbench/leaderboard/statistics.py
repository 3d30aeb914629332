"""The statistics behind a leaderboard row: spread over seeds, the gap closed, significance.

Every rule that decides whether a number is shown, or shown as n/a, lives here so the
terminal, markdown, HTML, CSV and JSON outputs cannot disagree about it.
"""

from __future__ import annotations

import math
import warnings
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


def spread(values: Sequence[float], positive: bool = False) -> Spread:
    """Seeds are few (often 3), so the interval uses Student's t with n − 1 degrees of freedom.

    With one seed there is no spread to speak of: std and the interval are NaN, not 0.
    ``positive``: the metric is strictly above 0 (a Fréchet distance), where mean ± t·s/√n of
    three spread-out seeds reaches below 0; the interval is then the t-interval of the values'
    logs, exponentiated (a geometric interval), and NaN if a value is not above 0. Mean and std
    stay those of the values themselves, as every other row shows them.
    """
    values = [float(v) for v in values if not math.isnan(float(v))]
    n = len(values)
    if n == 0:
        return Spread(0, NAN, NAN, NAN, NAN)
    mean, std = _mean_std(values)
    if n == 1:
        return Spread(1, mean, NAN, NAN, NAN)
    if not positive:
        low, high = _t_interval(mean, std, n)
    elif min(values) > 0:
        low, high = (math.exp(end) for end in _t_interval(*_mean_std([math.log(v) for v in values]), n))
    else:
        low, high = NAN, NAN
    return Spread(n, mean, std, low, high)


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample std (ddof 1; NaN for a single value)."""
    mean = math.fsum(values) / len(values)
    if len(values) < 2:
        return mean, NAN
    return mean, math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (len(values) - 1))


def _t_interval(mean: float, std: float, n: int) -> tuple[float, float]:
    half = stats.t.ppf(0.5 + CONFIDENCE / 2, n - 1) * std / math.sqrt(n)
    return mean - half, mean + half


def welch_p(a: Sequence[float], b: Sequence[float]) -> float:
    """Two-sided p-value of Welch's t-test (unequal variances); NaN when it is undefined.

    Undefined means fewer than two seeds on a side, or no variance on either side (identical
    seeds give no information about noise, so no p-value is claimed).
    """
    if len(a) < 2 or len(b) < 2:
        return NAN
    if spread(a).std == 0 and spread(b).std == 0:
        return NAN
    with warnings.catch_warnings():  # one side's identical seeds: scipy warns of cancellation, the test holds
        warnings.simplefilter("ignore", RuntimeWarning)
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


LAST_EPOCHS = 3
"""How many of a run's last logged epochs its convergence slope is fitted over."""


def slope(points: Sequence[tuple[int, float]], last: int = LAST_EPOCHS) -> float:
    """Least-squares slope, per epoch, of the last ``last`` logged epochs of one curve.

    ``points`` are (epoch, value) pairs as MLflow's history gives them, in any order; an epoch
    logged twice counts once, with its later value. NaN with fewer than two epochs: a single
    point has no slope, and a missing curve is not a flat one.
    """
    by_epoch = {int(step): float(value) for step, value in points if not math.isnan(float(value))}
    kept = sorted(by_epoch.items())[-last:]
    if len(kept) < 2:
        return NAN
    x_mean = math.fsum(x for x, _ in kept) / len(kept)
    y_mean = math.fsum(y for _, y in kept) / len(kept)
    return (math.fsum((x - x_mean) * (y - y_mean) for x, y in kept)
            / math.fsum((x - x_mean) ** 2 for x, _ in kept))


def still_improving(slope_per_epoch: float, std: float, higher_is_better: bool) -> bool:
    """Whether a curve still improves, per epoch, by more than its seeds' spread of final values.

    Then one more epoch would move the row further than the noise the table is read against, so
    the comparison is of runs stopped early, not of methods. Unknown (False) with one seed.
    """
    if math.isnan(slope_per_epoch) or math.isnan(std):
        return False
    improving = slope_per_epoch if higher_is_better else -slope_per_epoch
    return improving > 0 and improving > std
