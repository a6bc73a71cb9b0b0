"""The paper's claims, each written once: the statement, the statistic that carries its meaning,
and the rule that maps the statistic to a verdict -- fixed here before any result is seen.

A statistic is computed per seed (paired conditions share a seed), then summarised by its mean and
a 95% Student-t interval over seeds. Verdict: `reproduced` when the whole interval lies on the
side the paper claims, `not reproduced` when it lies wholly on the other side, `inconclusive`
when it straddles the threshold (always so with fewer than two seeds).
"""
from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass

REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE = "reproduced", "not reproduced", "inconclusive"

# two-sided 95% Student-t quantiles t_{0.975, df}, df = 1..30; normal beyond
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179,
         2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064,
         2.060, 2.056, 2.052, 2.048, 2.045, 2.042)


def t975(df: int) -> float:
    return _T975[df - 1] if df <= len(_T975) else 1.960


@dataclass(frozen=True)
class Estimate:
    mean: float
    lo: float  # 95% interval; nan with fewer than two values
    hi: float
    n: int

    def __str__(self) -> str:
        if self.n < 2:
            return f"{self.mean:+.2f} (n={self.n}, no interval)"
        return f"{self.mean:+.2f} [{self.lo:+.2f}, {self.hi:+.2f}] (n={self.n})"


def estimate(values: Sequence[float]) -> Estimate:
    """Mean and 95% t interval of per-seed values."""
    n = len(values)
    if n == 0:
        return Estimate(math.nan, math.nan, math.nan, 0)
    m = statistics.fmean(values)
    if n < 2:
        return Estimate(m, math.nan, math.nan, n)
    half = t975(n - 1) * statistics.stdev(values) / math.sqrt(n)
    return Estimate(m, m - half, m + half, n)


def mean_std(values: Sequence[float]) -> str:
    if not values:
        return ""
    if len(values) < 2:
        return f"{values[0]:.1f}"
    return f"{statistics.fmean(values):.1f} ± {statistics.stdev(values):.1f}"


@dataclass(frozen=True)
class Claim:
    id: str  # the section as the paper numbers it, e.g. "section4"
    question: str
    statement: str  # the paper's finding, in its words where we have them
    statistic: str  # what is measured, per seed
    threshold: float  # the statistic's value that separates the two answers
    why: str  # why this statistic and threshold carry the claim
    conditions: tuple[str, ...]  # subset rules pre-trained, one test id each per seed
    figure: str  # how the paper shows it
    # per-seed statistic from {condition: {seed: {metric: value}}}
    compute: Callable[[dict, str], list[float]]

    def verdict(self, results: dict, metric: str) -> tuple[Estimate, str]:
        est = estimate(self.compute(results, metric))
        if est.n < 2 or math.isnan(est.lo):
            return est, INCONCLUSIVE
        if est.lo > self.threshold:
            return est, REPRODUCED
        if est.hi < self.threshold:
            return est, NOT_REPRODUCED
        return est, INCONCLUSIVE


def _relative_drop(results: dict, full: str, part: str, metric: str, seed: int) -> float:
    """How much of `metric` (in % of its full-data value) is lost going from `full` to `part`."""
    a, b = results[full][seed][metric], results[part][seed][metric]
    return 100.0 * (a - b) / a


def _section4(results: dict, metric: str) -> list[float]:
    full, half = "images-per-class=1000", "images-per-class=500"
    seeds = sorted(set(results.get(full, {})) & set(results.get(half, {})))
    return [_relative_drop(results, full, half, "source_top1", s)
            - _relative_drop(results, full, half, metric, s) for s in seeds]


SECTION4 = Claim(
    id="section4",
    question="How many pre-training images per class are sufficient?",
    statement=("Halving the images per class (1000 -> 500) costs transfer far less than it costs "
               "the source task: 1.5 mAP on PASCAL-DET, much less than the drop on ImageNet "
               "classification."),
    statistic=("relative drop of source top-1 minus relative drop of the transfer metric, "
               "1000 -> 500 images per class (percentage points of each metric's full-data value, "
               "paired by seed)"),
    threshold=0.0,
    why=("the claim is a comparison of two drops on different scales, so each drop is taken "
         "relative to its own full-data value; a positive difference means transfer lost "
         "less than the source task. 'Far less' is not quantified by the paper, so itl tests "
         "'less' and reports the size."),
    compute=_section4,
    conditions=tuple(f"images-per-class={n}" for n in (1000, 500, 250, 125, 50)),
    figure="Figure 1: source and transfer performance against images per class",
)

CLAIMS = {c.id: c for c in (SECTION4,)}
