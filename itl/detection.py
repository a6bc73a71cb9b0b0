"""Detection, the paper's headline transfer task (PASCAL-DET, VOC 2007 mAP at IoU 0.5).

- `average_precision` / `evaluate`: VOC 2007 AP under one of two rules (`AP_RULES`), each pinned
  by tests against an independent port of its code (tests/test_voc_eval.py):
  `devkit` (the default) is the VOC 2007 devkit's VOCcode/VOCevaldet.m (ported in
  tests/devkit_port.py). A class's detections are ranked by score (equal scores in their given
  order, as MATLAB's sort keeps them); each is matched to the ground-truth box of its class in
  its image that it overlaps most (IoU in inclusive pixel coordinates, a box's width
  x2 - x1 + 1; the first such box on a tie); it is a hit if that IoU >= 0.5
  (`VOCopts.minoverlap`) and the box is neither difficult nor already detected, ignored
  (neither hit nor miss) if the box is difficult, a miss otherwise. AP is the 11-point
  interpolated AP at MATLAB's `0:0.1:1` (`metrics.voc_ap`).
  `voc_eval` is py-faster-rcnn's lib/datasets/voc_eval.py (with `use_07_metric=True`, as its
  pascal_voc.py sets for 2007; ported in tests/voc_eval_port.py): the same matching, except
  that a hit needs IoU > 0.5 (`if ovmax > ovthresh`), detections are ranked by numpy's default
  (unstable) `np.argsort(-confidence)`, precision is `tp / max(tp + fp, eps)` and the 11
  thresholds are `np.arange(0., 1.1, 0.1)` (`metrics.voc_eval_ap`), whose 0.6 and 0.7 lie a
  step above MATLAB's. Why the devkit by default: it is the official scorer, and
  py-faster-rcnn's own evaluation says of voc_eval "Results computed with the **unofficial**
  Python eval code ... Recompute with `./tools/reval.py --matlab ...` for your paper"
  (pascal_voc._do_python_eval). The two differ only on detections at IoU exactly 0.5, on a
  recall of exactly 0.6 or 0.7, on the order of equal scores (numpy's order may differ between
  machines), and where a difficult box's detection comes first (NaN skipped; 0).
  Under both rules mAP is the mean over the classes that have a non-difficult box (a class
  without one: NaN here, 0 in both sources, which VOC 2007 test never has).
- `finetune_detector`: Faster R-CNN on a pre-trained network's convolutional trunk, trained on a
  VOC-format folder's train split and scored on its test split. A network with Caffe's fc6 and
  fc7 (`models.caffenet`, the paper's) detects as Fast R-CNN's CaffeNet did: conv1-conv5 as the
  trunk (stride 16, 256 channels), RoI max pooling to 6x6 in place of pool5, then the
  pre-trained fc6 and fc7 as the box head (`fc_box_head`); any other network (the small scale's
  strided CNN) gets a fresh two-layer head on RoIAlign features of its whole trunk.
- Boxes: py-faster-rcnn makes VOC's 1-based inclusive indices 0-based on reading and adds the 1
  back when it writes results for the devkit. itl's detector (torchvision's) works in continuous
  coordinates, in which 0-based inclusive pixels x1..x2 are [x1, x2 + 1): targets go in
  through `voc_to_detector` (py-faster-rcnn's box in that frame, so that both compute the same
  regression targets), are mirrored there (`hflip`, py-faster-rcnn's flip), and detections come
  out as `voc_results` writes them under `DetectConfig.box_rule` (`BOX_RULES`): `pixels` (the
  pixels the box covers, `detector_to_voc`) or `py-faster-rcnn` (its test and results-file
  lines, `pyfrcnn_to_voc`). tests/test_detection.py pins each against a port of those lines
  (tests/pyfrcnn_boxes_port.py).

The detection data sets themselves (reading VOC-format folders, BCCD, the generated `voc-cifar`)
are entries of the data set registry, `itl.datasets`.
"""
from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from itl import data, models, rng, runs
from itl.datasets.images import decode_rgb
from itl.datasets.voc import Annotation, iou, read_voc
from itl.metrics import voc_ap, voc_eval_ap

IOU = 0.5  # VOC's overlap criterion (VOCinit.m: VOCopts.minoverlap=0.5; voc_eval: ovthresh=0.5)
AP_RULES = ("devkit", "voc_eval")  # VOC 2007 AP: the devkit's VOCevaldet.m, py-faster-rcnn's
# voc_eval.py (see the module's docstring); the first is the default
BOX_RULES = ("pixels", "py-faster-rcnn")  # how detections become VOC boxes (`voc_results`);
# the first is the default


@dataclass(frozen=True)
class Detection:
    image: str
    label: str
    score: float
    box: tuple[float, float, float, float]


def _known_rule(rule: str) -> None:
    if rule not in AP_RULES:
        raise ValueError(f"unknown VOC 2007 AP rule {rule!r}: choose one of {', '.join(AP_RULES)}")


def average_precision(detections: list[Detection], truth: list[Annotation], label: str,
                      rule: str = AP_RULES[0]) -> float:
    """VOC 2007 AP (a fraction) of the detections of class `label` under `rule` (the module's
    docstring); NaN where the class has no non-difficult box (both sources give 0). In float64,
    as MATLAB and numpy compute."""
    _known_rule(rule)
    empty = torch.zeros(0, 4, dtype=torch.float64)
    gts = {}
    npos = 0
    for a in truth:
        keep = [i for i, lab in enumerate(a.labels) if lab == label]
        diff = [a.difficult[i] if a.difficult else False for i in keep]
        gts[a.image] = (a.boxes[keep].double(), diff, [False] * len(keep))
        npos += sum(not d for d in diff)
    mine = [d for d in detections if d.label == label]
    if rule == "devkit":  # [sc,si]=sort(-confidence): MATLAB's sort is stable
        dets = sorted(mine, key=lambda d: -d.score)
    else:  # sorted_ind = np.argsort(-confidence): numpy's default kind, equal scores unordered
        dets = [mine[i] for i in np.argsort(-np.array([d.score for d in mine], dtype=float))]
    strict = rule == "voc_eval"  # a hit above IOU (`ovmax > ovthresh`), not at it
    tp = torch.zeros(len(dets), dtype=torch.float64)
    fp = torch.zeros(len(dets), dtype=torch.float64)
    for i, d in enumerate(dets):
        boxes, diff, used = gts.get(d.image, (empty, [], []))
        if len(boxes):
            overlaps = iou(torch.tensor(d.box, dtype=torch.float64), boxes)
            j = int(overlaps.argmax())  # the first of equal overlaps (`ov>ovmax`, np.argmax)
            if (overlaps[j] > IOU) if strict else (overlaps[j] >= IOU):
                if diff[j]:
                    continue  # a difficult box: neither hit nor miss
                if not used[j]:
                    tp[i], used[j] = 1, True
                    continue
        fp[i] = 1
    if npos == 0:
        return float("nan")
    tp, fp = tp.cumsum(0), fp.cumsum(0)
    if rule == "devkit":
        return voc_ap(tp / npos, tp / (tp + fp))
    # voc_eval: "avoid divide by zero in case the first detection matches a difficult ground truth"
    return voc_eval_ap(tp / npos, tp / (tp + fp).clamp(min=np.finfo(np.float64).eps))


def evaluate(detections: list[Detection], truth: list[Annotation], classes: list[str],
             rule: str = AP_RULES[0]) -> dict:
    """Per-class AP and their mean (%), VOC 2007 protocol under `rule` (AP_RULES)."""
    aps = {c: 100.0 * average_precision(detections, truth, c, rule) for c in classes}
    valid = [v for v in aps.values() if v == v]
    return {"mAP": sum(valid) / len(valid) if valid else float("nan"), "AP": aps}


# ---------------------------------------------------------------- Faster R-CNN on a pre-trained trunk


@dataclass(frozen=True)
class DetectConfig:
    epochs: int = 12  # over the detection set's training images
    batch_size: int = 8  # images per step
    lr: float = 0.01  # per step; SGD, divided by 10 after 3/4 of the steps
    momentum: float = 0.9
    weight_decay: float = 1e-4
    anchor_sizes: tuple[int, ...] = (16, 32, 64, 128)  # pixels
    score_threshold: float = 0.01  # detections kept for scoring
    # the box head's work: sampled proposals per training image (Faster R-CNN's 512 suits
    # 600 px images with many objects; Fast R-CNN used 64) and the width of its two fc layers
    roi_samples: int = 512
    box_features: int = 1024
    proposals: int = 2000  # RPN proposals before and after NMS in training (half at test time)
    # Added for the paper scale (py-faster-rcnn's VOC 2007 settings, docs/paper-protocol.md);
    # at their defaults they leave a run's key as it was (config_dict):
    steps: int | None = None  # SGD iterations (Caffe's max_iter) in place of epochs
    lr_step: int | None = None  # lr divided by 10 every lr_step iterations (Caffe's "step"
    # policy); None: once, after 3/4 of the steps
    min_size: int | None = None  # px of an image's shorter side (py-faster-rcnn: 600); None:
    # every image scaled to the largest training image's longer side
    max_size: int | None = None  # px the longer side may not exceed (py-faster-rcnn: 1000)
    pre_nms: tuple[int, int] | None = None  # RPN proposals kept before NMS (training, test);
    # None: (proposals, proposals // 2)
    post_nms: tuple[int, int] | None = None  # ... and after NMS; None: as pre_nms's default
    box_nms: float = 0.5  # IoU of the per-class NMS on detections (torchvision's default)
    caffe_param_groups: bool = False  # Caffe's param groups: biases at 2 x lr (`lr_mult: 2`),
    # their weight decay bias_decay_mult x weight_decay
    train_difficult: bool = True  # train on boxes marked difficult (py-faster-rcnn: no)
    bias_decay_mult: float = 0.0  # Caffe's `decay_mult` on biases, with caffe_param_groups:
    # 0 in Fast R-CNN's CaffeNet prototxt (and BVLC's), 1 (Caffe's default: caffe.proto
    # ParamSpec `decay_mult ... [default = 1.0]`) in py-faster-rcnn's end2end ones
    ap_rule: str = AP_RULES[0]  # how VOC 2007 AP is computed (AP_RULES; module docstring)
    box_rule: str = "pixels"  # how detections become VOC boxes (BOX_RULES; `voc_results`)

    def __post_init__(self):
        for name in ("steps", "lr_step", "min_size", "max_size"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"DetectConfig {name}={value}: give a positive number, or None")
        _known_rule(self.ap_rule)
        if self.box_rule not in BOX_RULES:
            raise ValueError(f"DetectConfig box_rule={self.box_rule!r}: choose one of "
                             f"{', '.join(BOX_RULES)}")
        if self.bias_decay_mult and not self.caffe_param_groups:
            raise ValueError(f"DetectConfig bias_decay_mult={self.bias_decay_mult} needs "
                             "caffe_param_groups=True (without it every parameter decays at "
                             "weight_decay)")


ADDED = ("steps", "lr_step", "min_size", "max_size", "pre_nms", "post_nms", "box_nms",
         "caffe_param_groups", "train_difficult", "bias_decay_mult", "ap_rule",
         "box_rule")  # fields newer than the first detection runs


def config_dict(cfg: DetectConfig) -> dict:
    """`cfg` as plain data for the run store's key: every field, except the ADDED ones that
    still hold their default, so that detection runs stored before them keep their hashes."""
    return runs.key_settings(cfg, ADDED)


@dataclass(frozen=True)
class Schedule:
    """A detection fine-tuning's SGD schedule, by name (SCHEDULES): `steps` iterations at the
    config's lr, divided by 10 every `lr_step` (Caffe's "step" policy)."""
    name: str
    steps: int  # SGD iterations (train_net.py's --iters, Caffe's max_iter)
    lr_step: int  # Caffe's `stepsize`
    source: str  # where it was read


SCHEDULES = {s.name: s for s in (
    # py-faster-rcnn's VOC 2007 end-to-end recipe, the code the paper's PASCAL-DET used
    # ("experimental setup and code: Faster-RCNN", /work/shared/reference/paper-note-zh.txt):
    # experiments/scripts/faster_rcnn_end2end.sh `ITERS=70000` for pascal_voc; models/
    # pascal_voc/{ZF,VGG_CNN_M_1024,VGG16}/faster_rcnn_end2end/solver.prototxt `stepsize: 50000`
    Schedule("py-faster-rcnn", 70_000, 50_000,
             "rbgirshick/py-faster-rcnn@781a917 experiments/scripts/faster_rcnn_end2end.sh, "
             "models/pascal_voc/*/faster_rcnn_end2end/solver.prototxt"),
    # the seed issue's PASCAL-DET schedule, 50,000 iterations, lr / 10 every 20,000: the one the
    # paper note gives for fine-tuning with a new fc8 of SUN's size (SUN-CLS's, itl.scales
    # SUN_FINETUNE), which is also Caffe's finetune_flickr_style stepsize
    Schedule("seed", 50_000, 20_000,
             "the seed issue; paper-note-zh.txt's fine-tuning sentence (fc8 replaced)"),
)}
PAPER_SCHEDULE = "py-faster-rcnn"  # the paper scale's (docs/paper-protocol.md section 1)


def with_schedule(cfg: DetectConfig, name: str) -> DetectConfig:
    """`cfg` trained on the named schedule (SCHEDULES): its steps and lr_step."""
    if name not in SCHEDULES:
        raise ValueError(f"unknown detection schedule {name!r}: choose one of "
                         f"{', '.join(SCHEDULES)}")
    return replace(cfg, steps=SCHEDULES[name].steps, lr_step=SCHEDULES[name].lr_step)


def schedule(cfg: DetectConfig, images: int) -> tuple[int, tuple[int, ...]]:
    """SGD steps of a detection fine-tuning on `images` training images, and the steps at which
    the learning rate is divided by 10."""
    per_epoch = math.ceil(images / cfg.batch_size)
    steps = cfg.steps if cfg.steps is not None else cfg.epochs * per_epoch
    if cfg.lr_step is None:
        return steps, (3 * steps // 4,)
    return steps, tuple(range(cfg.lr_step, steps, cfg.lr_step))


def conv_trunk(net: torch.nn.Module) -> tuple[torch.nn.Module, int]:
    """The convolutional part of a classification backbone (everything before global pooling),
    and its number of output channels: what Faster R-CNN builds on, as R-CNN built on AlexNet's
    conv layers."""
    kept = []
    for m in net.backbone.children():
        if isinstance(m, (torch.nn.AdaptiveAvgPool2d, torch.nn.Flatten)):
            break
        kept.append(m)
    trunk = torch.nn.Sequential(*kept)
    convs = [m for m in trunk.modules() if isinstance(m, torch.nn.Conv2d)]
    if not convs:
        raise ValueError("the backbone has no convolutional trunk to detect with")
    return trunk, convs[-1].out_channels


ROI_POOL = 6  # Fast R-CNN's roi_pool5 for CaffeNet: pooled_w = pooled_h = 6 (fc6's 256 x 6 x 6)
CONV5_SCALE = 1 / 16  # ... spatial_scale 0.0625: conv5's stride in CaffeNet
CLS_STD, BBOX_STD = 0.01, 0.001  # Fast R-CNN's init of cls_score and bbox_pred (biases 0)


class RoIPool5(nn.Module):
    """Fast R-CNN's `roi_pool5`: each proposal's window of conv5 max-pooled into 6x6 bins
    (torchvision's RoIPool, a port of Fast R-CNN's layer), called as torchvision's RoIHeads call
    their `box_roi_pool`. Max pooling, not RoIAlign's bilinear averages: it stands where CaffeNet's
    pool5 (a max pool) stood, so the pre-trained fc6 reads features of the kind it was trained on,
    as in the detector of the paper's time; the scale is Fast R-CNN's fixed 1/16."""

    def __init__(self):
        super().__init__()
        from torchvision.ops import RoIPool
        self.pool = RoIPool(ROI_POOL, CONV5_SCALE)

    def forward(self, features: dict, proposals: list[torch.Tensor], image_shapes) -> torch.Tensor:
        return self.pool(features["0"], proposals)


def fc_box_head(net: nn.Module) -> nn.Module | None:
    """The pre-trained fc6 -> fc7 of a network that has them (`models.caffenet`: fc6, relu6,
    drop6, fc7, relu7, drop7, the very modules, dropout as in training), after a flatten of the
    6x6 RoI features; None for a network without them."""
    classifier = getattr(net.backbone, "classifier", None)
    if not (hasattr(classifier, "fc6") and hasattr(classifier, "fc7")):
        return None
    return nn.Sequential(OrderedDict([("flatten", nn.Flatten()),
                                      *classifier.named_children()]))


def conv5_trunk(net: nn.Module) -> tuple[nn.Module, int]:
    """conv1-conv5 of a CaffeNet (its features without pool5, whose place RoI pooling takes):
    stride 16, conv5's channels."""
    kept = [(n, m) for n, m in net.backbone.features.named_children() if n != "pool5"]
    return nn.Sequential(OrderedDict(kept)), net.backbone.features.conv5.out_channels


def detector(net: torch.nn.Module, classes: list[str], size: int, cfg: DetectConfig,
             generator: torch.Generator | None = None):
    """Faster R-CNN on `net` for `classes` (+ background), images scaled to `size` px (or to
    cfg.min_size / cfg.max_size). With fc6/fc7 (`fc_box_head`): conv1-conv5, RoIPool5, the
    pre-trained fc6/fc7 and fresh predictors drawn from `generator` with Fast R-CNN's stds;
    otherwise the whole conv trunk, RoIAlign 7x7 and a fresh two-layer head."""
    from torchvision.models.detection import FasterRCNN
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
    from torchvision.ops import MultiScaleRoIAlign

    head = fc_box_head(net)
    if head is None:
        trunk, channels = conv_trunk(net)
        pool = 7  # RoIAlign output, pixels of the trunk's feature map
        roi_pool = MultiScaleRoIAlign(["0"], output_size=pool, sampling_ratio=2)
        head, features = TwoMLPHead(channels * pool * pool, cfg.box_features), cfg.box_features
    else:
        trunk, channels = conv5_trunk(net)
        roi_pool, features = None, head.fc7.out_features  # RoIPool5, set below
    trunk.out_channels = channels
    predictor = FastRCNNPredictor(features, len(classes) + 1)  # + background
    pre = cfg.pre_nms or (cfg.proposals, cfg.proposals // 2)
    post = cfg.post_nms or (cfg.proposals, cfg.proposals // 2)
    model = FasterRCNN(
        trunk, num_classes=None,
        rpn_anchor_generator=AnchorGenerator((cfg.anchor_sizes,), ((0.5, 1.0, 2.0),)),
        box_roi_pool=roi_pool, box_head=head, box_predictor=predictor,
        box_batch_size_per_image=cfg.roi_samples,
        rpn_pre_nms_top_n_train=pre[0], rpn_post_nms_top_n_train=post[0],
        rpn_pre_nms_top_n_test=pre[1], rpn_post_nms_top_n_test=post[1],
        min_size=cfg.min_size or size, max_size=cfg.max_size or size,
        image_mean=[data.MEAN] * 3, image_std=[data.STD] * 3,
        box_score_thresh=cfg.score_threshold, box_nms_thresh=cfg.box_nms)
    if roi_pool is None:  # FasterRCNN takes only RoIAlign; Fast R-CNN's pooling replaces it
        model.roi_heads.box_roi_pool = RoIPool5()
        with torch.no_grad():
            for layer, std in ((predictor.cls_score, CLS_STD), (predictor.bbox_pred, BBOX_STD)):
                layer.weight.normal_(0.0, std, generator=generator)
                layer.bias.zero_()
    return model


# VOC boxes and the detector's. VOC's xmin..xmax are 1-based inclusive pixel indices.
# py-faster-rcnn makes them 0-based on reading (pascal_voc._load_pascal_annotation: `x1 =
# float(bbox.find('xmin').text) - 1`, the same for y1, x2, y2) and measures a box as inclusive
# (bbox_transform: `widths = x2 - x1 + 1.0`, centre `x1 + 0.5 * widths`). torchvision's Faster
# R-CNN takes continuous coordinates (width x2 - x1), in which the 0-based pixels x1..x2 are
# [x1, x2 + 1): the same width and centre, so both detectors learn the same regression targets
# from the same object (tests/test_detection.py, against a port of bbox_transform).
_VOC_OFFSET = torch.tensor([1.0, 1.0, 0.0, 0.0])


def voc_to_detector(boxes: torch.Tensor) -> torch.Tensor:
    """VOC boxes (N x 4, 1-based inclusive) in the detector's frame: py-faster-rcnn's 0-based
    box (x1, y1, x2, y2) = VOC - 1 as the continuous [x1, y1, x2 + 1, y2 + 1), i.e. [xmin - 1,
    ymin - 1, xmax, ymax)."""
    return boxes - _VOC_OFFSET.to(boxes)


def detector_to_voc(boxes: torch.Tensor) -> torch.Tensor:
    """The inverse of `voc_to_detector` (box rule "pixels"): the VOC box of the pixels a
    detector box covers, [x1, x2) -> xmin = x1 + 1, xmax = x2."""
    return boxes + _VOC_OFFSET.to(boxes)


def pyfrcnn_to_voc(boxes: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Detector boxes (N x 4, float32) of an image of `size` (height, width) as py-faster-rcnn
    writes its detections (box rule "py-faster-rcnn"). Its decoder hands over the continuous
    box's own numbers (bbox_transform_inv: `x2 = pred_ctr_x + 0.5 * pred_w`, no - 1), which it
    takes as 0-based inclusive: clipped to [0, width - 1] x [0, height - 1] (test.im_detect:
    clip_boxes) and written + 1 on all four (pascal_voc._write_voc_results_file: "the VOCdevkit
    expects 1-based indices"), in float32. So its boxes reach one pixel further right and down
    than the pixels they cover."""
    h, w = size
    limit = torch.tensor([w - 1, h - 1, w - 1, h - 1], dtype=boxes.dtype)
    return torch.minimum(boxes, limit).clamp(min=0) + 1


def voc_results(image: str, labels: list[str], boxes: torch.Tensor, scores: list[float],
                size: tuple[int, int], rule: str) -> list[Detection]:
    """One test image's detections (labels, detector boxes, scores) as the VOC results the AP is
    computed from, under box rule `rule` (BOX_RULES): "pixels", the boxes' pixels
    (`detector_to_voc`) and the scores as they are; "py-faster-rcnn", the lines of its results
    file (`pyfrcnn_to_voc`, then `'{:s} {:.3f} {:.1f} {:.1f} {:.1f} {:.1f}'`: scores to 0.001,
    coordinates to 0.1 px, read back as numbers by both evaluators)."""
    if rule == "pixels":
        return [Detection(image, lab, s, tuple(detector_to_voc(b).tolist()))
                for b, lab, s in zip(boxes, labels, scores)]
    return [Detection(image, lab, float(f"{s:.3f}"), tuple(float(f"{v:.1f}") for v in b.tolist()))
            for b, lab, s in zip(pyfrcnn_to_voc(boxes, size), labels, scores)]


def hflip(x: torch.Tensor, boxes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """An image (... x H x W) and its boxes in the detector's frame, mirrored left to right: x
    becomes W - x, so the box over pixels x1..x2 lands on W-1-x2..W-1-x1, the mirrored object's
    (py-faster-rcnn, in its 0-based inclusive frame: imdb.append_flipped_images, `boxes[:, 0] =
    widths[i] - oldx2 - 1`, `boxes[:, 2] = widths[i] - oldx1 - 1`)."""
    w = x.shape[-1]
    mirrored = boxes.clone()
    mirrored[:, [0, 2]] = w - boxes[:, [2, 0]]
    return x.flip(-1), mirrored


def sgd_params(model: nn.Module, cfg: DetectConfig) -> list:
    """What SGD trains: every parameter at cfg.lr and cfg.weight_decay; with
    cfg.caffe_param_groups, Caffe's groups (`models.param_groups`: weights at lr, biases at 2 x
    lr), the biases' weight decay cfg.bias_decay_mult x cfg.weight_decay."""
    if not cfg.caffe_param_groups:
        return [p for p in model.parameters() if p.requires_grad]
    groups = models.param_groups(model, cfg.lr, cfg.weight_decay, caffe=True)
    groups[1]["weight_decay"] = cfg.bias_decay_mult * cfg.weight_decay
    return groups


def _load_images(root: Path, anns: list[Annotation]) -> list[torch.Tensor]:
    return [decode_rgb(root / "JPEGImages" / f"{a.image}.jpg") for a in anns]


def finetune_detector(net: torch.nn.Module, root: Path, cfg: DetectConfig, seed: int,
                      device: torch.device, train_split: str = "train",
                      test_split: str = "test") -> dict:
    """Train Faster R-CNN on the VOC-format set at `root` (split `train_split`) from `net`'s conv
    trunk (and fc6/fc7 where it has them), every layer trained, and score it on split `test_split`
    (VOC 2007 mAP, %)."""
    train_ann, test_ann = read_voc(root, train_split), read_voc(root, test_split)
    classes = sorted({lab for a in train_ann + test_ann for lab in a.labels})
    index = {c: i + 1 for i, c in enumerate(classes)}
    train_img, test_img = _load_images(root, train_ann), _load_images(root, test_ann)
    size = max(max(x.shape[-2:]) for x in train_img)
    torch.manual_seed(seed)
    model = detector(net, classes, size, cfg, rng.generator("detect-head", seed)).to(device)
    opt = torch.optim.SGD(sgd_params(model, cfg), lr=cfg.lr, momentum=cfg.momentum,
                          weight_decay=cfg.weight_decay)
    steps, milestones = schedule(cfg, len(train_ann))
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, list(milestones), gamma=0.1)
    g = rng.generator("detect", seed)
    model.train()
    step = 0
    while step < steps:
        order = torch.randperm(len(train_ann), generator=g).tolist()
        for i in range(0, len(order), cfg.batch_size):
            if step >= steps:
                break
            images, targets = [], []
            for j in order[i:i + cfg.batch_size]:
                x, a = train_img[j].float() / 255, train_ann[j]
                boxes, labels = a.boxes, a.labels
                if not cfg.train_difficult and a.difficult:
                    keep = [k for k, d in enumerate(a.difficult) if not d]
                    boxes, labels = boxes[keep], [labels[k] for k in keep]
                boxes = voc_to_detector(boxes)
                if torch.rand(1, generator=g).item() < 0.5:
                    x, boxes = hflip(x, boxes)
                images.append(x.to(device))
                targets.append({"boxes": boxes.to(device), "labels": torch.tensor(
                    [index[lab] for lab in labels], dtype=torch.int64, device=device)})
            loss = sum(model(images, targets).values())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            step += 1
    model.eval()
    dets = []
    with torch.no_grad():
        for i in range(0, len(test_ann), cfg.batch_size):
            batch = [x.float().div(255).to(device) for x in test_img[i:i + cfg.batch_size]]
            for a, x, out in zip(test_ann[i:i + cfg.batch_size], batch, model(batch)):
                dets += voc_results(a.image, [classes[lab - 1] for lab in out["labels"].tolist()],
                                    out["boxes"].cpu(), out["scores"].tolist(),
                                    tuple(x.shape[-2:]), cfg.box_rule)
    r = evaluate(dets, test_ann, classes, cfg.ap_rule)
    return {"top1": r["mAP"], "mAP": r["mAP"], "AP": r["AP"], "steps": steps}
