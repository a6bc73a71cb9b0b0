"""itl's VOC scoring against independent ports of the code it follows, on fixed cases that hit
every branch (their expected numbers written here) and on seeded random ones:
- VOC 2007 detection, rule "devkit" (`itl.detection.evaluate`): the devkit's VOCevaldet.m
  (tests/devkit_port.py); rule "voc_eval": py-faster-rcnn's lib/datasets/voc_eval.py
  (tests/voc_eval_port.py);
- VOC 2007 classification (`itl.metrics.voc07_cls_ap`): the devkit's VOCevalcls.m;
- VOC 2012 action classification (`itl.metrics.average_precision`, `mean_ap`): the VOC 2012
  devkit's VOCevalaction.m and VOCap.m (all points)."""
import math

import numpy as np
import pytest
import torch

import devkit_port as devkit
import voc_eval_port
from itl import detection as det
from itl import metrics
from itl.datasets import voc

# image -> objects (class, (xmin, ymin, xmax, ymax) 1-based inclusive, difficult)
OBJECTS = {
    "001": [("cat", (1, 1, 10, 10), False), ("cat", (30, 30, 49, 49), True),
            ("dog", (5, 5, 24, 24), False)],
    "002": [("cat", (10, 10, 29, 29), False), ("person", (1, 1, 20, 20), True)],
    "003": [("dog", (1, 1, 40, 40), False), ("bird", (50, 50, 60, 60), False)],
    "004": [],
    "005": [("cat", (1, 1, 10, 10), False), ("cat", (1, 1, 10, 10), False)],  # annotated twice
    "006": [("horse", (10 * k + 1, 1, 10 * k + 8, 8), False) for k in range(10)],
}
DETECTIONS = [  # (image, class, score, box)
    ("001", "cat", 0.9, (1, 1, 10, 10)),     # hit
    ("001", "cat", 0.9, (1, 1, 10, 10)),     # the same box again, the same score: a miss
    ("002", "cat", 0.8, (10, 10, 29, 49)),   # IoU exactly 0.5 (400 / 800, widths + 1): a hit
    ("001", "cat", 0.7, (30, 30, 49, 50)),   # on the difficult box: ignored
    ("004", "cat", 0.7, (1, 1, 10, 10)),     # an image without objects: a miss
    ("005", "cat", 0.6, (1, 1, 10, 10)),     # equal overlap with two boxes: the first, a hit
    ("005", "cat", 0.5, (1, 1, 10, 10)),     # the first box again (the second stays unmatched)
    ("003", "dog", 0.5, (1, 1, 40, 40)),
    ("001", "dog", 0.5, (6, 6, 24, 24)),
    ("003", "dog", 0.4, (2, 2, 40, 40)),
    ("002", "person", 0.9, (1, 1, 20, 20)),  # a class with only a difficult box
    *[("006", "horse", 1.0 - k / 100, (10 * k + 1, 1, 10 * k + 8, 8)) for k in range(3)],
    *[("006", "horse", 0.5, (200, 200, 210, 210)) for _ in range(4)],
]  # "bird": a class without detections


def _itl(objects, detections):
    truth = [voc.Annotation(image, torch.tensor([o[1] for o in objs], dtype=torch.float32)
                            .reshape(-1, 4), [o[0] for o in objs], [o[2] for o in objs])
             for image, objs in objects.items()]
    return truth, [det.Detection(i, c, s, tuple(map(float, b))) for i, c, s, b in detections]


def _devkit(objects, detections, cls):
    mine = [d for d in detections if d[1] == cls]
    return devkit.vocevaldet(objects, cls, [d[0] for d in mine], [d[2] for d in mine],
                             [d[3] for d in mine])[2]


def _compare(objects, detections, classes):
    truth, dets = _itl(objects, detections)
    r = det.evaluate(dets, truth, classes)
    port = {}
    for c in classes:
        if any(o[0] == c and not o[2] for objs in objects.values() for o in objs):
            port[c] = _devkit(objects, detections, c)
            assert r["AP"][c] / 100 == pytest.approx(port[c], abs=1e-9), c
        else:  # no positive: the devkit's AP is 0 (0/0 recalls reach no threshold); itl's NaN
            assert math.isnan(r["AP"][c]) and _devkit(objects, detections, c) == 0.0
    assert r["mAP"] / 100 == pytest.approx(np.mean(list(port.values())), abs=1e-9)
    return r, port


def test_detection_ap_is_the_devkits_on_fixed_cases():
    r, port = _compare(OBJECTS, DETECTIONS, ["cat", "dog", "person", "bird", "horse"])
    # cat, by hand: 4 positives; ranked hit, miss, hit (IoU 0.5), ignored, miss, hit, miss:
    # recall .25 .25 .5 .5 .5 .75 .75 at precision 1 .5 .667 .667 .5 .6 .5 -> t = 0 .. .2: 1,
    # t = .3 .. .5: 2/3, t = .6, .7: .6, t >= .8: 0
    assert port["cat"] == pytest.approx((3 * 1 + 3 * 2 / 3 + 2 * 0.6) / 11)
    assert port["bird"] == 0.0  # no detections
    # horse: 10 boxes, 3 hit first: a recall of exactly 3/10 falls short of t = 3 * 0.1 in
    # MATLAB's 0:0.1:1, so 3/11, not 4/11
    assert port["horse"] == pytest.approx(3 / 11) and r["AP"]["horse"] == pytest.approx(300 / 11)


def test_a_detection_at_exactly_iou_half_is_a_hit():
    objects = {"a": [("cat", (10, 10, 29, 29), False)]}
    at_half = [("a", "cat", 1.0, (10, 10, 29, 49))]  # 20x20 inside 20x40, +1 widths: IoU 0.5
    assert voc.iou(torch.tensor([10.0, 10, 29, 49]),
                   torch.tensor([[10.0, 10, 29, 29]])).item() == 0.5
    r, port = _compare(objects, at_half, ["cat"])
    assert port["cat"] == pytest.approx(1.0)  # py-faster-rcnn's `ovmax > ovthresh`: 0
    assert r["AP"]["cat"] == pytest.approx(100.0)
    below = [("a", "cat", 1.0, (10, 10, 29, 50))]  # 400 / 820
    assert _compare(objects, below, ["cat"])[1]["cat"] == 0.0


def test_every_detection_on_a_difficult_box_is_the_one_known_difference():
    objects = {"a": [("cat", (1, 1, 10, 10), False), ("cat", (30, 30, 40, 40), True)]}
    dets = [("a", "cat", 1.0, (30, 30, 40, 40))]
    truth, mine = _itl(objects, dets)
    assert math.isnan(_devkit(objects, dets, "cat"))  # prec = 0/0; MATLAB's max of NaN: NaN
    assert det.average_precision(mine, truth, "cat") == 0.0  # itl: nothing found, AP 0


def _random_case(seed, n_images=8, n_detections=200, classes=("cat", "dog", "car")):
    rs = np.random.RandomState(seed)
    objects = {}
    for i in range(n_images):
        objs = []
        for _ in range(rs.randint(0, 6)):
            x, y, w, h = rs.randint(1, 40), rs.randint(1, 40), rs.randint(0, 20), rs.randint(0, 20)
            objs.append((str(rs.choice(classes)), (x, y, x + w, y + h), bool(rs.rand() < 0.2)))
        objects[f"{i:03d}"] = objs
    detections = []
    for _ in range(n_detections):
        image = f"{rs.randint(n_images):03d}"
        if objects[image] and rs.rand() < 0.7:  # near an object (of any class)
            b = np.array(objects[image][rs.randint(len(objects[image]))][1]) + rs.randint(-3, 4, 4)
            b[2:] = np.maximum(b[2:], b[:2])
        else:
            x, y = rs.randint(1, 40), rs.randint(1, 40)
            b = np.array([x, y, x + rs.randint(0, 20), y + rs.randint(0, 20)])
        if rs.rand() < 0.3:
            b = b + rs.rand(4).round(1)  # fractional coordinates, as a detector's
        detections.append((image, str(rs.choice(classes)), round(rs.rand(), 1),  # ties
                           tuple(float(v) for v in b)))
    return objects, detections, list(classes)


@pytest.mark.parametrize("draw", range(5))
def test_detection_ap_is_the_devkits_on_seeded_random_detections(draw):
    objects, detections, classes = _random_case(draw)
    _compare(objects, detections, classes)


# ---------------------------------------------------------------- detection (voc_eval.py)


def _voc_eval(objects, detections, cls):
    """The port's AP: the annotations as parse_rec gives them, the detections as the lines of a
    results file (repr: the same numbers read back)."""
    recs = {image: [{"name": c, "difficult": int(d), "bbox": list(b)} for c, b, d in objs]
            for image, objs in objects.items()}
    lines = [f"{i} {s!r} " + " ".join(repr(float(v)) for v in b) + "\n"
             for i, c, s, b in detections if c == cls]
    return float(voc_eval_port.voc_eval(recs, cls, lines, ovthresh=0.5, use_07_metric=True)[2])


def _compare_voc_eval(objects, detections, classes):
    truth, dets = _itl(objects, detections)
    r = det.evaluate(dets, truth, classes, rule="voc_eval")
    port = {}
    for c in classes:
        theirs = _voc_eval(objects, detections, c)
        if any(o[0] == c and not o[2] for objs in objects.values() for o in objs):
            port[c] = theirs
            assert r["AP"][c] / 100 == pytest.approx(theirs, abs=1e-12), c
        else:  # no positive: voc_eval's recall is 0/0 and its AP 0; itl's NaN
            assert math.isnan(r["AP"][c]) and theirs == 0.0
    assert r["mAP"] / 100 == pytest.approx(np.mean(list(port.values())), abs=1e-12)
    return r, port


def test_detection_ap_is_voc_evals_on_fixed_cases():
    r, port = _compare_voc_eval(OBJECTS, DETECTIONS, ["cat", "dog", "person", "bird", "horse"])
    # cat, by hand: 4 positives; ranked hit, miss, miss (IoU exactly 0.5 is no hit here),
    # ignored, miss, hit, miss: recall .25 (x5) .5 .5 at precision 1 .5 .333 .333 .25 .4 .333 ->
    # t = 0 .. .2: 1, t = .3 .. .5: .4, t >= .6: 0
    assert port["cat"] == pytest.approx((3 * 1 + 3 * 0.4) / 11)
    truth, dets = _itl(OBJECTS, DETECTIONS)
    devkit_cat = (3 * 1 + 3 * 2 / 3 + 2 * 0.6) / 11  # test_detection_ap_is_the_devkits_...
    assert det.evaluate(dets, truth, ["cat"])["AP"]["cat"] / 100 == pytest.approx(devkit_cat)
    assert port["dog"] == pytest.approx(1.0) and port["bird"] == 0.0
    assert port["horse"] == pytest.approx(3 / 11)  # np.arange's 0.3 is MATLAB's: 3/10 < it
    assert r["mAP"] == pytest.approx(100 * (3 * 1 + 3 * 0.4 + 11 + 0 + 3) / 11 / 4)


def test_the_two_rules_differ_at_iou_half_and_at_a_recall_of_six_tenths():
    objects = {"a": [("cat", (10, 10, 29, 29), False)]}
    at_half = [("a", "cat", 1.0, (10, 10, 29, 49))]  # IoU exactly 0.5
    assert _compare(objects, at_half, ["cat"])[1]["cat"] == pytest.approx(1.0)
    assert _compare_voc_eval(objects, at_half, ["cat"])[1]["cat"] == 0.0
    # 5 positives, 3 found first (recall 3/5 == 0.6 exactly), then 2 misses
    objects = {"b": [("dog", (20 * k + 1, 1, 20 * k + 10, 10), False) for k in range(5)]}
    dets = [("b", "dog", 1.0 - k / 10, (20 * k + 1, 1, 20 * k + 10, 10)) for k in range(3)]
    dets += [("b", "dog", 0.1, (300, 300, 310, 310)), ("b", "dog", 0.05, (300, 300, 310, 310))]
    assert _compare(objects, dets, ["dog"])[1]["dog"] == pytest.approx(7 / 11)  # MATLAB's 0.6
    assert _compare_voc_eval(objects, dets, ["dog"])[1]["dog"] == pytest.approx(6 / 11)


def test_a_first_detection_on_a_difficult_box_counts_zero_under_voc_eval():
    objects = {"a": [("cat", (1, 1, 10, 10), False), ("cat", (30, 30, 40, 40), True)]}
    dets = [("a", "cat", 1.0, (30, 30, 40, 40)), ("a", "cat", 0.5, (1, 1, 10, 10))]
    r, port = _compare_voc_eval(objects, dets, ["cat"])
    assert port["cat"] == pytest.approx(1.0)  # precision 0 (tp / eps), then 1 at recall 1


@pytest.mark.parametrize("draw", range(5))
def test_detection_ap_is_voc_evals_on_seeded_random_detections(draw):
    objects, detections, classes = _random_case(200 + draw)
    _compare_voc_eval(objects, detections, classes)


def test_voc_eval_thresholds_are_numpys_arange():
    assert list(metrics.VOC_EVAL_RECALLS) == np.arange(0.0, 1.1, 0.1).tolist()
    assert metrics.VOC_EVAL_RECALLS[6] > 0.6 == metrics.VOC07_RECALLS[6] == 3 / 5
    assert metrics.VOC_EVAL_RECALLS[7] > 0.7 == metrics.VOC07_RECALLS[7]
    assert [a == b for a, b in zip(metrics.VOC_EVAL_RECALLS, metrics.VOC07_RECALLS)] == \
        [True] * 6 + [False, False] + [True] * 3


def test_an_unknown_ap_rule_is_named():
    truth, dets = _itl(OBJECTS, DETECTIONS)
    with pytest.raises(ValueError, match="unknown VOC 2007 AP rule 'voc12': choose one of "
                                         "devkit, voc_eval"):
        det.evaluate(dets, truth, ["cat"], rule="voc12")


# ---------------------------------------------------------------- classification (VOCevalcls.m)


def _cls_both(gt, scores, missing=()):
    """itl's and the port's AP; images in `missing` have no line in the result file (the
    devkit scores them -inf)."""
    ids = [f"{i:04d}" for i in range(len(gt))]
    kept = [i for i in range(len(gt)) if i not in set(missing)]
    port = devkit.vocevalcls(ids, gt, [ids[i] for i in kept], [scores[i] for i in kept])[2]
    full = torch.tensor([-math.inf if i in set(missing) else s for i, s in enumerate(scores)],
                        dtype=torch.float64)
    return metrics.voc07_cls_ap(full, torch.tensor(gt)), port


def test_classification_ap_is_the_devkits_on_fixed_cases():
    gt = [0, 1, -1, 1, 0, -1, -1, 1, -1, 1]
    scores = [0.9, 0.8, 0.8, 0.7, 0.6, 0.6, 0.5, 0.5, 0.1, 0.0]  # ties; an ignored image first
    mine, port = _cls_both(gt, scores)
    # by hand: [0] + - + [0] - - + - + -> recall 0 .25 .25 .5 .5 .5 .5 .75 .75 1 at precision
    # NaN 1 .5 .667 .667 .5 .4 .5 .429 .5: t = 0 .. .2: 1, t = .3 .. .5: 2/3, t >= .6: .5
    assert port == pytest.approx((3 + 3 * 2 / 3 + 5 * 0.5) / 11)
    assert mine == pytest.approx(port, abs=1e-9)
    full = port
    mine, port = _cls_both(gt, scores, missing=(1, 3))  # no score: ranked last
    assert mine == pytest.approx(port, abs=1e-9) and port < full
    # 3 of 10 positives first, then 5 negatives: the recall of exactly 3/10 falls short of
    # MATLAB's t = 3 * 0.1, so t = .3 takes the best precision further on, 10/15
    mine, port = _cls_both([1] * 3 + [-1] * 5 + [1] * 7, [15.0 - i for i in range(15)])
    assert port == pytest.approx((3 + 8 * 2 / 3) / 11) and mine == pytest.approx(port, abs=1e-9)
    # ... while 6/10 reaches MATLAB's t = 1 - 4 * 0.1 (py-faster-rcnn's np.arange puts t above 0.6)
    mine, port = _cls_both([1] * 6 + [-1] * 5 + [1] * 4, [15.0 - i for i in range(15)])
    assert port == pytest.approx((7 + 4 * 2 / 3) / 11) and mine == pytest.approx(port, abs=1e-9)
    mine, port = _cls_both([-1, 0, -1], [0.3, 0.2, 0.1])
    assert math.isnan(mine) and port == 0.0  # no positive: itl NaN, the devkit 0


@pytest.mark.parametrize("draw", range(5))
def test_classification_ap_is_the_devkits_on_seeded_random_scores(draw):
    rs = np.random.RandomState(100 + draw)
    n = 200
    gt = rs.choice([1, -1, -1, -1, 0], n).tolist()
    scores = rs.rand(n).round(1).tolist()  # many ties
    missing = rs.choice(n, 10, replace=False).tolist()
    mine, port = _cls_both(gt, scores, missing)
    assert mine == pytest.approx(port, abs=1e-9)


def test_matlab_colon_and_itls_thresholds_agree():
    assert devkit.matlab_colon(0, 0.1, 1)[3] == 0.30000000000000004
    assert list(metrics.VOC07_RECALLS) == devkit.matlab_colon(0, 0.1, 1)
    assert devkit.matlab_colon(-1, 0.01, 1)[100] == 0.0  # symmetric about its midpoint


# ---------------------------------------------------------------- VOC 2012 action (VOCevalaction.m)


def _action_both(positive, scores):
    """itl's and the port's AP of one action: `positive` per person box (the XML's 0/1 flag,
    +1/-1 in the devkit's image-set file), `scores` per box."""
    gtids = [(f"2012_{i // 2:06d}", i % 2 + 1) for i in range(len(positive))]  # 2 persons/image
    gt = [1 if p else -1 for p in positive]
    port = devkit.vocevalaction(gtids, gt, gtids, scores)[2]
    mine = metrics.average_precision(torch.tensor(scores, dtype=torch.float64),
                                     torch.tensor(positive))
    return mine, port


def test_action_ap_is_the_voc2012_devkits_all_point_ap_on_fixed_cases():
    positive = [1, 0, 1, 0, 0, 1, 0, 0, 0, 1]
    scores = [0.9, 0.8, 0.7, 0.7, 0.6, 0.6, 0.5, 0.4, 0.3, 0.2]  # ties keep their order
    mine, port = _action_both(positive, scores)
    # by hand: + - + - - + - - - + -> recall .25 at 1, .5 at 2/3, .75 at 1/2, 1 at 2/5; the
    # envelope is the same; all-point AP = .25 (1 + 2/3 + 1/2 + 2/5)
    assert port == pytest.approx(0.25 * (1 + 2 / 3 + 1 / 2 + 2 / 5))
    assert mine == pytest.approx(port, abs=1e-12)
    # the 11-point rule would give another number on the same ranking
    rec = torch.tensor([.25, .25, .5, .5, .5, .75, .75, .75, .75, 1.0], dtype=torch.float64)
    prec = torch.tensor([1, .5, 2 / 3, .5, .4, .5, 3 / 7, 3 / 8, 1 / 3, .4], dtype=torch.float64)
    assert metrics.voc_ap(rec, prec) == pytest.approx((3 + 3 * 2 / 3 + 2 * .5 + 3 * .4) / 11)
    assert abs(metrics.voc_ap(rec, prec) - port) > 0.01
    # the envelope lifts an early dip: - + + -> recall .5 at 1/2 and 1 at 2/3 -> 2/3
    mine, port = _action_both([0, 1, 1], [3.0, 2.0, 1.0])
    assert port == pytest.approx(2 / 3) and mine == pytest.approx(port, abs=1e-12)
    # equal scores: the positive listed first ranks first (MATLAB's stable sort)
    mine, port = _action_both([1, 0], [1.0, 1.0])
    assert port == 1.0 and mine == port
    mine, port = _action_both([0, 1], [1.0, 1.0])
    assert port == 0.5 and mine == port


@pytest.mark.parametrize("draw", range(5))
def test_action_ap_is_the_voc2012_devkits_on_seeded_random_scores(draw):
    rs = np.random.RandomState(300 + draw)
    n = 150
    positive = (rs.rand(n) < 0.2).astype(int).tolist()
    scores = rs.rand(n).round(1).tolist()  # many ties
    mine, port = _action_both(positive, scores)
    assert mine == pytest.approx(port, abs=1e-12)


def test_action_map_is_the_mean_of_the_devkits_aps():
    rs = np.random.RandomState(7)
    n, k = 60, 4
    flags = rs.rand(n, k) < 0.3
    y = torch.tensor([sum(int(f) << j for j, f in enumerate(row)) for row in flags])
    scores = torch.tensor(rs.rand(n, k).round(2))
    r = metrics.mean_ap(scores, y, ("jumping", "phoning", "reading", "running"))
    port = [_action_both(flags[:, j].astype(int).tolist(), scores[:, j].tolist())[1]
            for j in range(k)]
    assert r["mAP"] / 100 == pytest.approx(np.mean(port), abs=1e-12)
