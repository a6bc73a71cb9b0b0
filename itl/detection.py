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
        for o in tree.iter("object"):
            bb = o.find("bndbox")
            boxes.append([float(bb.find(k).text) for k in ("xmin", "ymin", "xmax", "ymax")])
            labels.append(o.find("name").text.strip())
            d = o.find("difficult")
            diff.append(d is not None and d.text.strip() == "1")
        out.append(Annotation(image, torch.tensor(boxes).reshape(-1, 4), labels, diff))
    return out


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
    """Write the generated set to `out` (atomically: built beside it, then renamed)."""
    staging = out.with_name(f".{out.name}.staging")
    if staging.exists():
        import shutil
        shutil.rmtree(staging)
    for d in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (staging / d).mkdir(parents=True)
    for split, n in (("train", spec.n_train), ("test", spec.n_test)):
        g = rng.generator("voc", spec.seed, split)
        ids = []
        for i in range(n):
            image = f"{split}_{i:05d}"
            bg = backgrounds.x[torch.randint(len(backgrounds), (1,), generator=g).item()]
            canvas = F.interpolate(bg[None].float(), size=(spec.size, spec.size),
                                   mode="bilinear", align_corners=False)[0]
            boxes, labels = [], []
            for _ in range(1 + torch.randint(spec.max_objects, (1,), generator=g).item()):
                k = torch.randint(len(objects), (1,), generator=g).item()
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
