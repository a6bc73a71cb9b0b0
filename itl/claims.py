"""The paper's claims (Sections 4 to 6), each written once: the question, the conditions it
needs, the statistic that carries its meaning, its margin and the rule that maps the statistic to
a verdict -- fixed here, and committed, before the runs that judge them.

**What is measured.** Transfer effects are shares of what pre-training buys on the same target:
a condition X keeps `100 (T(X) - T(random)) / (T(full) - T(random))` percent of the full-data
network's gain over a randomly initialised network (same target, same seed). The source task's
own accuracy is a share of its gain over chance: `100 (S(X) - chance) / (S(full) - chance)`. On
this scale a drop of 3 points means the same thing whether pre-training buys 12 points or 40,
and "transfer drops less than the source" is not built into the measure (a relative drop of the
raw value, as in protocol v1, hides the random-init floor).

**The primary target**, named before the runs: the scale's primary metric (pipeline.primary_metric:
PASCAL-DET at paper scale; at small scale with detection off, CIFAR-10 fine-tuning, which plays
PASCAL's role, averaged over the scale's fine-tuning repeats). The second classification target
(15-Scene, SUN-CLS's role) is reported as secondary and never judged.

**The statistic** is computed per seed (paired conditions share a seed), then summarised by its
mean and a 95% Student-t interval over seeds. **The rule**: a claim is `above` (the paper says the
statistic exceeds the threshold) or `below`; the threshold is the claim's margin. `reproduced`
when the whole interval lies on the paper's side, `not reproduced` when it lies wholly on the
other side, `inconclusive` when it straddles the threshold (always with fewer than two seeds, or
when a seed's gain is not positive: a share of nothing is undefined). Every report also shows
the verdict at half and at twice the margin, so a reader can see how much hangs on it.

**What a seed replicates** (`Scale.replicate`). Where each seed has its own pre-training (every
scale but paper), the interval holds the variance of pre-training and fine-tuning. Where the
seeds replicate only the fine-tunings of one pre-training per condition (the paper scale's
default, as the authors ran it), it holds the fine-tunings' variance only, and a statistic that
reads no fine-tuned result (probes, source accuracy: Sections 5.3, 5.4, 5.6b, Section 4's
ceiling) is one measurement, with no interval, so `inconclusive` by the rule; `Claim.variance`
says which, and every report shows it.

**Versions.** Claims v3 (`CLAIMS`, at the end of this module; every scale but `small-v2`)
changes what issue 21 found wrong with v2 (`CLAIMS_V2`, kept to re-derive the published small
v2 verdicts): NEAR is 20, calibrated on the paper's own 2.8 mAP; Section 4 can be "untestable at
this scale"; 5.1 measures both sides over a random network; 5.4 is non-inferiority; 5.5 draws
its classes stratified by the target; 5.6a removes PASCAL's classes with CIFAR-10's beside
(docs/claims-v3.md). What follows describes v2; v3 keeps it where not said otherwise.

**The margins** (in % of the pre-training gain):
- NEAR = 10 (v2; v3: 20): the largest loss still "nearly as well" / "a small drop", and the largest gain
  still "does not help". The paper's one quantified small drop, 127 classes instead of 1000,
  costs 2.8 mAP on PASCAL-DET; against the ~18 mAP that ImageNet pre-training added over
  training from scratch on VOC 2007 in that era (R-CNN from scratch: about 40.7 mAP, Agrawal
  et al. 2014, against 58.3 here) that is about 15% of the gain, so 10 is stricter than the
  paper's own example; 5 and 20 are shown beside it.
- EFFECT = 5: the smallest difference between two shares that itl calls an effect ("far less",
  "better", "less so"): a twentieth of what pre-training buys. The paper quantifies none of
  these comparisons.
- RECOVER = 50: Section 5.3's "far better than random features" read as: coarse training
  recovers more than half of the fine-class gain that fine training gives.
"""
from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from itl import labels, pipeline, scales, wordnet

REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE = "reproduced", "not reproduced", "inconclusive"
UNTESTABLE = "untestable at this scale"  # claims v3: the statistic's ceiling lies inside the
# margin, so even a perfect result could not reproduce the claim
NEAR_V2 = 10.0  # claims v2's NEAR (% of the pre-training gain); see the module docstring
EFFECT = 5.0  # % of the pre-training gain
RECOVER = 50.0  # % of the fine-class gain (Section 5.3)
FACTORS = (0.5, 1.0, 2.0)  # the margin, and half and twice it, in every report
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


@dataclass(frozen=True)
class PaperValue:
    """The claim's statistic as the paper's own numbers give it: a point, with where each
    number comes from."""
    value: float
    how: str  # the arithmetic, on the paper's numbers
    source: str

    def estimate(self) -> Estimate:
        return Estimate(self.value, self.value, self.value, 1)


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
    used, k = labels.chosen_levels(wordnet.load(), _leaves(scale))[(scheme, paper_count)]
    return f"labels={used}:{k}"


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


def share(value: float, floor: float, top: float) -> float:
    """`value` as a % of the way from `floor` to `top` (nan when top <= floor: no gain)."""
    return 100.0 * (value - floor) / (top - floor) if top > floor else math.nan


def _chance(classes: int) -> float:
    return 100.0 / classes


def transfer_kept(r: dict, cond: str, seed: int, metric: str) -> float:
    """% of the full-data network's transfer gain over random init that `cond` keeps."""
    return share(r[cond][seed][metric], r[pipeline.RANDOM][seed][metric], r[FULL][seed][metric])


def source_kept(r: dict, cond: str, seed: int, full: str = FULL) -> float:
    """% of the full-data network's source gain over chance that `cond` keeps (same classes)."""
    floor = _chance(r[full][seed]["source_classes"])
    return share(r[cond][seed]["source_top1"], floor, r[full][seed]["source_top1"])


def _seeds(results: dict, *conds: str) -> list[int]:
    common = None
    for c in conds + (pipeline.RANDOM,):
        s = set(results.get(c, {}))
        common = s if common is None else common & s
    return sorted(common or [])


def _full_alias(r: dict, full: str) -> dict:
    """Results where FULL also names condition `full` (images-per-class=1000 is the full set)."""
    return r if FULL in r or full not in r else {**r, FULL: r[full]}


# ---------------------------------------------------------------- claims

Statistic = Callable[[dict, scales.Scale, str], list[float]]  # (results, scale, metric) -> per seed


@dataclass(frozen=True)
class Claim:
    id: str  # the section as the paper numbers it, e.g. "section5_1"
    question: str
    statement: str  # the paper's finding
    statistic: str  # what is measured, per seed
    margin: float  # the threshold, in the statistic's units
    direction: str  # "above": the paper claims statistic > margin; "below": < margin
    why: str  # why this statistic and margin carry the claim
    conditions: Callable[[scales.Scale], tuple[str, ...]]  # subset rules pre-trained
    compute: Statistic  # per-seed statistic on a transfer metric
    probes: Callable[[scales.Scale], tuple[tuple[str, str], ...]] = lambda s: ()
    figure: str = ""
    uses_target: bool = True  # False: the statistic reads probes only (no secondary verdict)
    ceiling: Callable[[dict, scales.Scale], list[float]] | None = None  # per seed, the most
    # the statistic could reach (Section 4: the source's own loss); its whole interval below
    # the threshold makes the claim UNTESTABLE at that scale (claims v3)
    paper: tuple["PaperValue", ...] = ()  # the statistic computed from the paper's own numbers
    # (claims v3): the calibration test requires each to give REPRODUCED

    @property
    def threshold(self) -> float:
        return self.margin

    def varies(self, scale: scales.Scale) -> bool:
        """Whether the statistic can differ between seeds: always where each seed has its own
        pre-training; where the seeds replicate only the fine-tunings (the paper scale's
        default), only if it reads a fine-tuned transfer result (probes and source accuracy
        are then one network's, the same for every seed)."""
        return scale.replicate == scales.PRETRAINING or self.uses_target

    def variance(self, scale: scales.Scale) -> str:
        """What the spread of the statistic over seeds, and so its interval, is made of."""
        return scale.variance(self.uses_target)

    def per_seed(self, results: dict, scale: scales.Scale, metric: str | None = None) -> list:
        """The statistic per seed; one value where it cannot vary between seeds (`varies`):
        copies of one measurement are not replicates, so it then has no interval."""
        values = self.compute(results, scale, metric or _primary(scale))
        return values if self.varies(scale) else values[:1]

    def verdict(self, results: dict, scale: scales.Scale, factor: float = 1.0,
                metric: str | None = None) -> tuple[Estimate, str]:
        """Estimate and verdict at `factor` times the margin, on `metric` (default: primary)."""
        values = self.per_seed(results, scale, metric)
        if any(math.isnan(v) for v in values):  # a seed without gain: its share is undefined
            return Estimate(math.nan, math.nan, math.nan, len(values)), INCONCLUSIVE
        est = estimate(values)
        if self.ceiling is not None:  # the source's own: one value per pre-training
            top = estimate(_per_pretraining(self.ceiling(results, scale), scale))
            if top.n >= 2 and not math.isnan(top.hi) and top.hi < self.margin * factor:
                return est, UNTESTABLE
        return est, self.decide(est, factor)

    def decide(self, est: Estimate, factor: float = 1.0) -> str:
        """The rule: the interval wholly on the paper's side of the threshold, wholly on the
        other, or straddling it (a point, lo = hi = mean, is decided by its value: the
        calibration test applies the rule so to the paper's own numbers)."""
        if est.n < 1 or math.isnan(est.lo):
            return INCONCLUSIVE
        t = self.margin * factor
        above, below = est.lo > t, est.hi < t
        if (above and self.direction == "above") or (below and self.direction == "below"):
            return REPRODUCED
        if above or below:
            return NOT_REPRODUCED
        return INCONCLUSIVE

    def verdicts(self, results: dict, scale: scales.Scale,
                 metric: str | None = None) -> dict[float, str]:
        """{factor: verdict} at half, once and twice the margin."""
        return {f: self.verdict(results, scale, f, metric)[1] for f in FACTORS}


def _per_pretraining(values: list[float], scale: scales.Scale) -> list[float]:
    """Per-seed values of a statistic that reads only pre-trainings (source accuracy, probes):
    one per pre-training (the first seed's, where the seeds replicate only fine-tunings)."""
    return values if scale.replicate == scales.PRETRAINING else values[:1]


def _primary(scale: scales.Scale) -> str:
    return pipeline.primary_metric(scale)


def secondary_metric(scale: scales.Scale) -> str | None:
    """Fine-tuning on the second classification target, reported beside the primary."""
    primary = _primary(scale)
    others = [f"{t}/finetune" for t in scale.targets if f"{t}/finetune" != primary]
    return others[0] if others else None


def halving_cost(r: dict) -> Estimate:
    """Source top-1 (points) lost by halving the images per class (Section 4's premise: the
    source network must be data-limited for the question to mean anything)."""
    a, b = "images-per-class=1000", "images-per-class=500"
    r = _full_alias(r, a)
    seeds = _distinct_pretrainings(r, sorted(set(r.get(FULL, {})) & set(r.get(b, {}))), FULL, b)
    return estimate([r[FULL][s]["source_top1"] - r[b][s]["source_top1"] for s in seeds])


def _distinct_pretrainings(r: dict, seeds: list[int], *conds: str) -> list[int]:
    """The seeds whose pre-trainings of `conds` no earlier seed shares (by their runs, where
    the results name them): seeds that fine-tune one pre-training measure its source once."""
    out, seen = [], set()
    for s in seeds:
        runs = tuple(r[c][s].get("pretrain_run", (c, s)) for c in conds)
        if runs not in seen:
            seen.add(runs)
            out.append(s)
    return out


def train_val_gap(r: dict) -> tuple[Estimate, Estimate, Estimate]:
    """The full-data network's train and validation top-1 and their gap (points)."""
    full = r.get(FULL) or r.get("images-per-class=1000", {})
    seeds = _distinct_pretrainings({FULL: full}, [s for s in sorted(full)
                                                  if "source_train_top1" in full[s]], FULL)
    tr = [full[s]["source_train_top1"] for s in seeds]
    va = [full[s]["source_top1"] for s in seeds]
    return estimate(tr), estimate(va), estimate([a - b for a, b in zip(tr, va)])


IPC = (1000, 500, 250, 125, 50)


def _section4(r: dict, scale: scales.Scale, metric: str) -> list[float]:
    full, half = "images-per-class=1000", "images-per-class=500"
    r = _full_alias(r, full)
    return [(100 - source_kept(r, half, s)) - (100 - transfer_kept(r, half, s, metric))
            for s in _seeds(r, FULL, half)]


SECTION4 = Claim(
    id="section4",
    question="How many pre-training images per class are sufficient?",
    statement=("Halving the images per class (1000 -> 500) costs transfer far less than it costs "
               "the source task: 1.5 mAP on PASCAL-DET, much less than the drop on ImageNet "
               "classification."),
    statistic=("share of the source's gain over chance lost by halving the images per class "
               "minus share of the transfer gain over random init lost (points of %)"),
    margin=EFFECT, direction="above",
    why=("both losses on the scale of what they could lose, so neither side is favoured; 'far "
         "less' read as a difference of at least EFFECT (5% of the gain)."),
    conditions=lambda s: tuple(f"images-per-class={n}" for n in IPC),
    compute=_section4,
    figure="Figure 1: source and transfer performance against images per class",
)

PAPER_LEVELS = labels.PAPER_LEVELS  # (scheme, classes) of the paper's class sets


def _levels(scale: scales.Scale) -> tuple[str, ...]:
    return tuple(dict.fromkeys(level(scale, sch, n) for sch, n in PAPER_LEVELS))


def _fine(scale: scales.Scale) -> str:
    return f"{fine_probe(scale)}/linear"


def _section5_1(r: dict, scale: scales.Scale, metric: str) -> list[float]:
    half = level(scale, "down-up", 486)
    fine, n = _fine(scale), len(labels.dataset_leaves(scale.source))
    return [(100 - share(r[half][s][fine], _chance(n), r[FULL][s][fine]))
            - (100 - transfer_kept(r, half, s, metric)) for s in _seeds(r, FULL, half)]


SECTION5_1 = Claim(
    id="section5_1",
    question="How many pre-training classes are sufficient?",
    statement=("Fewer, coarser classes (WordNet levels of 918 to 9 classes, all images kept) cost "
               "transfer little: about half the classes (486) cost transfer less than they cost "
               "fine-grained source accuracy (last layer re-trained on the 1000 classes)."),
    statistic=("share of the fine-class source gain over chance lost by the 486-class analogue "
               "(linear probe on the leaf classes) minus share of the transfer gain lost "
               "(points of %)"),
    margin=EFFECT, direction="above",
    why=("as in Section 4, on the scale of what each side could lose; the coarse network's "
         "source accuracy is measured as the paper did, by re-training only the last layer on "
         "the fine classes."),
    conditions=lambda s: (FULL,) + _levels(s),
    probes=_frozen(fine_probe),
    compute=_section5_1,
    figure="Figure 2: source and transfer performance against the number of classes",
)


def _transfer_lost(part: Callable[[scales.Scale], str]) -> Statistic:
    """Per seed: share of the transfer gain lost from the full source to `part`."""
    def compute(r: dict, scale: scales.Scale, metric: str) -> list[float]:
        p = part(scale)
        return [100 - transfer_kept(r, p, s, metric) for s in _seeds(r, FULL, p)]
    return compute


SECTION5_2 = Claim(
    id="section5_2",
    question="Is fine-grained recognition necessary for learning good features?",
    statement=("No: pre-training on 127 coarse classes instead of 1000 costs only 2.8 mAP on "
               "PASCAL-DET, and for some transfer tasks fewer classes transfer better."),
    statistic="share of the transfer gain lost with the 127-class analogue (%)",
    margin=NEAR_V2, direction="below",
    why=f"'only a small drop' read as less than NEAR ({NEAR_V2:g}% of the gain; module doc).",
    conditions=lambda s: (FULL, coarse(s)),
    compute=_transfer_lost(coarse),
)


def _section5_3(r: dict, scale: scales.Scale, metric: str) -> list[float]:
    c, fine = coarse(scale), _fine(scale)
    return [share(r[c][s][fine], r[pipeline.RANDOM][s][fine], r[FULL][s][fine])
            for s in _seeds(r, FULL, c)]


SECTION5_3 = Claim(
    id="section5_3",
    question="Does training on coarse classes induce features that tell fine classes apart?",
    statement=("Yes: features of a network trained on coarse classes distinguish fine classes it "
               "never saw labelled, far better than random features."),
    statistic=("share of the fine-trained network's fine-class linear-probe gain over random "
               "features that the 127-class analogue recovers (%)"),
    margin=RECOVER, direction="above",
    why=("beating random features can hardly fail; 'far better' read as recovering more than "
         "half of what fine-class training gives (RECOVER)."),
    conditions=lambda s: (FULL, coarse(s)),
    probes=_frozen(fine_probe),
    compute=_section5_3,
    uses_target=False,
)


def _section5_4(r: dict, scale: scales.Scale, metric: str) -> list[float]:
    c, q = coarse(scale), f"{coarse_probe(scale)}/linear"
    out = []
    for s in _seeds(r, FULL, c):
        own_gain = r[c][s][q] - r[pipeline.RANDOM][s][q]
        out.append(100.0 * (r[FULL][s][q] - r[c][s][q]) / own_gain if own_gain > 0 else math.nan)
    return out


SECTION5_4 = Claim(
    id="section5_4",
    question="Does training on fine classes help recognise coarse classes?",
    statement=("itl's reading of Section 5.4: features trained on the fine classes classify the "
               "coarse classes better than features trained on the coarse classes themselves."),
    statistic=("coarse-class linear-probe accuracy of the fine-trained network minus that of "
               "the 127-class analogue, as a share of the analogue's own gain over random "
               "features (%)"),
    margin=EFFECT, direction="above",
    why="both networks scored the same way (a linear probe on the coarse labels); EFFECT.",
    conditions=lambda s: (FULL, coarse(s)),
    probes=_frozen(coarse_probe),
    compute=_section5_4,
    uses_target=False,
)

BUDGET_CLASSES, BUDGET_IMAGES = "budget=500x1000", "budget=1000x500"


def _section5_5(r: dict, scale: scales.Scale, metric: str) -> list[float]:
    return [transfer_kept(r, BUDGET_CLASSES, s, metric) - transfer_kept(r, BUDGET_IMAGES, s, metric)
            for s in _seeds(r, FULL, BUDGET_CLASSES, BUDGET_IMAGES)]


SECTION5_5 = Claim(
    id="section5_5",
    question="For a fixed image budget, more classes or more images per class?",
    statement="Fewer classes with more images each transfer slightly better.",
    statistic=("share of the transfer gain kept by half the classes x all their images minus "
               "that kept by all the classes x half their images (same images; points of %)"),
    margin=EFFECT, direction="above",
    why="the paper's comparison at a fixed budget; 'better' read as at least EFFECT.",
    conditions=lambda s: (FULL, BUDGET_CLASSES, BUDGET_IMAGES),
    compute=_section5_5,
)


def _without(scale: scales.Scale) -> str:
    return f"without={scale.overlap}"


SECTION5_6A = Claim(
    id="section5_6a",
    question="Does pre-training need the target's classes? (overlapping classes removed)",
    statement=("No: ImageNet without the 229 classes under the PASCAL synsets (771 left) "
               "transfers to PASCAL nearly as well as all 1000 classes."),
    statistic="share of the transfer gain lost with the target-overlapping classes removed (%)",
    margin=NEAR_V2, direction="below",
    why=f"'nearly as well' read as losing less than NEAR ({NEAR_V2:g}% of the gain; module doc).",
    conditions=lambda s: (FULL, _without(s)),
    compute=_transfer_lost(_without),
)

SPLITS = ("random", "minimal")
HALVES = ("a", "b")


def _half(scale: scales.Scale, split: str, h: str) -> str:
    return f"{scale.source}|split={split}:{h}/linear"


def _halves(scale: scales.Scale) -> tuple[tuple[str, str], ...]:
    return tuple((f"{scale.source}|split={k}:{h}", m) for k in SPLITS for h in HALVES
                 for m in ("linear", "knn"))


def cross_kept(r: dict, scale: scales.Scale, split: str, seed: int) -> float:
    """Mean over both directions of the split: % of a half's own gain over random features
    (linear probe on its classes) that the network trained on the other half keeps."""
    out = []
    for own, other in (("a", "b"), ("b", "a")):
        probe = _half(scale, split, own)
        out.append(share(r[f"split={split}:{other}"][seed][probe],
                         r[pipeline.RANDOM][seed][probe], r[f"split={split}:{own}"][seed][probe]))
    return statistics.fmean(out)


def _section5_6b(r: dict, scale: scales.Scale, metric: str) -> list[float]:
    conds = tuple(f"split={k}:{h}" for k in SPLITS for h in HALVES)
    return [cross_kept(r, scale, "random", s) - cross_kept(r, scale, "minimal", s)
            for s in _seeds(r, *conds)]


SECTION5_6B = Claim(
    id="section5_6b",
    question="Does pre-training need the target's classes? (unseen classes, 500/500 splits)",
    statement=("Features trained on one half of the classes hold up on the other half's classes "
               "and on the transfer tasks, less so across the 'minimal' split whose halves "
               "share the fewest WordNet ancestors."),
    statistic=("share of a half's own linear-probe gain that the network trained on the other "
               "half keeps (both directions averaged): random split minus minimal split "
               "(points of %)"),
    margin=EFFECT, direction="above",
    why=("all four halves trained, so each half is compared with its own network (like with "
         "like, not half B of one split against half B of another); 'less so' read as EFFECT."),
    conditions=lambda s: tuple(f"split={k}:{h}" for k in SPLITS for h in HALVES),
    probes=_halves,
    compute=_section5_6b,
    uses_target=False,
)


def _extra(scale: scales.Scale) -> str:
    """The condition that differs from the full source by the extra classes: the source plus
    them (`extra=K`), or, where they are part of the full source, the source without them
    (`holdout=K`; the paper scale's stand-in, docs/paper-protocol.md section 5)."""
    if scale.extra is None:
        raise ValueError(f"scale {scale.name} names no held-out extra classes")
    k = len(labels.dataset_leaves(scale.extra))
    return f"holdout={k}" if scale.extra_in_source else f"extra={k}"


def _section6(r: dict, scale: scales.Scale, metric: str) -> list[float]:
    x = _extra(scale)
    less, more = (x, FULL) if scale.extra_in_source else (FULL, x)
    return [share(r[more][s][metric], r[pipeline.RANDOM][s][metric], r[less][s][metric]) - 100
            for s in _seeds(r, FULL, x)]


SECTION6 = Claim(
    id="section6",
    question="Is more pre-training data always better?",
    statement=("No: adding data from extra classes unrelated to the target does not necessarily "
               "help transfer, and can hurt."),
    statistic=("transfer gain with the extra classes added, minus the gain without them, as a "
               "share of the gain without them (%)"),
    margin=NEAR_V2, direction="below",
    why=("a non-superiority question: the extra unrelated classes do not improve transfer by "
         f"more than NEAR ({NEAR_V2:g}% of the gain); hurting and no effect both reproduce it."),
    conditions=lambda s: (FULL, _extra(s)),
    compute=_section6,
)

CLAIMS_V2 = {c.id: c for c in (SECTION4, SECTION5_1, SECTION5_2, SECTION5_3, SECTION5_4,
                               SECTION5_5, SECTION5_6A, SECTION5_6B, SECTION6)}


# ================================================================ claims v3 (small scale v3 on)
#
# Written, with their margins and the calibration below, before any v3 claim condition ran
# (issue 21). The margins come from the paper's own numbers, not from any v2 outcome: every
# rule with a number in the paper must call that number "reproduced" (tests/test_claims.py,
# the calibration test). What changed from v2, and why, is in docs/claims-v3.md.
#
# The paper's PASCAL-DET gain from ImageNet pre-training, the floor of its shares: full
# ImageNet gives 58.3 mAP (Section 4); without pre-training VOC 2007 detection reaches 40.7
# (R-CNN trained from scratch, Agrawal, Girshick & Malik, ECCV 2014, "Analyzing the performance
# of multilayer neural networks for object recognition") or 43.4 (Fast R-CNN from random init,
# the figure issue 21 gives), so the gain is 17.6 or 14.9 mAP; each paper value below is
# computed on both and both must pass.

PAPER_FULL = 58.3  # PASCAL-DET mAP, 1000 images per class (Section 4, Figure 1)
PAPER_FLOORS = ((40.7, "R-CNN from scratch, Agrawal et al. 2014"),
                (43.4, "Fast R-CNN from random init, as issue 21 gives it"))
PAPER = "arXiv:1608.08614v2"

NEAR = 20.0  # % of the pre-training gain: "only a small drop" / "nearly as well". The paper
# calls 127 classes' 2.8 mAP "only a small drop": 15.9% (floor 40.7) to 18.8% (floor 43.4) of
# its gain, so a margin must lie above 18.8 for the paper's own example to pass; 20, a fifth of
# the gain, is the smallest round margin that does (v2's 10 failed it).
EFFECT_V3 = EFFECT  # 5% of the gain, the smallest difference called an effect ("far less",
# "better", "less so"); the paper quantifies none of these comparisons beyond Section 4


def _paper_losses(loss: float, what: str, source: str) -> tuple[PaperValue, ...]:
    """A PASCAL-DET loss of `loss` mAP as a share (%) of the gain over each floor."""
    return tuple(PaperValue(100 * loss / (PAPER_FULL - f),
                            f"{what}: 100 x {loss} / ({PAPER_FULL} - {f}) ({name})", source)
                 for f, name in PAPER_FLOORS)


def _section4_ceiling(r: dict, scale: scales.Scale) -> list[float]:
    """Per seed, the source's share of its gain lost at 500 per class: the most the Section 4
    statistic can reach while transfer loses nothing."""
    full, half = "images-per-class=1000", "images-per-class=500"
    r = _full_alias(r, full)
    return [100 - source_kept(r, half, s) for s in _seeds(r, FULL, half)]


SECTION4_BESIDE = (250, 125)  # images per class at which Section 4's statistic is reported too


def section4_at(ipc: int) -> Statistic:
    """Section 4's statistic at `ipc` images per class instead of 500 (reported beside)."""
    def compute(r: dict, scale: scales.Scale, metric: str) -> list[float]:
        full, less = "images-per-class=1000", f"images-per-class={ipc}"
        r = _full_alias(r, full)
        return [(100 - source_kept(r, less, s)) - (100 - transfer_kept(r, less, s, metric))
                for s in _seeds(r, FULL, less)]
    return compute


SECTION4_V3 = replace(
    SECTION4,
    why=("both losses on the scale of what they could lose, so neither side is favoured; 'far "
         "less' read as a difference of at least EFFECT (5% of the gain); judged at 500 per "
         "class as the paper states it (250 and 125 reported beside); when the source's own "
         "loss (the statistic's ceiling) lies wholly inside the margin the verdict is "
         "'untestable at this scale'."),
    ceiling=_section4_ceiling,
    # no paper value: the paper quantifies only the transfer side (58.3 -> 57.0 mAP, 7.4% to
    # 8.7% of the gain; 1.5 mAP on the project page, to 10.1%); the source's drop at 500 per
    # class is "much larger" but not in any text itl holds (docs/claims-v3.md). The rule then
    # needs the source to lose at least 12.4% to 15.1% of its gain: SECTION4_NEEDS.
)
SECTION4_NEEDS = tuple(pv.value + EFFECT for pv in _paper_losses(
    1.3, "transfer's loss at 500 per class (58.3 -> 57.0)", f"{PAPER}, Section 4, Figure 1")
    + _paper_losses(1.5, "transfer's loss at 500 per class", "the authors' project page"))


def _section5_1_v3(r: dict, scale: scales.Scale, metric: str) -> list[float]:
    """Both sides as shares of the gain over the random-init network read out the same way:
    the fine-class linear probe over random features' probe (the paper's 'last layer re-trained
    on the 1000 classes'), the transfer over random init fine-tuned."""
    half = level(scale, "down-up", 486)
    fine = _fine(scale)
    return [(100 - share(r[half][s][fine], r[pipeline.RANDOM][s][fine], r[FULL][s][fine]))
            - (100 - transfer_kept(r, half, s, metric)) for s in _seeds(r, FULL, half)]


SECTION5_1_V3 = replace(
    SECTION5_1,
    statistic=("share of the fine-class source gain over random features lost by the 486-class "
               "analogue (linear probe on the leaf classes) minus share of the transfer gain "
               "over random init lost (points of %)"),
    why=("both sides on the scale of what pre-training buys over a random network read out the "
         "same way (probe over random features' probe; fine-tuning over random init fine-tuned); "
         "the coarse network's source accuracy measured as the paper did, by re-training only "
         "the last layer on the fine classes (docs/claims-v3.md)."),
    compute=_section5_1_v3,
)

SECTION5_2_V3 = replace(
    SECTION5_2, margin=NEAR,
    why=f"'only a small drop' read as less than NEAR ({NEAR:g}% of the gain; calibrated on "
        "the paper's own 2.8 mAP).",
    paper=_paper_losses(2.8, "127 classes instead of 1000 (58.3 -> 55.5)",
                        f"{PAPER}, Section 5.2; the authors' project page"),
)

SECTION5_4_V3 = replace(
    SECTION5_4,
    statement=("itl's reading of Section 5.4: features trained on the fine classes classify the "
               "coarse classes at least about as well as features trained on the coarse classes "
               "themselves (class labels should follow what classes share visually, not WordNet "
               "semantics alone)."),
    margin=-EFFECT_V3, direction="above",
    why=("a non-inferiority question (docs/claims-v3.md: the paper's lesson is that WordNet's "
         "coarse labels are no better a training signal for coarse recognition than the fine "
         "labels): fine-trained features lose less than EFFECT of the coarse network's own "
         "gain."),
)


def _budget_classes(scale: scales.Scale) -> str:
    """Half the classes with all their images, drawn keeping the judged target's share of
    overlapping classes (claims v3)."""
    return f"{BUDGET_CLASSES}:{scale.overlap}"


def _section5_5_v3(r: dict, scale: scales.Scale, metric: str) -> list[float]:
    c = _budget_classes(scale)
    return [transfer_kept(r, c, s, metric) - transfer_kept(r, BUDGET_IMAGES, s, metric)
            for s in _seeds(r, FULL, c, BUDGET_IMAGES)]


SECTION5_5_V3 = replace(
    SECTION5_5,
    why=("the paper's comparison at a fixed budget, the half of the classes drawn stratified so "
         "that it keeps the full set's share of classes under the target's synsets; 'better' "
         "read as at least EFFECT."),
    conditions=lambda s: (FULL, _budget_classes(s), BUDGET_IMAGES),
    compute=_section5_5_v3,
)

SECTION5_6A_V3 = replace(
    SECTION5_6A, margin=NEAR,
    why=f"'nearly as well' read as losing less than NEAR ({NEAR:g}% of the gain; calibrated on "
        "Section 5.2's 2.8 mAP).",
    conditions=lambda s: (FULL, _without(s)) + ((f"without={s.overlap_secondary}",)
                                                if s.overlap_secondary else ()),
)

SECTION6_V3 = replace(
    SECTION6, margin=NEAR,
    why=("a non-superiority question: the extra unrelated classes do not improve transfer by "
         f"more than NEAR ({NEAR:g}% of the gain); hurting and no effect both reproduce it."),
)

CLAIMS = {c.id: c for c in (SECTION4_V3, SECTION5_1_V3, SECTION5_2_V3, SECTION5_3,
                            SECTION5_4_V3, SECTION5_5_V3, SECTION5_6A_V3, SECTION5_6B,
                            SECTION6_V3)}
VERSIONS = {2: CLAIMS_V2, 3: CLAIMS}


def for_scale(scale: scales.Scale) -> dict[str, Claim]:
    """The claims (by id) that judge `scale`: its protocol's version."""
    return VERSIONS[scale.claims]
