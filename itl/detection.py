"""Detection, the paper's headline transfer task (PASCAL-DET, VOC 2007 mAP at IoU 0.5).

- `voc_ap` / `evaluate`: the VOC 2007 protocol as the official devkit and py-faster-rcnn's
  `voc_eval` compute it: detections of a class ranked by score, each matched greedily to the
  unmatched ground-truth box of highest IoU (>= 0.5, boxes in inclusive pixel coordinates, so a
  box's width is x2 - x1 + 1); "difficult" boxes count neither as hits nor as misses; AP is the
  11-point interpolated average precision; mAP the mean over classes.
- `finetune_detector`: Faster R-CNN on a pre-trained network's convolutional trunk, trained on a
  VOC-format folder's train split and scored on its test split.

The detection data sets themselves (reading VOC-format folders, BCCD, the generated `voc-cifar`)
are entries of the data set registry, `itl.datasets`.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from itl import data, rng
from itl.datasets.images import decode_rgb
from itl.datasets.voc import Annotation, iou, read_voc

IOU = 0.5  # VOC's overlap criterion


@dataclass(frozen=True)
class Detection:
    image: str
    label: str
    score: float
    box: tuple[float, float, float, float]


def voc_ap(recall: torch.Tensor, precision: torch.Tensor) -> float:
    """VOC 2007 11-point interpolated AP: mean over t in {0, 0.1, ..., 1} of the best precision
    at recall >= t (0 where recall never reaches t)."""
    ap = 0.0
    for t in torch.linspace(0, 1, 11):
        reached = recall >= t - 1e-12
        ap += (precision[reached].max().item() if reached.any() else 0.0) / 11
    return ap


def average_precision(detections: list[Detection], truth: list[Annotation], label: str) -> float:
    gts = {}
    npos = 0
    for a in truth:
        keep = [i for i, lab in enumerate(a.labels) if lab == label]
        diff = [a.difficult[i] if a.difficult else False for i in keep]
        gts[a.image] = (a.boxes[keep].float(), torch.tensor(diff, dtype=torch.bool),
                        torch.zeros(len(keep), dtype=torch.bool))
        npos += sum(not d for d in diff)
    dets = sorted((d for d in detections if d.label == label), key=lambda d: -d.score)
    tp, fp = torch.zeros(len(dets)), torch.zeros(len(dets))
    for i, d in enumerate(dets):
        boxes, diff, used = gts.get(d.image, (torch.zeros(0, 4), torch.zeros(0, dtype=torch.bool),
                                              torch.zeros(0, dtype=torch.bool)))
        if len(boxes):
            overlaps = iou(torch.tensor(d.box, dtype=torch.float32), boxes)
            j = int(overlaps.argmax())
            if overlaps[j] >= IOU:
                if diff[j]:
                    continue  # a difficult box: neither hit nor miss
                if not used[j]:
                    tp[i], used[j] = 1, True
                    continue
        fp[i] = 1
    if npos == 0:
        return float("nan")
    tp, fp = tp.cumsum(0), fp.cumsum(0)
    recall = tp / npos
    precision = tp / (tp + fp).clamp(min=1e-12)
    return voc_ap(recall, precision)


def evaluate(detections: list[Detection], truth: list[Annotation],
             classes: list[str]) -> dict:
    """Per-class AP and their mean (%), VOC 2007 protocol."""
    aps = {c: 100.0 * average_precision(detections, truth, c) for c in classes}
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


def detector(net: torch.nn.Module, classes: list[str], size: int, cfg: DetectConfig):
    from torchvision.models.detection import FasterRCNN
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
    from torchvision.ops import MultiScaleRoIAlign

    trunk, channels = conv_trunk(net)
    trunk.out_channels = channels
    pool = 7  # RoIAlign output, pixels of the trunk's feature map
    return FasterRCNN(
        trunk, num_classes=None,
        rpn_anchor_generator=AnchorGenerator((cfg.anchor_sizes,), ((0.5, 1.0, 2.0),)),
        box_roi_pool=MultiScaleRoIAlign(["0"], output_size=pool, sampling_ratio=2),
        box_head=TwoMLPHead(channels * pool * pool, cfg.box_features),
        box_predictor=FastRCNNPredictor(cfg.box_features, len(classes) + 1),  # + background
        box_batch_size_per_image=cfg.roi_samples,
        rpn_pre_nms_top_n_train=cfg.proposals, rpn_post_nms_top_n_train=cfg.proposals,
        rpn_pre_nms_top_n_test=cfg.proposals // 2, rpn_post_nms_top_n_test=cfg.proposals // 2,
        min_size=size, max_size=size, image_mean=[data.MEAN] * 3, image_std=[data.STD] * 3,
        box_score_thresh=cfg.score_threshold)


def _load_images(root: Path, anns: list[Annotation]) -> list[torch.Tensor]:
    return [decode_rgb(root / "JPEGImages" / f"{a.image}.jpg") for a in anns]


def finetune_detector(net: torch.nn.Module, root: Path, cfg: DetectConfig, seed: int,
                      device: torch.device) -> dict:
    """Train Faster R-CNN on the VOC-format set at `root` (split train) from `net`'s conv trunk,
    every layer trained, and score it on split test (VOC 2007 mAP, %)."""
    train_ann, test_ann = read_voc(root, "train"), read_voc(root, "test")
    classes = sorted({lab for a in train_ann + test_ann for lab in a.labels})
    index = {c: i + 1 for i, c in enumerate(classes)}
    train_img, test_img = _load_images(root, train_ann), _load_images(root, test_ann)
    size = max(max(x.shape[-2:]) for x in train_img)
    torch.manual_seed(seed)
    model = detector(net, classes, size, cfg).to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum,
                          weight_decay=cfg.weight_decay)
    steps = cfg.epochs * -(-len(train_ann) // cfg.batch_size)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, [3 * steps // 4], gamma=0.1)
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
                x, boxes = train_img[j].float() / 255, train_ann[j].boxes.clone()
                if torch.rand(1, generator=g).item() < 0.5:  # horizontal flip
                    w = x.shape[-1]
                    x = x.flip(-1)
                    boxes[:, [0, 2]] = (w - 1) - boxes[:, [2, 0]]
                images.append(x.to(device))
                targets.append({"boxes": boxes.to(device), "labels": torch.tensor(
                    [index[lab] for lab in train_ann[j].labels], device=device)})
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
            for a, out in zip(test_ann[i:i + cfg.batch_size], model(batch)):
                for b, lab, s in zip(out["boxes"].cpu(), out["labels"].tolist(),
                                     out["scores"].tolist()):
                    dets.append(Detection(a.image, classes[lab - 1], s, tuple(b.tolist())))
    r = evaluate(dets, test_ann, classes)
    return {"top1": r["mAP"], "mAP": r["mAP"], "AP": r["AP"], "steps": steps}
