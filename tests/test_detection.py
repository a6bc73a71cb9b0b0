"""The VOC 2007 mAP evaluator against hand-computed cases (against the devkit and
py-faster-rcnn's voc_eval: test_voc_eval.py), the detector's box frame, flip and results against
a port of py-faster-rcnn's box lines (pyfrcnn_boxes_port.py), the named schedules and the bias
decay, reading VOC-format folders, and the generated VOC-format set."""
import dataclasses
import math

import numpy as np
import pytest
import torch

import pyfrcnn_boxes_port as frcnn
from itl import detection as det
from itl.data import ImageSet
from itl.datasets import voc, voc_cifar


def _gt(image, boxes, labels, difficult=None):
    return voc.Annotation(image, torch.tensor(boxes, dtype=torch.float32), labels,
                          difficult or [False] * len(labels))


def test_eleven_point_ap_by_hand():
    truth = [_gt("a", [[0, 0, 9, 9], [20, 20, 29, 29]], ["cat", "cat"])]
    dets = [det.Detection("a", "cat", 0.9, (0, 0, 9, 9)),       # hit
            det.Detection("a", "cat", 0.8, (0, 0, 9, 9)),       # same box again: miss
            det.Detection("a", "cat", 0.7, (20, 20, 29, 30))]   # hit (IoU 100/110)
    # recall .5 .5 1, precision 1 .5 .667: t <= .5 -> 1 (6 points), t > .5 -> 2/3 (5 points)
    assert det.average_precision(dets, truth, "cat") == pytest.approx((6 + 5 * 2 / 3) / 11)


def test_iou_uses_inclusive_pixel_coordinates():
    a = torch.tensor([0.0, 0, 9, 9])
    assert voc.iou(a, torch.tensor([[5.0, 0, 14, 9]])).item() == pytest.approx(50 / 150)
    truth = [_gt("a", [[0, 0, 9, 9]], ["dog"])]
    assert det.average_precision([det.Detection("a", "dog", 1.0, (5, 0, 14, 9))],
                                 truth, "dog") == 0.0  # IoU 1/3 < 0.5: a miss


def test_difficult_boxes_are_neither_hits_nor_misses():
    truth = [_gt("a", [[0, 0, 9, 9], [50, 50, 59, 59]], ["car", "car"], [False, True])]
    dets = [det.Detection("a", "car", 0.9, (50, 50, 59, 59)),  # on the difficult box: ignored
            det.Detection("a", "car", 0.8, (0, 0, 9, 9))]      # the one positive
    assert det.average_precision(dets, truth, "car") == pytest.approx(1.0)


def test_map_over_classes_skips_classes_without_ground_truth():
    truth = [_gt("a", [[0, 0, 9, 9]], ["cat"]), _gt("b", [[0, 0, 9, 9]], ["dog"])]
    dets = [det.Detection("a", "cat", 0.9, (0, 0, 9, 9)),
            det.Detection("a", "dog", 0.9, (0, 0, 9, 9)),   # wrong image: miss
            det.Detection("b", "dog", 0.5, (0, 0, 9, 9))]   # hit at recall 1, precision .5
    r = det.evaluate(dets, truth, ["cat", "dog", "bird"])
    assert r["AP"]["cat"] == pytest.approx(100.0) and r["AP"]["dog"] == pytest.approx(50.0)
    assert math.isnan(r["AP"]["bird"]) and r["mAP"] == pytest.approx(75.0)


def _pixels(box: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """The pixels a box in the detector's continuous frame covers: those whose unit square
    [j, j + 1) lies inside it."""
    cols, rows = torch.arange(w), torch.arange(h)
    x_in = (cols >= box[0]) & (cols + 1 <= box[2])
    y_in = (rows >= box[1]) & (rows + 1 <= box[3])
    return y_in[:, None] & x_in[None, :]


def test_flip_mirrors_a_box_onto_its_mirrored_object():
    h, w = 20, 31
    x = torch.zeros(3, h, w)
    x[:, 4:10, 2:13] = 1.0  # an object on 0-based rows 4..9, columns 2..12
    voc_box = torch.tensor([[3.0, 5, 13, 10]])  # ... as VOC writes it: 1-based, inclusive
    box = det.voc_to_detector(voc_box)
    assert torch.equal(_pixels(box[0], h, w), x[0] > 0)
    assert torch.equal(det.detector_to_voc(box), voc_box)
    flipped, mirrored = det.hflip(x, box)
    assert torch.equal(flipped, x.flip(-1))
    assert torch.equal(_pixels(mirrored[0], h, w), flipped[0] > 0)  # exactly its pixels
    assert det.detector_to_voc(mirrored).tolist() == [[19.0, 5, 29, 10]]  # columns 30-12..30-2
    again, back = det.hflip(flipped, mirrored)
    assert torch.equal(again, x) and torch.equal(back, box)


# ---------------------------------------------------------------- boxes, against py-faster-rcnn

VOC_BOXES = [[1, 1, 1, 1], [3, 5, 13, 10], [1, 1, 500, 375], [48, 240, 195, 371],
             [8, 12, 352, 498], [100, 2, 101, 3]]  # 1-based inclusive, as in VOC's XML
INCLUSIVE_TO_CONTINUOUS = torch.tensor([0.0, 0, 1, 1], dtype=torch.float64)


def _loaded(voc_boxes) -> np.ndarray:
    """py-faster-rcnn's 0-based inclusive boxes of VOC boxes, read from their XML text."""
    return frcnn.load_boxes([dict(zip(("xmin", "ymin", "xmax", "ymax"), map(str, b)))
                             for b in voc_boxes])


def test_voc_boxes_enter_the_detector_as_py_faster_rcnn_reads_them():
    """itl's detector box is py-faster-rcnn's 0-based inclusive box x1..x2 as the continuous
    [x1, x2 + 1): the same width and centre, so the same regression targets."""
    voc_boxes = torch.tensor(VOC_BOXES, dtype=torch.float64)
    mine = det.voc_to_detector(voc_boxes)
    theirs = torch.from_numpy(_loaded(VOC_BOXES).astype(np.float64))
    assert torch.equal(mine, theirs + INCLUSIVE_TO_CONTINUOUS)
    assert torch.equal(det.detector_to_voc(mine), voc_boxes)
    # targets of every box against every other: bbox_transform on py-faster-rcnn's boxes,
    # torchvision's encoder (weights 1, as its RPN's) on itl's
    from torchvision.models.detection._utils import BoxCoder
    n = len(VOC_BOXES)
    ex, gt = (torch.arange(n).repeat_interleave(n), torch.arange(n).repeat(n))
    theirs = frcnn.bbox_transform(_loaded(VOC_BOXES)[ex.numpy()].astype(np.float64),
                                  _loaded(VOC_BOXES)[gt.numpy()].astype(np.float64))
    mine = BoxCoder((1.0, 1.0, 1.0, 1.0)).encode_single(det.voc_to_detector(voc_boxes)[gt],
                                                         det.voc_to_detector(voc_boxes)[ex])
    assert np.allclose(mine.numpy(), theirs, rtol=1e-12, atol=1e-12)
    # ... while the boxes fed raw (1-based), or 0-based without the + 1, would not
    raw = BoxCoder((1.0, 1.0, 1.0, 1.0)).encode_single(torch.from_numpy(
        _loaded(VOC_BOXES).astype(np.float64))[gt], torch.from_numpy(
        _loaded(VOC_BOXES).astype(np.float64))[ex])
    assert not np.allclose(raw.numpy(), theirs, rtol=1e-3, atol=1e-3)


def test_flip_is_py_faster_rcnns():
    width = 500
    flipped = frcnn.flipped(_loaded(VOC_BOXES), width).astype(np.float64)
    x = torch.zeros(3, 375, width)
    image, mine = det.hflip(x, det.voc_to_detector(torch.tensor(VOC_BOXES, dtype=torch.float64)))
    assert torch.equal(mine, torch.from_numpy(flipped) + INCLUSIVE_TO_CONTINUOUS)
    assert det.detector_to_voc(mine)[2].tolist() == [1.0, 1, 500, 375]  # the whole image


def _decoded(draw: int = 0):
    """Boxes a detector might output for a 375 x 500 image: proposals decoded by py-faster-
    rcnn's bbox_transform_inv (float32, as its net's deltas), some beyond the image."""
    rs = np.random.RandomState(draw)
    proposals = _loaded(VOC_BOXES).astype(np.float32)
    deltas = (rs.randn(len(VOC_BOXES), 4) * 0.3).astype(np.float32)
    deltas[2] = [0.05, 0.05, 0.2, 0.2]  # the whole image, grown: clipped on every side
    return proposals, deltas, frcnn.bbox_transform_inv(proposals, deltas)


def test_torchvisions_decoder_gives_py_faster_rcnns_numbers_in_itls_frame():
    """Why box rule "py-faster-rcnn" adds 1 to x2: decoding the same deltas from the same
    proposal (itl's frame in, as above), torchvision's decoder gives bbox_transform_inv's
    numbers, which py-faster-rcnn then takes as 0-based inclusive (x2 = ctr + w / 2, no - 1)."""
    from torchvision.models.detection._utils import BoxCoder
    proposals, deltas, theirs = _decoded()
    mine = BoxCoder((1.0, 1.0, 1.0, 1.0)).decode_single(
        torch.from_numpy(deltas).double(),
        torch.from_numpy(proposals).double() + INCLUSIVE_TO_CONTINUOUS)
    assert np.allclose(mine.numpy(), theirs, rtol=1e-6, atol=1e-4)


@pytest.mark.parametrize("draw", range(3))
def test_results_are_py_faster_rcnns_results_file_lines(draw):
    from torchvision.ops import clip_boxes_to_image
    h, w = 375, 500
    _, _, decoded = _decoded(draw)
    scores = np.random.RandomState(100 + draw).rand(len(decoded)).astype(np.float32)
    dets = np.hstack((frcnn.clip_boxes(decoded.copy(), (h, w, 3)), scores[:, None]))
    lines = frcnn.results_lines("000005", dets.astype(np.float32))
    # itl gets torchvision's output: the decoded boxes clipped to [0, w] x [0, h]
    out = clip_boxes_to_image(torch.from_numpy(decoded), (h, w))
    mine = det.voc_results("000005", ["cat"] * len(out), out, scores.tolist(), (h, w),
                           "py-faster-rcnn")
    parsed = [line.split() for line in lines]
    assert [(d.image, d.score, d.box) for d in mine] == [
        (p[0], float(p[1]), tuple(float(v) for v in p[2:])) for p in parsed]
    assert mine[2].box == (1.0, 1.0, 500.0, 375.0)  # clipped to the image's last pixel, + 1
    # box rule "pixels": the pixels covered, one fewer on the right and bottom, unrounded
    pixels = det.voc_results("000005", ["cat"] * len(out), out, scores.tolist(), (h, w),
                             "pixels")
    assert pixels[2].box == (1.0, 1.0, 500.0, 375.0)  # torchvision clips to [0, 500]
    inside = [k for k in range(len(out)) if (out[k] > 0).all() and out[k][2] < w - 1
              and out[k][3] < h - 1]
    assert inside
    for k in inside:
        assert pixels[k].box[2:] == pytest.approx(tuple(v - 1 for v in mine[k].box[2:]),
                                                  abs=0.051)
        assert pixels[k].score == float(scores[k])


def test_box_and_ap_rules_are_checked_and_leave_old_keys_alone():
    with pytest.raises(ValueError, match="box_rule='voc': choose one of pixels, py-faster-rcnn"):
        det.DetectConfig(box_rule="voc")
    with pytest.raises(ValueError, match="unknown VOC 2007 AP rule 'matlab': choose one of "
                                         "devkit, voc_eval"):
        det.DetectConfig(ap_rule="matlab")
    with pytest.raises(ValueError, match="bias_decay_mult=1.0 needs caffe_param_groups=True"):
        det.DetectConfig(bias_decay_mult=1.0)
    plain = det.config_dict(det.DetectConfig())
    assert not {"ap_rule", "box_rule", "bias_decay_mult"} & set(plain)
    assert det.config_dict(det.DetectConfig(ap_rule="voc_eval")) == {**plain,
                                                                    "ap_rule": "voc_eval"}


# ---------------------------------------------------------------- schedule and biases


def test_named_schedules_give_py_faster_rcnns_and_the_seeds():
    cfg = det.DetectConfig(lr=0.001, batch_size=2)
    assert det.schedule(det.with_schedule(cfg, "py-faster-rcnn"), 5011) == (70_000, (50_000,))
    assert det.schedule(det.with_schedule(cfg, "seed"), 5011) == (50_000, (20_000, 40_000))
    assert det.PAPER_SCHEDULE in det.SCHEDULES
    with pytest.raises(ValueError, match="unknown detection schedule 'fast': choose one of "
                                         "py-faster-rcnn, seed"):
        det.with_schedule(cfg, "fast")
    with pytest.raises(dataclasses.FrozenInstanceError):
        det.SCHEDULES["seed"].steps = 1


def test_bias_decay_follows_caffes_decay_mult():
    from itl import models
    model = det.detector(models.build("small_cnn", 3, 0), ["cat"], 64, det.DetectConfig())
    fast_rcnn = det.DetectConfig(lr=0.001, weight_decay=5e-4, caffe_param_groups=True)
    weights, biases = det.sgd_params(model, fast_rcnn)
    assert (weights["lr"], weights["weight_decay"]) == (0.001, 5e-4)
    assert (biases["lr"], biases["weight_decay"]) == (0.002, 0.0)  # decay_mult: 0
    assert biases["params"] and all(p.dim() == 1 for p in biases["params"])
    end2end = dataclasses.replace(fast_rcnn, bias_decay_mult=1.0)
    assert det.sgd_params(model, end2end)[1]["weight_decay"] == 5e-4  # Caffe's default 1
    plain = det.sgd_params(model, det.DetectConfig())
    assert len(plain) == len(list(model.parameters()))  # one group, the optimiser's settings


def _voc(root, n_objects, n_train, n_test, seed=0):
    """A generated set from random two-class objects on black backgrounds."""
    g = torch.Generator().manual_seed(0)
    objects = ImageSet(torch.randint(0, 256, (n_objects, 3, 32, 32), dtype=torch.uint8,
                                     generator=g), torch.arange(n_objects) % 2, ("cat", "ship"))
    backgrounds = ImageSet(torch.zeros(3, 3, 64, 64, dtype=torch.uint8), torch.zeros(3),
                           ("scene",))
    spec = voc_cifar.VocSpec(n_train=n_train, n_test=n_test, size=96, seed=seed)
    return objects, backgrounds, spec, voc_cifar.make_voc(objects, backgrounds, spec, root)


def test_generated_voc_set_round_trips(tmp_path):
    objects, backgrounds, spec, out = _voc(tmp_path / "voc", 10, 6, 4, seed=1)
    train = voc.read_voc(out, "train")
    assert len(train) == 6 and len(voc.read_voc(out, "test")) == 4
    for a in train:
        assert 1 <= len(a.labels) <= spec.max_objects and set(a.labels) <= {"cat", "ship"}
        assert ((a.boxes[:, 2:] - a.boxes[:, :2] + 1) >= spec.min_object).all()
        assert (a.boxes >= 0).all() and (a.boxes < spec.size).all()
        assert (out / "JPEGImages" / f"{a.image}.jpg").is_file()
    # deterministic: the same spec gives the same boxes
    again = voc.read_voc(voc_cifar.make_voc(objects, backgrounds, spec, tmp_path / "voc2"), "train")
    assert all(torch.equal(a.boxes, b.boxes) for a, b in zip(train, again))
    # perfect detections score 100 mAP on the generated set
    dets = [det.Detection(a.image, lab, 1.0, tuple(b.tolist()))
            for a in train for b, lab in zip(a.boxes, a.labels)]
    assert det.evaluate(dets, train, ["cat", "ship"])["mAP"] == pytest.approx(100.0)


def test_bccd_reads_as_voc(reference, tmp_path):
    import tarfile
    shard = reference.parents[1] / "data" / "bccd" / "bccd.tar.gz"
    with tarfile.open(shard) as t:
        t.extractall(tmp_path, filter="data")
    test = voc.read_voc(tmp_path / "BCCD", "test")
    assert test and {lab for a in test for lab in a.labels} <= {"RBC", "WBC", "Platelets"}


def test_faster_rcnn_trains_on_a_pretrained_trunk_and_scores(tmp_path, monkeypatch):
    from itl import models
    root = _voc(tmp_path / "voc", 6, 4, 2)[3]
    flips = []
    monkeypatch.setattr(det, "hflip", lambda x, b: flips.append(b) or (x.flip(-1), b))
    net = models.build("alexnet", 10, seed=0)
    trunk, channels = det.conv_trunk(net)
    assert channels == 256 and det.conv_trunk(models.build("small_cnn", 3, 0))[1] == 96
    before = {k: v.clone() for k, v in net.state_dict().items()}
    r = det.finetune_detector(net, root, det.DetectConfig(epochs=1, batch_size=2), seed=0,
                              device=torch.device("cpu"))
    assert 0.0 <= r["mAP"] <= 100.0 and r["steps"] == 2
    assert flips, "training mirrors images (at random) through det.hflip"
    assert r["AP"] and set(r["AP"]) <= {"cat", "ship"}
    assert any(not torch.equal(before[k], v) for k, v in net.state_dict().items()), \
        "fine-tuning must train the trunk too"


def test_detector_settings_reach_faster_rcnn():
    from itl import models
    cfg = det.DetectConfig(roi_samples=16, box_features=32, proposals=100)
    model = det.detector(models.build("strided_cnn", 10, 0), ["cat", "ship"], 64, cfg)
    assert model.backbone.out_channels == 256
    assert model.roi_heads.box_head.fc7.out_features == 32
    assert model.roi_heads.box_predictor.cls_score.out_features == 3  # + background
    assert model.roi_heads.fg_bg_sampler.batch_size_per_image == 16
    assert model.rpn._pre_nms_top_n == {"training": 100, "testing": 50}
    assert model.rpn._post_nms_top_n == {"training": 100, "testing": 50}
    default = det.detector(models.build("small_cnn", 10, 0), ["cat"], 64, det.DetectConfig())
    # the defaults are torchvision's own Faster R-CNN settings
    assert default.roi_heads.box_head.fc7.out_features == 1024
    assert default.roi_heads.fg_bg_sampler.batch_size_per_image == 512
    assert default.rpn._post_nms_top_n == {"training": 2000, "testing": 1000}


def _voc_with(tmp_path, xml: str):
    root = tmp_path / "voc"
    (root / "Annotations").mkdir(parents=True)
    (root / "ImageSets" / "Main").mkdir(parents=True)
    (root / "ImageSets" / "Main" / "train.txt").write_text("good\nbad\n")
    ok = ("<annotation><object><name>cat</name><bndbox><xmin>1</xmin><ymin>2</ymin>"
          "<xmax>10</xmax><ymax>20</ymax></bndbox></object></annotation>")
    (root / "Annotations" / "good.xml").write_text(ok)
    (root / "Annotations" / "bad.xml").write_text(xml)
    return root


@pytest.mark.parametrize("xml, message", [
    ("<annotation><object><name>cat</name>", r"unreadable annotation .*bad.xml: no element"),
    ("<annotation><object><name>cat</name></object></annotation>",
     r"malformed annotation .*bad.xml: object 1 has no <bndbox/xmin>"),
    ("<annotation><object><bndbox><xmin>1</xmin><ymin>2</ymin><xmax>3</xmax><ymax>4</ymax>"
     "</bndbox></object></annotation>", r"malformed annotation .*bad.xml: object 1 has no <name>"),
    ("<annotation><object><name> </name><bndbox><xmin>1</xmin><ymin>2</ymin><xmax>3</xmax>"
     "<ymax>4</ymax></bndbox></object></annotation>",
     r"malformed annotation .*bad.xml: object 1 has an empty <name>"),
    ("<annotation><object><name>cat</name><bndbox><xmin>1</xmin><ymin>two</ymin><xmax>3"
     "</xmax><ymax>4</ymax></bndbox></object></annotation>",
     r"malformed annotation .*bad.xml: object 1 has <bndbox/ymin> 'two', not a number"),
    ("<annotation><object><name>cat</name><bndbox><xmin>9</xmin><ymin>2</ymin><xmax>3</xmax>"
     "<ymax>4</ymax></bndbox></object></annotation>",
     r"malformed annotation .*bad.xml: object 1 \(cat\) has the box \[9.0, 2.0, 3.0, 4.0\]"),
    ("<annotation><object><name>cat</name><bndbox><xmin>1</xmin><ymin>2</ymin><xmax>3</xmax>"
     "<ymax>4</ymax></bndbox><difficult/></object></annotation>", None),
])
def test_malformed_voc_xml_is_one_error_naming_the_file(tmp_path, xml, message):
    from itl.data import DataError
    root = _voc_with(tmp_path, xml)
    if message is None:  # an empty <difficult/> reads as not difficult
        assert voc.read_voc(root, "train")[1].difficult == [False]
        return
    with pytest.raises(DataError, match=message) as e:
        voc.read_voc(root, "train")
    assert "\n" not in str(e.value)
