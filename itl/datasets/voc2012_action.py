"""PASCAL VOC 2012 action classification, the paper's PASCAL-ACT-CLS target (Section 3) at
paper scale: the person boxes given, 10 actions, trained on `ImageSets/Action/train.txt` and
scored on `val.txt` (the test set's labels are not public), mean AP over the actions.

From `VOCtrainval_11-May-2012.tar` (checked against torchvision's md5 for VOC 2012) or its
unpacked `VOCdevkit/VOC2012`. Every `<object>` with an `<actions>` element in a listed image's
`Annotations/<id>.xml` is one example: its `<bndbox>` and its 0/1 flag per action. A person can
do several actions at once, so a label is a bit mask (bit k: `ACTIONS[k]`; `itl.metrics`
reads it); `other` (none of the 10) is no class of its own: such a person is a negative for every
action, as the devkit scores it (VOC devkit `example_action.m` skips `other`).

Each example is cached as its person box with context, warped to a square (docs/paper-
protocol.md section 2, decision): the box is enlarged about its centre by `CONTEXT`, so that in
the 227 px centre crop of the 256 px cache it has 16 px of context on every side, as R-CNN
warps a region (`crop_mode = 'warp'`, `crop_padding = 16`); outside the image, mean grey.
The cache's splits are "train" and "test" (= VOC's val).
"""
from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import torch
import torch.nn.functional as F
from tqdm import tqdm

from itl.datasets import images as _images
from itl.datasets import content, sources
from itl.datasets.cached import CachedSet
from itl.datasets.entry import CLASSIFICATION, MEAN_AP, Archive
from itl.datasets.identity import mismatch, remedy
from itl.datasets.images import DataError, ImageSet
from itl.datasets.layouts import Split

ACTIONS = ("jumping", "phoning", "playinginstrument", "reading", "ridingbike", "ridinghorse",
           "running", "takingphoto", "usingcomputer", "walking")  # VOC 2012's 10, in the
# devkit's order (R*CNN's lib/datasets/pascal_voc.py, less its trailing 'other')
SPLITS = {"train": "train", "test": "val"}  # itl's split -> ImageSets/Action/<name>.txt
CONTEXT = 256 / (227 - 2 * 16)  # region side / box side: 16 px of context at 227 of 256 px
FILL = 115  # grey outside the image: itl's normalisation mean (data.MEAN 0.45 x 255), input 0


@dataclass
class Boxes(Split):
    """A split of person boxes: `files[i]` is the image of box `boxes[i]` (x1, y1, x2, y2,
    VOC's 1-based inclusive pixels), `y[i]` its action bit mask."""
    boxes: torch.Tensor | None = None

    def counts(self) -> list[int]:
        """Positives per action (a box counts once for each of its actions)."""
        return bit_counts(self.y, len(self.classes))


def bit_counts(y: torch.Tensor, n: int) -> list[int]:
    return [int(((y >> k) & 1).sum()) for k in range(n)]


def read_actions(root: Path, split: str) -> Boxes:
    """The person boxes of ImageSets/Action/<split>.txt under a VOC2012 folder, with their
    action flags; a malformed annotation is one DataError naming the file and the object."""
    listing = root / "ImageSets" / "Action" / f"{split}.txt"
    if not listing.is_file():
        raise DataError(f"{listing} is missing: not a VOC 2012 folder with action annotations")
    files, boxes, ys = [], [], []
    for image in listing.read_text().split():
        f = root / "Annotations" / f"{image}.xml"
        try:
            objects = ET.parse(f).getroot().findall("object")
        except (OSError, ET.ParseError) as e:
            raise DataError(f"unreadable annotation {f}: {e}") from e
        for n, o in enumerate(objects, 1):
            acts = o.find("actions")
            if acts is None:
                continue
            try:
                flags = [int((acts.find(a).text or "").strip()) for a in ACTIONS]
                box = [float(o.find(f"bndbox/{k}").text) for k in ("xmin", "ymin", "xmax",
                                                                   "ymax")]
            except (AttributeError, TypeError, ValueError):
                raise DataError(f"malformed annotation {f}: object {n} needs a 0/1 flag for "
                                f"each of {', '.join(ACTIONS)} under <actions> and a <bndbox> "
                                "of numbers") from None
            if box[2] < box[0] or box[3] < box[1] or not set(flags) <= {0, 1}:
                raise DataError(f"malformed annotation {f}: object {n} has the box {box} or "
                                f"flags {flags}: xmin <= xmax, ymin <= ymax, flags 0 or 1")
            files.append(root / "JPEGImages" / f"{image}.jpg")
            boxes.append(box)
            ys.append(sum(b << k for k, b in enumerate(flags)))
    if not files:
        raise DataError(f"{listing} lists no image with an annotated action")
    return Boxes(ACTIONS, torch.tensor(ys, dtype=torch.int64), files,
                 boxes=torch.tensor(boxes).reshape(-1, 4))


def region(img: torch.Tensor, box: list[float], size: int) -> torch.Tensor:
    """The box enlarged by CONTEXT about its centre, cut from uint8 `img` (FILL outside it) and
    warped to size x size px."""
    x1, y1, x2, y2 = (v - 1 for v in box)  # 0-based, inclusive
    cx, cy = (x1 + x2 + 1) / 2, (y1 + y2 + 1) / 2
    hw, hh = CONTEXT * (x2 - x1 + 1) / 2, CONTEXT * (y2 - y1 + 1) / 2
    left, top = round(cx - hw), round(cy - hh)
    right, bottom = max(left + 1, round(cx + hw)), max(top + 1, round(cy + hh))
    h, w = img.shape[-2:]
    pad = (max(0, -left), max(0, right - w), max(0, -top), max(0, bottom - h))
    if any(pad):
        img = F.pad(img, pad, value=FILL)
    crop = img[:, top + pad[2]:bottom + pad[2], left + pad[0]:right + pad[0]]
    out = F.interpolate(crop[None].float(), size=(size, size), mode="bilinear", antialias=True,
                        align_corners=False)[0]
    return out.round().clamp(0, 255).to(torch.uint8)


@dataclass(frozen=True, kw_only=True)
class VocAction(CachedSet):
    examples_share_images: ClassVar[bool] = True  # one example per person box

    def read(self, unpacked: Path, source: Path) -> dict[str, Split]:
        root = sources.find(unpacked, "Action")
        root = root.parent if root is not None and root.name == "ImageSets" else None
        if root is None or not (root / "Annotations").is_dir():
            raise mismatch(self, source, "no ImageSets/Action/ beside Annotations/ (VOC 2012's "
                                         "VOCdevkit/VOC2012)")
        content.split_lists(root / "ImageSets" / "Action", SPLITS.values(), remedy(self))
        out = {}
        for split, name in SPLITS.items():
            part = read_actions(root, name)
            missing = next((f for f in part.files if not f.is_file()), None)
            if missing is not None:
                raise DataError(f"{missing} is missing; it is listed in ImageSets/Action/"
                                f"{name}.txt; {remedy(self)}")
            out[split] = part
        return out

    def decoded(self, part: Split, size: int, what: str) -> tuple[ImageSet, set]:
        """Each box's region at `size` px (an image decoded once for all its boxes)."""
        xs, shapes, last, img = [], set(), None, None
        for f, box in tqdm(list(zip(part.files, part.boxes.tolist())), desc=what, unit="box",
                           leave=False, mininterval=2.0):
            if f != last:
                img, last = _images.decode_rgb(f), f
                shapes.add(tuple(img.shape[-2:]))
            xs.append(region(img, box, size))
        return ImageSet(torch.stack(xs), part.y, part.classes), shapes

    def label_counts(self, y: torch.Tensor, num_classes: int) -> list[int] | None:
        if len(y) and (y.min() < 0 or y.max() >= 1 << num_classes):
            return None
        return bit_counts(y, num_classes)

    def summary(self) -> str:
        return "person boxes with action flags; " + super().summary().replace(" images,",
                                                                              " positives,")


VOC2012_ACTION = VocAction(
    name="voc2012-action", kind=CLASSIFICATION, metric=MEAN_AP,
    classes=ACTIONS, class_ids="name", splits=("train", "test"),  # test: VOC's val
    per_class={"train": None, "test": None},  # positives per action: recorded from the source
    # (the tar's md5 is its identity check)
    archives=(Archive("VOCtrainval_11-May-2012.tar",  # torchvision.datasets.VOCDetection's
                      md5="6cd6e144f989b92b3379bac3b3de84fd",  # "2012"; sha256: torchvision's
                      # prototype voc.py
                      sha256="e14f763270cf193d0b5f74b169f44157a4b0c6efa708f4dd0ff78ee691763bcb"),),
    fix="VOCtrainval_11-May-2012.tar or its unpacked VOCdevkit/VOC2012",
    test_in_train=None)  # not measured (no copy here): train and val are checked by id only
ENTRIES = (VOC2012_ACTION,)
