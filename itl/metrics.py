"""How a transfer to a classification target is scored (paper Section 3: SUN-CLS by accuracy,
PASCAL-ACT-CLS by mean average precision over the actions), chosen by the target's registry
entry (`Dataset.metric`), never by its name:

- `TOP1`: the share of test images whose top class is right (%);
- `MEAN_PER_CLASS`: the mean over classes of each class's accuracy (%), SUN397's standard
  measure, which weighs a rare class as much as a common one;
- `MEAN_AP`: multi-label targets (an action set's person can have several actions), labels held
  as bit masks (bit k: class k); per class, the average precision of the scores against the
  flags, as the VOC 2010+ devkit's `VOCap.m` computes it (all points), then the mean (%).

`voc_ap` and `voc07_cls_ap` are the VOC 2007 devkit's 11-point AP (detection's, `itl.detection`,
and classification's), pinned against a port of the devkit in tests/test_voc_eval.py;
`voc_eval_ap` is py-faster-rcnn's 11-point AP (lib/datasets/voc_eval.py), detection's second
rule, pinned against a port of that file. `average_precision` (MEAN_AP) is pinned there against
a port of the VOC 2012 devkit's VOCevalaction.m and VOCap.m.

`loss` is the training loss that goes with each metric: softmax cross-entropy for the
single-label ones, a sigmoid binary cross-entropy per class for MEAN_AP.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from itl.datasets.entry import MEAN_AP, MEAN_PER_CLASS, TOP1, VOC07_CLS
from itl.datasets.voc2007_cls import gt_values

METRICS = (TOP1, MEAN_PER_CLASS, MEAN_AP, VOC07_CLS)
MULTI_LABEL = (MEAN_AP, VOC07_CLS)  # labels are bit masks, trained with a sigmoid per class


def _known(metric: str) -> None:
    if metric not in METRICS:
        raise ValueError(f"unknown classification metric {metric!r}: choose one of "
                         f"{', '.join(METRICS)}")


def multi_hot(y: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Bit-mask labels (bit k: class k) as an N x num_classes float 0/1 matrix."""
    bits = torch.arange(num_classes, device=y.device)
    return ((y[:, None] >> bits) & 1).float()


def positives(metric: str, y: torch.Tensor, num_classes: int) -> torch.Tensor:
    """A multi-label metric's positives as an N x num_classes float 0/1 matrix."""
    if metric == VOC07_CLS:
        return (gt_values(y, num_classes) > 0).float()
    return multi_hot(y, num_classes)


def top1(pred: torch.Tensor, y: torch.Tensor) -> float:
    """Overall accuracy (%) of predicted classes `pred` against labels `y`."""
    return 100.0 * (pred == y).float().mean().item() if len(y) else float("nan")


def mean_per_class_accuracy(pred: torch.Tensor, y: torch.Tensor, num_classes: int) -> float:
    """The mean over the classes present in `y` of the share of that class's images predicted
    right (%). Equal to top1 when every class has as many test images."""
    right = torch.bincount(y[pred == y], minlength=num_classes).float()
    total = torch.bincount(y, minlength=num_classes).float()
    present = total > 0
    return 100.0 * (right[present] / total[present]).mean().item()


def average_precision(scores: torch.Tensor, positive: torch.Tensor) -> float:
    """AP of ranking by `scores` (higher first; ties keep their order, as MATLAB's sort does)
    with `positive` the relevant items, as the VOC devkit's VOCevalaction.m and VOCap.m compute
    it since VOC 2010: precision made monotone from the right, summed over the recall steps
    (all points, no 11-point interpolation). NaN when nothing is positive."""
    positive = positive.bool()
    n_pos = int(positive.sum())
    if n_pos == 0:
        return float("nan")
    order = torch.sort(-scores.double(), stable=True).indices
    tp = positive[order].double().cumsum(0)
    fp = (~positive[order]).double().cumsum(0)
    rec = torch.cat([torch.zeros(1), tp / n_pos, torch.ones(1)]).double()
    prec = torch.cat([torch.zeros(1), tp / (tp + fp), torch.zeros(1)]).double()
    prec = torch.flip(torch.cummax(torch.flip(prec, [0]), 0).values, [0])  # max to the right
    steps = torch.nonzero(rec[1:] != rec[:-1]).flatten() + 1
    return float(((rec[steps] - rec[steps - 1]) * prec[steps]).sum())


# `for t=0:0.1:1` of the VOC 2007 devkit's VOCevaldet.m and VOCevalcls.m, with the values MATLAB's
# colon gives: the first half a + k*d, the second half b - k*d (MathWorks technical solution
# 1-4FLI96, "How does the COLON operator work?"). The fourth is 3 * 0.1 = 0.30000000000000004, so a
# recall of exactly 3/10 does not reach it, in the devkit as here. (py-faster-rcnn's voc_eval,
# `np.arange(0., 1.1, 0.1)`, also puts 0.6 and 0.7 a step above 0.6 and 0.7.)
VOC07_RECALLS = tuple([k * 0.1 for k in range(5)] + [0.5] + [1 - k * 0.1 for k in (4, 3, 2, 1, 0)])


def voc_ap(recall: torch.Tensor, precision: torch.Tensor) -> float:
    """VOC 2007 11-point interpolated AP, as a fraction, of a ranking's cumulative recall and
    precision (VOCevaldet.m, VOCevalcls.m: `p=max(prec(rec>=t))`, 0 if empty, `ap=ap+p/11` for t
    in VOC07_RECALLS), in float64 as MATLAB computes. A precision of 0/0 (NaN: nothing counted
    yet) is skipped, as MATLAB's max skips NaN; where nothing else is left, p is 0 (the devkit's
    NaN, which only arises when a class's every detection lies on a difficult box)."""
    recall, precision = recall.double(), precision.double()
    ap = 0.0
    for t in VOC07_RECALLS:
        p = precision[(recall >= t) & ~precision.isnan()]
        ap = ap + (p.max().item() if len(p) else 0.0) / 11
    return ap


# py-faster-rcnn's `np.arange(0., 1.1, 0.1)` (lib/datasets/voc_eval.py, voc_ap with use_07_metric):
# start + k * step, so its 0.6 and 0.7 are 0.6000000000000001 and 0.7000000000000001, above
# MATLAB's (VOC07_RECALLS); 0.3 is 0.30000000000000004 in both.
VOC_EVAL_RECALLS = tuple(np.arange(0.0, 1.1, 0.1).tolist())


def voc_eval_ap(recall: torch.Tensor, precision: torch.Tensor) -> float:
    """py-faster-rcnn's VOC 2007 11-point AP, as a fraction (lib/datasets/voc_eval.py, `voc_ap`
    with `use_07_metric=True`: for t in VOC_EVAL_RECALLS, `p = 0` if `np.sum(rec >= t) == 0`,
    else `np.max(prec[rec >= t])`; `ap = ap + p / 11.`), in float64. Its precision is never
    NaN (voc_eval divides by `np.maximum(tp + fp, eps)`)."""
    recall, precision = recall.double(), precision.double()
    ap = 0.0
    for t in VOC_EVAL_RECALLS:
        p = precision[recall >= t]
        ap = ap + (p.max().item() if len(p) else 0.0) / 11
    return ap


def voc07_cls_ap(scores: torch.Tensor, gt: torch.Tensor) -> float:
    """VOC 2007 classification AP of one class, a fraction, as VOCevalcls.m computes it: images
    ranked by `scores` (higher first; ties keep their order, as MATLAB's sort does), `gt` per
    image 1 (positive), -1 (negative) or 0 (only difficult instances of the class: neither a
    hit nor a miss), then `voc_ap`. NaN without a positive (where the devkit gives 0)."""
    n_pos = int((gt > 0).sum())
    if n_pos == 0:
        return float("nan")
    ranked = gt[torch.sort(-scores.double(), stable=True).indices]
    tp, fp = (ranked > 0).double().cumsum(0), (ranked < 0).double().cumsum(0)
    return voc_ap(tp / n_pos, tp / (tp + fp))


def mean_ap(scores: torch.Tensor, y: torch.Tensor, classes: tuple[str, ...]) -> dict:
    """Per class AP (%) of the columns of `scores` against bit-mask labels `y`, and their mean
    over the classes that have a positive."""
    flags = multi_hot(y, len(classes))
    aps = {c: 100.0 * average_precision(scores[:, k], flags[:, k]) for k, c in enumerate(classes)}
    valid = [v for v in aps.values() if v == v]
    return {"mAP": sum(valid) / len(valid) if valid else float("nan"), "AP": aps}


def voc07_cls_map(scores: torch.Tensor, y: torch.Tensor, classes: tuple[str, ...]) -> dict:
    """VOC-CLS: per class the VOC 2007 classification AP (%) of the columns of `scores` against
    VOC bit-mask labels `y` (itl.datasets.voc2007_cls), and their mean over the classes that
    have a positive."""
    gt = gt_values(y, len(classes))
    aps = {c: 100.0 * voc07_cls_ap(scores[:, k], gt[:, k]) for k, c in enumerate(classes)}
    valid = [v for v in aps.values() if v == v]
    return {"mAP": sum(valid) / len(valid) if valid else float("nan"), "AP": aps}


def score(metric: str, out: torch.Tensor, y: torch.Tensor, classes: tuple[str, ...]) -> dict:
    """The test result of network outputs (or any per-class scores) `out` for labels `y` under
    `metric`: {"top1": the metric's number, "metric": its name, ...}. As detection's results do,
    "top1" holds the number claims are judged on, whatever the metric (MEAN_AP: the mean AP;
    MEAN_PER_CLASS: the mean per-class accuracy, with the overall accuracy beside it)."""
    _known(metric)
    out = out.float().cpu()
    y = y.cpu()
    if metric == MEAN_AP:
        r = mean_ap(out, y, classes)
        return {"top1": r["mAP"], "metric": metric, **r}
    if metric == VOC07_CLS:
        r = voc07_cls_map(out, y, classes)
        return {"top1": r["mAP"], "metric": metric, **r}
    pred = out.argmax(1)
    if metric == MEAN_PER_CLASS:
        return {"top1": mean_per_class_accuracy(pred, y, len(classes)), "metric": metric,
                "accuracy": top1(pred, y)}
    return {"top1": top1(pred, y)}


def loss(metric: str, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The training loss that goes with `metric` (see the module's docstring)."""
    _known(metric)
    if metric == MEAN_AP:
        return F.binary_cross_entropy_with_logits(out, multi_hot(y, out.shape[1]))
    if metric == VOC07_CLS:  # an image's class of only difficult instances: left out, as scored
        gt = gt_values(y, out.shape[1])
        return F.binary_cross_entropy_with_logits(out, (gt > 0).float(), weight=(gt != 0).float())
    return F.cross_entropy(out, y)
