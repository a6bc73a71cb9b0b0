"""The paper's claims (Sections 4 to 6), each written once: the statement, the conditions it needs,
the statistic that carries its meaning, and the rule that maps the statistic to a verdict --
fixed here before any result is seen.

A statistic is computed per seed (paired conditions share a seed), then summarised by its mean and
a 95% Student-t interval over seeds. Verdict: `reproduced` when the whole interval lies on the
side the paper claims, `not reproduced` when it lies wholly on the other side, `inconclusive`
when it straddles the threshold (always so with fewer than two seeds).

"Nearly as well" / "a small drop" is read as: transfer loses less than NEAR percent of its
full-data value. NEAR = 5 comes from the paper's own example of a small drop: 127 classes
instead of 1000 cost 2.8 of 58.3 mAP on PASCAL-DET, 4.8%.
"""
from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from itl import labels, pipeline, scales, wordnet

REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE = "reproduced", "not reproduced", "inconclusive"
NEAR = 5.0  # % of the full-data transfer value; see the module docstring
FULL = "full"

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


# ---------------------------------------------------------------- conditions per scale


def _leaves(scale: scales.Scale) -> list[str]:
    return labels.dataset_leaves(scale.source)


def level(scale: scales.Scale, scheme: str, paper_count: int) -> str:
    """The subset rule of the analogue of one of the paper's class sets."""
    k = labels.chosen_levels(wordnet.load(), _leaves(scale))[(scheme, paper_count)]
    return f"labels={scheme}:{k}"


def coarse(scale: scales.Scale) -> str:
    """The analogue of the paper's 127-class (up-down) set."""
    return level(scale, "up-down", 127)


def fine_probe(scale: scales.Scale) -> str:
    """Source images with their fine (leaf) labels: the source task a coarse model is scored on
    by re-training only its last layer (paper Section 5.1)."""
    return scale.source


def coarse_probe(scale: scales.Scale) -> str:
    return f"{scale.source}|{coarse(scale)}"


def _frozen(target: Callable[[scales.Scale], str]) -> Callable[[scales.Scale], tuple]:
    """Probes of a claim: linear probe and k-NN on frozen features, on target(scale)."""
    return lambda s: ((target(s), "linear"), (target(s), "knn"))


def _seeds(results: dict, *conds: str) -> list[int]:
    common = None
    for c in conds:
        s = set(results.get(c, {}))
        common = s if common is None else common & s
    return sorted(common or [])


def _rel_drop(results: dict, full: str, part: str, metric: str, seed: int) -> float:
    """How much of `metric` (in % of its full-data value) is lost going from `full` to `part`."""
    a, b = results[full][seed][metric], results[part][seed][metric]
    return 100.0 * (a - b) / a


def _excess_drop(full: str, part: str, source: str, r: dict, scale: scales.Scale) -> list[float]:
    """Per seed: relative drop of the `source` metric minus relative drop of the transfer
    metric, from condition `full` to `part`."""
    return [_rel_drop(r, full, part, source, s) - _rel_drop(r, full, part, _primary(scale), s)
            for s in _seeds(r, full, part)]


def _transfer_drop(part: Callable[[scales.Scale], str]) -> Callable[[dict, scales.Scale], list]:
    """The per-seed relative drop of the transfer metric from the full source to `part`."""
    def compute(r: dict, scale: scales.Scale) -> list[float]:
        p = part(scale)
        return [_rel_drop(r, FULL, p, _primary(scale), s) for s in _seeds(r, FULL, p)]
    return compute


def _diff(results: dict, a: str, b: str, metric_a: str, metric_b: str | None = None) -> list:
    return [results[a][s][metric_a] - results[b][s][metric_b or metric_a]
            for s in _seeds(results, a, b)]


# ---------------------------------------------------------------- claims


@dataclass(frozen=True)
class Claim:
    id: str  # the section as the paper numbers it, e.g. "section5_1"
    question: str
    statement: str  # the paper's finding
    statistic: str  # what is measured, per seed
    threshold: float  # the statistic's value that separates the two answers
    direction: str  # "above": the paper claims statistic > threshold; "below": < threshold
    why: str  # why this statistic and threshold carry the claim
    conditions: Callable[[scales.Scale], tuple[str, ...]]  # subset rules pre-trained
    compute: Callable[[dict, scales.Scale], list[float]]  # per-seed statistic
    probes: Callable[[scales.Scale], tuple[tuple[str, str], ...]] = lambda s: ()
    figure: str = ""

    def verdict(self, results: dict, scale: scales.Scale) -> tuple[Estimate, str]:
        est = estimate(self.compute(results, scale))
        if est.n < 2 or math.isnan(est.lo):
            return est, INCONCLUSIVE
        above, below = est.lo > self.threshold, est.hi < self.threshold
        if (above and self.direction == "above") or (below and self.direction == "below"):
            return est, REPRODUCED
        if above or below:
            return est, NOT_REPRODUCED
        return est, INCONCLUSIVE


def _primary(scale: scales.Scale) -> str:
    return pipeline.primary_metric(scale.name)


IPC = (1000, 500, 250, 125, 50)


def _section4(r: dict, scale: scales.Scale) -> list[float]:
    return _excess_drop("images-per-class=1000", "images-per-class=500", "source_top1", r, scale)


SECTION4 = Claim(
    id="section4",
    question="How many pre-training images per class are sufficient?",
    statement=("Halving the images per class (1000 -> 500) costs transfer far less than it costs "
               "the source task: 1.5 mAP on PASCAL-DET, much less than the drop on ImageNet "
               "classification."),
    statistic=("relative drop of source top-1 minus relative drop of the transfer metric, "
               "1000 -> 500 images per class (% of each metric's full-data value)"),
    threshold=0.0, direction="above",
    why=("the two drops are on different scales, so each is taken relative to its own full-data "
         "value; a positive difference means transfer lost less than the source task. 'Far "
         "less' is not quantified by the paper, so itl tests 'less' and reports the size."),
    conditions=lambda s: tuple(f"images-per-class={n}" for n in IPC),
    compute=_section4,
    figure="Figure 1: source and transfer performance against images per class",
)

PAPER_LEVELS = labels.PAPER_LEVELS  # (scheme, classes) of the paper's class sets


def _levels(scale: scales.Scale) -> tuple[str, ...]:
    return tuple(dict.fromkeys(level(scale, sch, n) for sch, n in PAPER_LEVELS))


def _section5_1(r: dict, scale: scales.Scale) -> list[float]:
    return _excess_drop(FULL, level(scale, "down-up", 486), f"{fine_probe(scale)}/linear", r,
                        scale)


SECTION5_1 = Claim(
    id="section5_1",
    question="How many pre-training classes are sufficient?",
    statement=("Fewer, coarser classes (WordNet levels of 918 to 9 classes, all images kept) cost "
               "transfer little: about half the classes (486) cost transfer less than they cost "
               "fine-grained source accuracy (last layer re-trained on the 1000 classes)."),
    statistic=("relative drop of fine-class source accuracy (linear probe on the leaf classes) "
               "minus relative drop of the transfer metric, full -> the 486-class analogue"),
    threshold=0.0, direction="above",
    why=("as in Section 4, a positive difference means the coarser labels hurt transfer less "
         "than they hurt the source task; source accuracy of a coarse model is measured as the "
         "paper did, by re-training only the last layer for the fine classes."),
    conditions=lambda s: (FULL,) + _levels(s),
    probes=_frozen(fine_probe),
    compute=_section5_1,
    figure="Figure 2: source and transfer performance against the number of classes",
)


SECTION5_2 = Claim(
    id="section5_2",
    question="Is fine-grained recognition necessary for learning good features?",
    statement=("No: pre-training on 127 coarse classes instead of 1000 costs only 2.8 mAP on "
               "PASCAL-DET, and for some transfer tasks fewer classes transfer better."),
    statistic="relative drop of the transfer metric, all classes -> the 127-class analogue (%)",
    threshold=NEAR, direction="below",
    why=f"'only a small drop' read as less than {NEAR:g}% of the full-data value (module doc).",
    conditions=lambda s: (FULL, coarse(s)),
    compute=_transfer_drop(coarse),
)


def _section5_3(r: dict, scale: scales.Scale) -> list[float]:
    return _diff(r, coarse(scale), pipeline.RANDOM, f"{fine_probe(scale)}/linear")


SECTION5_3 = Claim(
    id="section5_3",
    question="Does training on coarse classes induce features that tell fine classes apart?",
    statement=("Yes: features of a network trained on coarse classes distinguish fine classes it "
               "never saw labelled, far better than random features."),
    statistic=("fine-class linear-probe accuracy of the 127-class analogue minus that of a "
               "randomly initialised network (points)"),
    threshold=0.0, direction="above",
    why="coarse-trained features carry fine information if they beat random features on it.",
    conditions=lambda s: (FULL, coarse(s)),
    probes=_frozen(fine_probe),
    compute=_section5_3,
)


def _section5_4(r: dict, scale: scales.Scale) -> list[float]:
    return _diff(r, FULL, coarse(scale), f"{coarse_probe(scale)}/linear")


SECTION5_4 = Claim(
    id="section5_4",
    question="Does training on fine classes help recognise coarse classes?",
    statement=("itl's reading of Section 5.4: features trained on the fine classes classify the "
               "coarse classes better than features trained on the coarse classes themselves."),
    statistic=("coarse-class linear-probe accuracy of the fine-trained network minus that of the "
               "127-class analogue (points)"),
    threshold=0.0, direction="above",
    why="both networks are scored the same way (a linear probe on the coarse labels).",
    conditions=lambda s: (FULL, coarse(s)),
    probes=_frozen(coarse_probe),
    compute=_section5_4,
)

BUDGET_CLASSES, BUDGET_IMAGES = "budget=500x1000", "budget=1000x500"


def _section5_5(r: dict, scale: scales.Scale) -> list[float]:
    return _diff(r, BUDGET_CLASSES, BUDGET_IMAGES, _primary(scale))


SECTION5_5 = Claim(
    id="section5_5",
    question="For a fixed image budget, more classes or more images per class?",
    statement="Fewer classes with more images each transfer slightly better.",
    statistic=("transfer metric of half the classes x all their images minus all the classes x "
               "half their images (same number of images; points)"),
    threshold=0.0, direction="above",
    why="the paper's comparison at a fixed budget, read as a sign.",
    conditions=lambda s: (BUDGET_CLASSES, BUDGET_IMAGES),
    compute=_section5_5,
)


def _without(scale: scales.Scale) -> str:
    return f"without={scale.overlap}"


SECTION5_6A = Claim(
    id="section5_6a",
    question="Does pre-training need the target's classes? (overlapping classes removed)",
    statement=("No: ImageNet without the 229 classes under the PASCAL synsets (771 left) "
               "transfers to PASCAL nearly as well as all 1000 classes."),
    statistic="relative drop of the transfer metric, full -> target-overlapping classes removed (%)",
    threshold=NEAR, direction="below",
    why=f"'nearly as well' read as less than {NEAR:g}% of the full-data value (module doc).",
    conditions=lambda s: (FULL, _without(s)),
    compute=_transfer_drop(_without),
)

SPLITS = ("random", "minimal")


def _halves(scale: scales.Scale) -> tuple[tuple[str, str], ...]:
    return tuple((f"{scale.source}|split={k}:b", m) for k in SPLITS for m in ("linear", "knn"))


def _section5_6b(r: dict, scale: scales.Scale) -> list[float]:
    a, b = "split=random:a", "split=minimal:a"
    return _diff(r, a, b, f"{scale.source}|split=random:b/linear",
                 f"{scale.source}|split=minimal:b/linear")


SECTION5_6B = Claim(
    id="section5_6b",
    question="Does pre-training need the target's classes? (unseen classes, 500/500 splits)",
    statement=("Features trained on one half of the classes hold up on the other half's classes "
               "and on the transfer tasks, less so across the 'minimal' split whose halves "
               "share the fewest WordNet ancestors."),
    statistic=("linear-probe accuracy on half B's classes of the half-A model: random split minus "
               "minimal split (points)"),
    threshold=0.0, direction="above",
    why="'less so across the minimal split' is a sign: unseen classes far in WordNet are harder.",
    conditions=lambda s: ("split=random:a", "split=minimal:a"),
    probes=_halves,
    compute=_section5_6b,
)


def _extra(scale: scales.Scale) -> str:
    if scale.extra is None:
        raise ValueError(f"scale {scale.name} names no held-out extra classes")
    return f"extra={len(labels.dataset_leaves(scale.extra))}"


def _section6(r: dict, scale: scales.Scale) -> list[float]:
    return _diff(r, _extra(scale), FULL, _primary(scale))


SECTION6 = Claim(
    id="section6",
    question="Is more pre-training data always better?",
    statement=("No: adding data from extra classes unrelated to the target does not necessarily "
               "help transfer, and can hurt."),
    statistic="transfer metric with the extra classes added minus without them (points)",
    threshold=0.0, direction="below",
    why=("reproduced when the extra data measurably hurts, not reproduced when it measurably "
         "helps; no measurable effect (inconclusive) is also consistent with 'not necessarily'."),
    conditions=lambda s: (FULL, _extra(s)),
    compute=_section6,
)

CLAIMS = {c.id: c for c in (SECTION4, SECTION5_1, SECTION5_2, SECTION5_3, SECTION5_4,
                            SECTION5_5, SECTION5_6A, SECTION5_6B, SECTION6)}
