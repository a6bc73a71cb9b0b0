"""Detection, the paper's headline transfer task (PASCAL-DET, VOC 2007 mAP at IoU 0.5).

- `voc_ap` / `evaluate`: the VOC 2007 protocol as the official devkit and py-faster-rcnn's
  `voc_eval` compute it: detections of a class ranked by score, each matched greedily to the
  unmatched ground-truth box of highest IoU (>= 0.5, boxes in inclusive pixel coordinates, so a
  box's width is x2 - x1 + 1); "difficult" boxes count neither as hits nor as misses; AP is the
  11-point interpolated average precision; mAP the mean over classes.
- `make_voc`: a VOC-format detection set that itl generates deterministically (the small
  scale's stand-in for PASCAL-DET): CIFAR-10 objects pasted at random positions and scales onto
  background images, with their boxes, written as VOC XML + JPEG + ImageSets/Main lists.
- `read_voc`: reads any VOC-format folder (the generated set, BCCD, VOC 2007).
"""
from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
import torchvision

from itl import paths, rng
from itl.data import DataError, ImageSet

IOU = 0.5  # VOC's overlap criterion


@dataclass
class Annotation:
    image: str  # image id (file stem)
    boxes: torch.Tensor  # N x 4, (x1, y1, x2, y2), inclusive pixel coordinates
    labels: list[str]
    difficult: list[bool] = field(default_factory=list)


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


def iou(box: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """IoU of one box with many, in inclusive pixel coordinates (VOC)."""
    ix1, iy1 = torch.maximum(boxes[:, 0], box[0]), torch.maximum(boxes[:, 1], box[1])
    ix2, iy2 = torch.minimum(boxes[:, 2], box[2]), torch.minimum(boxes[:, 3], box[3])
    inter = (ix2 - ix1 + 1).clamp(min=0) * (iy2 - iy1 + 1).clamp(min=0)
    area = lambda b: (b[..., 2] - b[..., 0] + 1) * (b[..., 3] - b[..., 1] + 1)  # noqa: E731
    return inter / (area(box) + area(boxes) - inter)


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


# ---------------------------------------------------------------- VOC-format files


def _xml(image: str, size: tuple[int, int], boxes: torch.Tensor, labels: list[str]) -> str:
    objs = "".join(
        f"<object><name>{lab}</name><difficult>0</difficult><bndbox><xmin>{int(b[0])}</xmin>"
        f"<ymin>{int(b[1])}</ymin><xmax>{int(b[2])}</xmax><ymax>{int(b[3])}</ymax></bndbox>"
        f"</object>" for b, lab in zip(boxes.tolist(), labels))
    return (f"<annotation><filename>{image}.jpg</filename><size><width>{size[1]}</width>"
            f"<height>{size[0]}</height><depth>3</depth></size>{objs}</annotation>\n")


def read_voc(root: Path, split: str) -> list[Annotation]:
    """The annotations of ImageSets/Main/<split>.txt of a VOC-format folder."""
    listing = root / "ImageSets" / "Main" / f"{split}.txt"
    if not listing.is_file():
        raise DataError(f"{listing} is missing: not a VOC-format folder with a {split} split")
    out = []
    for image in listing.read_text().split():
        f = root / "Annotations" / f"{image}.xml"
        try:
            tree = ET.parse(f).getroot()
        except (OSError, ET.ParseError) as e:
            raise DataError(f"unreadable annotation {f}: {e}") from e
        boxes, labels, diff = [], [], []
        for n, o in enumerate(tree.iter("object"), 1):
            box = [_voc_number(o, f"bndbox/{k}", f, n) for k in ("xmin", "ymin", "xmax", "ymax")]
            labels.append(_voc_text(o, "name", f, n))
            if not all(map(math.isfinite, box)) or box[2] < box[0] or box[3] < box[1]:
                raise DataError(f"malformed annotation {f}: object {n} ({labels[-1]}) has the "
                                f"box {box}: xmin <= xmax and ymin <= ymax, finite, needed")
            boxes.append(box)
            d = o.find("difficult")
            diff.append(d is not None and (d.text or "").strip() == "1")
        out.append(Annotation(image, torch.tensor(boxes).reshape(-1, 4), labels, diff))
    return out


def _voc_text(obj: ET.Element, path: str, f: Path, n: int) -> str:
    """The text at `path` under the n-th <object> of annotation file f; missing or empty: one
    DataError naming the file, the object and the tag."""
    found = obj.find(path)
    text = (found.text or "").strip() if found is not None else ""
    if not text:
        raise DataError(f"malformed annotation {f}: object {n} has "
                        f"{'no' if found is None else 'an empty'} <{path}>: every <object> "
                        "needs a <name> and a <bndbox> of <xmin>, <ymin>, <xmax>, <ymax>")
    return text


def _voc_number(obj: ET.Element, path: str, f: Path, n: int) -> float:
    text = _voc_text(obj, path, f, n)
    try:
        return float(text)
    except ValueError:
        raise DataError(f"malformed annotation {f}: object {n} has <{path}> {text!r}, "
                        "not a number") from None


@dataclass(frozen=True)
class VocSpec:
    """A generated detection set: objects pasted on backgrounds (small-scale PASCAL-DET)."""
    n_train: int = 500  # images
    n_test: int = 500
    size: int = 128  # pixels, square images
    max_objects: int = 3  # per image (at least one)
    min_object: int = 24  # pixels, object side
    max_object: int = 64
    seed: int = 0


def make_voc(objects: ImageSet, backgrounds: ImageSet, spec: VocSpec, out: Path) -> Path:
    """Write the generated set to `out` (atomically: built beside it, then renamed). Training
    images use the even-indexed objects and backgrounds, test images the odd ones."""
    staging = out.with_name(f".{out.name}.staging")
    if staging.exists():
        import shutil
        shutil.rmtree(staging)
    for d in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (staging / d).mkdir(parents=True)
    for part, (split, n) in enumerate((("train", spec.n_train), ("test", spec.n_test))):
        g = rng.generator("voc", spec.seed, split)
        # train and test draw from disjoint halves of the objects and backgrounds
        obj_pool = list(range(part, len(objects), 2)) or list(range(len(objects)))
        bg_pool = list(range(part, len(backgrounds), 2)) or list(range(len(backgrounds)))
        ids = []
        for i in range(n):
            image = f"{split}_{i:05d}"
            bg = backgrounds.x[bg_pool[torch.randint(len(bg_pool), (1,), generator=g).item()]]
            canvas = F.interpolate(bg[None].float(), size=(spec.size, spec.size),
                                   mode="bilinear", align_corners=False)[0]
            boxes, labels = [], []
            for _ in range(1 + torch.randint(spec.max_objects, (1,), generator=g).item()):
                k = obj_pool[torch.randint(len(obj_pool), (1,), generator=g).item()]
                side = torch.randint(spec.min_object, spec.max_object + 1, (1,),
                                     generator=g).item()
                x0 = torch.randint(spec.size - side + 1, (1,), generator=g).item()
                y0 = torch.randint(spec.size - side + 1, (1,), generator=g).item()
                box = torch.tensor([x0, y0, x0 + side - 1, y0 + side - 1], dtype=torch.float32)
                if boxes and iou(box, torch.tensor(boxes, dtype=torch.float32)).max() > 0:
                    continue  # objects never hide each other: every box stays fully visible
                obj = F.interpolate(objects.x[k][None].float(), size=(side, side),
                                    mode="bilinear", align_corners=False)[0]
                canvas[:, y0:y0 + side, x0:x0 + side] = obj
                boxes.append([x0, y0, x0 + side - 1, y0 + side - 1])
                labels.append(objects.classes[int(objects.y[k])])
            img = canvas.round().clamp(0, 255).to(torch.uint8)
            torchvision.io.write_jpeg(img, str(staging / "JPEGImages" / f"{image}.jpg"),
                                      quality=95)
            (staging / "Annotations" / f"{image}.xml").write_text(
                _xml(image, (spec.size, spec.size), torch.tensor(boxes), labels))
            ids.append(image)
        (staging / "ImageSets" / "Main" / f"{split}.txt").write_text("\n".join(ids) + "\n")
    paths.ensure_writable(out.parent)
    if out.exists():
        import shutil
        shutil.rmtree(out)
    staging.rename(out)
    return out


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

    from itl import data
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
    from itl import data
    return [data.decode_rgb(root / "JPEGImages" / f"{a.image}.jpg") for a in anns]


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


GENERATED = "voc-cifar"  # the generated set: CIFAR-10 test objects on 15-Scene backgrounds
SMALL_SPEC = VocSpec(n_train=2000, n_test=1000, size=128, seed=0)


def voc_root(name: str) -> Path:
    """The folder of a VOC-format detection target, generating `voc-cifar` on first use from
    the prepared CIFAR-10 (test split: objects) and 15-Scene (all images: backgrounds)."""
    from filelock import FileLock

    from itl import data
    root = paths.data_dir() / name
    if name == "bccd":
        root = paths.data_dir() / "BCCD"
        if not (root / "ImageSets" / "Main" / "test.txt").is_file():
            raise DataError(f"BCCD is not prepared under {paths.data_dir()}: run "
                            "`itl data prepare bccd --from PATH`")
        return root
    if name != GENERATED:
        raise DataError(f"unknown detection target {name!r}: known are {GENERATED}, bccd")
    paths.ensure_writable(root.parent)
    with FileLock(str(root.parent / f"{name}.lock")):
        if not (root / "ImageSets" / "Main" / "test.txt").is_file():
            scenes = data.concat([data.load("15-scene", s) for s in ("train", "test")])
            make_voc(data.load("cifar-10", "test"), scenes, SMALL_SPEC, root)
    return root
