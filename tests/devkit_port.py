"""An independent port of the PASCAL VOC devkits' scoring (MATLAB, VOCcode/), numpy only and no
itl import, to pin `itl.detection.evaluate`, `itl.metrics.voc07_cls_ap` (VOC 2007) and
`itl.metrics.average_precision` (VOC 2012 action classification) against.

Ported from VOCcode/VOCevaldet.m and VOCcode/VOCinit.m (`VOCopts.minoverlap=0.5`) of the VOC2007
devkit as stored in mingmmq/voc2007_mAP_calculation (npinto/VOCdevkit's VOCevaldet.m has the same
scoring lines), and VOCcode/VOCevalcls.m as stored in npinto/VOCdevkit (no 2007 copy was found;
this one looks images up with VOChash, which the lines ported do not touch). MATLAB's 1-based
indices become Python's 0-based ones; each block names the lines it ports. Reading the result
and annotation files (textread, PASreadrecord) is left out: the functions take their contents.

VOC 2012's action classification: VOCcode/VOCevalaction.m and VOCcode/VOCap.m, read as copies
redistributed on GitHub (the search index's file id 466787584 for VOCevalaction.m, whose
repository is not named there; VOCap.m as copied, "From the PASCAL VOC 2011 devkit", in file id
22993772960 and identically in several others). VOCap.m is the AP of every devkit since
VOC 2010: the area under the precision curve made monotone, at every recall step, not at 11
points.
"""
from __future__ import annotations

import math

import numpy as np

MINOVERLAP = 0.5  # VOCinit.m: VOCopts.minoverlap=0.5


def matlab_colon(a: float, d: float, b: float) -> list[float]:
    """MATLAB's `a:d:b` for d > 0, as MathWorks describes the built-in (technical solution
    1-4FLI96, "How does the COLON operator work?", its colonop.m): n = floor((b-a)/d + tol)
    intervals; the first half a + k*d, the second half b - k*d, counted from the right-hand end,
    and for even n the middle (a+b)/2. So 0:0.1:1 holds 3*0.1 = 0.30000000000000004, not 0.3."""
    tol = 2.0 * np.finfo(float).eps * max(abs(a), abs(b))
    n = int(math.floor((b - a) / d + tol))
    v = [0.0] * (n + 1)
    for k in range(n // 2 + 1):
        v[k] = a + k * d
        v[n - k] = b - k * d
    if n % 2 == 0:
        v[n // 2] = (a + b) / 2
    return v


def _matlab_max(x: np.ndarray) -> float | None:
    """MATLAB's `max` of a vector: [] (None here) when empty; NaNs skipped unless all are NaN."""
    if x.size == 0:
        return None
    finite = x[~np.isnan(x)]
    return float(finite.max()) if finite.size else float("nan")


def eleven_point_ap(rec: np.ndarray, prec: np.ndarray) -> float:
    """VOCevaldet.m / VOCevalcls.m, "compute average precision":

        ap=0;
        for t=0:0.1:1
            p=max(prec(rec>=t));
            if isempty(p)
                p=0;
            end
            ap=ap+p/11;
        end
    """
    ap = 0.0
    for t in matlab_colon(0, 0.1, 1):
        p = _matlab_max(prec[rec >= t])
        if p is None:
            p = 0.0
        ap = ap + p / 11
    return ap


def vocevaldet(objects: dict[str, list[tuple[str, tuple, bool]]], cls: str, ids: list[str],
               confidence, boxes) -> tuple[np.ndarray, np.ndarray, float]:
    """VOCevaldet.m for class `cls`: `objects` maps each test image id (gtids) to its annotated
    objects (class, (xmin, ymin, xmax, ymax), difficult); `ids`, `confidence`, `boxes` are the
    lines of the class's result file. Returns (rec, prec, ap)."""
    # % extract objects of class ... npos=npos+sum(~gt(i).diff);
    gt, npos = {}, 0
    for image, objs in objects.items():
        clsinds = [k for k, o in enumerate(objs) if o[0] == cls]
        gt[image] = {"BB": np.array([objs[k][1] for k in clsinds], dtype=float).reshape(-1, 4),
                     "diff": np.array([bool(objs[k][2]) for k in clsinds], dtype=bool),
                     "det": np.zeros(len(clsinds), dtype=bool)}
        npos = npos + int(np.sum(~gt[image]["diff"]))
    confidence = np.asarray(confidence, dtype=float)
    BB = np.asarray(boxes, dtype=float).reshape(-1, 4)
    # % sort detections by decreasing confidence: [sc,si]=sort(-confidence); MATLAB's sort is
    # stable, so equal confidences keep their file order
    si = np.argsort(-confidence, kind="stable")
    ids = [ids[k] for k in si]
    BB = BB[si]
    # % assign detections to ground truth objects
    nd = len(confidence)
    tp = np.zeros(nd)
    fp = np.zeros(nd)
    for d in range(nd):
        if ids[d] not in gt:
            raise ValueError(f'unrecognized image "{ids[d]}"')
        g = gt[ids[d]]
        bb = BB[d]
        ovmax = -math.inf
        jmax = None
        for j in range(g["BB"].shape[0]):
            bbgt = g["BB"][j]
            bi = [max(bb[0], bbgt[0]), max(bb[1], bbgt[1]),
                  min(bb[2], bbgt[2]), min(bb[3], bbgt[3])]
            iw = bi[2] - bi[0] + 1
            ih = bi[3] - bi[1] + 1
            if iw > 0 and ih > 0:
                # % compute overlap as area of intersection / area of union
                ua = ((bb[2] - bb[0] + 1) * (bb[3] - bb[1] + 1)
                      + (bbgt[2] - bbgt[0] + 1) * (bbgt[3] - bbgt[1] + 1)
                      - iw * ih)
                ov = iw * ih / ua
                if ov > ovmax:
                    ovmax = ov
                    jmax = j
        # % assign detection as true positive/don't care/false positive
        if ovmax >= MINOVERLAP:
            if not g["diff"][jmax]:
                if not g["det"][jmax]:
                    tp[d] = 1  # true positive
                    g["det"][jmax] = True
                else:
                    fp[d] = 1  # false positive (multiple detection)
        else:
            fp[d] = 1  # false positive
    # % compute precision/recall
    fp = np.cumsum(fp)
    tp = np.cumsum(tp)
    with np.errstate(divide="ignore", invalid="ignore"):  # MATLAB's x/0: Inf or NaN, silently
        rec = tp / npos
        prec = tp / (fp + tp)
    return rec, prec, eleven_point_ap(rec, prec)


def vocevalcls(gtids: list[str], gt, ids: list[str], confidence) -> tuple[np.ndarray, np.ndarray,
                                                                              float]:
    """VOCevalcls.m for one class: `gtids`, `gt` the class's image list (ImageSets/Main/
    <cls>_test.txt: 1 present, -1 absent, 0 only difficult instances); `ids`, `confidence` the
    lines of the result file. Returns (rec, prec, ap)."""
    gt = np.asarray(gt, dtype=float)
    # % map results to ground truth images: out=ones(size(gt))*-inf; ... out(j)=confidence(i);
    out = np.ones(gt.shape) * -math.inf
    for i in range(len(ids)):
        j = [k for k, g in enumerate(gtids) if g == ids[i]]
        if not j:
            raise ValueError(f'unrecognized image "{ids[i]}"')
        if len(j) > 1:
            raise ValueError(f'multiple image "{ids[i]}"')
        out[j[0]] = confidence[i]
    # % compute precision/recall
    si = np.argsort(-out, kind="stable")  # [so,si]=sort(-out);
    tp = gt[si] > 0
    fp = gt[si] < 0
    fp = np.cumsum(fp)
    tp = np.cumsum(tp)
    with np.errstate(divide="ignore", invalid="ignore"):
        rec = tp / np.sum(gt > 0)
        prec = tp / (fp + tp)
    return rec, prec, eleven_point_ap(rec, prec)


def _matlab_max2(a: float, b: float) -> float:
    """MATLAB's `max(a, b)` of two scalars: NaN only if both are NaN."""
    if math.isnan(a):
        return b
    if math.isnan(b):
        return a
    return max(a, b)


def vocap(rec: np.ndarray, prec: np.ndarray) -> float:
    """VOCap.m:

        function ap = VOCap(rec,prec)
        mrec=[0 ; rec ; 1];
        mpre=[0 ; prec ; 0];
        for i=numel(mpre)-1:-1:1
            mpre(i)=max(mpre(i),mpre(i+1));
        end
        i=find(mrec(2:end)~=mrec(1:end-1))+1;
        ap=sum((mrec(i)-mrec(i-1)).*mpre(i));
    """
    mrec = np.concatenate(([0.0], rec, [1.0]))
    mpre = np.concatenate(([0.0], prec, [0.0]))
    for i in range(mpre.size - 2, -1, -1):  # MATLAB's numel-1 down to 1, 0-based
        mpre[i] = _matlab_max2(mpre[i], mpre[i + 1])
    i = np.nonzero(mrec[1:] != mrec[:-1])[0] + 1
    return float(np.sum((mrec[i] - mrec[i - 1]) * mpre[i]))


def vocevalaction(gtids: list[tuple[str, int]], gt, ids: list[tuple[str, int]],
                  confidence) -> tuple[np.ndarray, np.ndarray, float]:
    """VOCevalaction.m for one action: `gtids` and `gt` the lines of the action's image set
    (ImageSets/Action/<cls>_<testset>.txt: image, object number, +1 or -1), `ids` (image,
    object) and `confidence` the lines of the result file. Returns (rec, prec, ap)."""
    gt = np.asarray(gt, dtype=float)
    # % map results to ground truth objects: out=ones(size(gt))*-inf; ... out(j)=confidence(i);
    out = np.ones(gt.shape) * -math.inf
    keys = [f"{image}/{obj}" for image, obj in gtids]  # sprintf('%s/%d',gtimg{i},gtobj(i))
    for i in range(len(ids)):
        k = f"{ids[i][0]}/{ids[i][1]}"
        j = [n for n, g in enumerate(keys) if g == k]
        if not j:
            raise ValueError(f'unrecognized object "{k}"')
        if len(j) > 1:
            raise ValueError(f'multiple image "{k}"')
        out[j[0]] = confidence[i]
    # % compute precision/recall
    si = np.argsort(-out, kind="stable")  # [so,si]=sort(-out);
    tp = gt[si] > 0
    fp = gt[si] < 0
    fp = np.cumsum(fp)
    tp = np.cumsum(tp)
    with np.errstate(divide="ignore", invalid="ignore"):
        rec = tp / np.sum(gt > 0)
        prec = tp / (fp + tp)
    return rec, prec, vocap(rec, prec)
