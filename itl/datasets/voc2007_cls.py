"""PASCAL VOC 2007 classification (VOC-CLS), the small scale's judged target under protocol v3:
the paper's own transfer images (Section 3 fine-tunes on PASCAL VOC 2007), as 20-class
multi-label classification of whole images.

Read from the same files as `voc2007` (its shards, the official tars, or an unpacked
`VOCdevkit/VOC2007`): every image of `ImageSets/Main/train.txt` (itl's "train") and `val.txt`
(itl's "test": the shared copy has no test half, so small scale trains on VOC's train and scores
on its val), warped whole to a square at each cache size. A label is a bit mask, as the devkit's
classification ground truth (VOCdevkit `VOCevalcls.m`, `[gtids,gt]=textread(...)`) gives three
values per image and class: bit k (class k present: a non-difficult instance) is 1; bit
`DIFFICULT_BIT + k` is 1 when the image holds only difficult instances of class k, which the
devkit scores as 0, "ignored" (neither positive nor negative) -- and itl leaves out of the
training loss for that class too (`itl.metrics`). Scored by the mean over the 20 classes of the
VOC 2007 11-point AP (`itl.metrics.VOC07_CLS`).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from itl.datasets import content, sources
from itl.datasets.cached import CachedSet
from itl.datasets.entry import CLASSIFICATION, VOC07_CLS
from itl.datasets.identity import mismatch, remedy
from itl.datasets.images import DataError
from itl.datasets.layouts import Split
from itl.datasets.voc import SPLIT_FILES, read_voc
from itl.datasets.voc2007 import VOC2007

DIFFICULT_BIT = 20  # bit 20 + k: only difficult instances of class k (ignored for class k)
SPLITS = {"train": "train", "test": "val"}  # itl's split -> ImageSets/Main/<name>.txt


def voc_labels(classes: tuple[str, ...], names: list[str], difficult: list[bool]) -> int:
    """One image's bit mask from its objects' class names and difficult flags."""
    present, hard = 0, 0
    for name, diff in zip(names, difficult):
        k = classes.index(name)
        if diff:
            hard |= 1 << k
        else:
            present |= 1 << k
    return present | ((hard & ~present) << DIFFICULT_BIT)


def gt_values(y: torch.Tensor, num_classes: int) -> torch.Tensor:
    """The devkit's ground truth per image and class from bit masks: 1 present, 0 only
    difficult instances (ignored), -1 absent."""
    bits = torch.arange(num_classes, device=y.device)
    pos = (y[:, None] >> bits) & 1
    hard = (y[:, None] >> (bits + DIFFICULT_BIT)) & 1
    return torch.where(pos.bool(), 1, torch.where(hard.bool(), 0, -1))


def counts(y: torch.Tensor, num_classes: int) -> list[int]:
    """Images with a non-difficult instance, per class."""
    return [int(((y >> k) & 1).sum()) for k in range(num_classes)]


@dataclass
class VocImages(Split):
    def counts(self) -> list[int]:
        return counts(self.y, len(self.classes))


@dataclass(frozen=True, kw_only=True)
class VocClassification(CachedSet):
    def read(self, unpacked: Path, source: Path) -> dict[str, Split]:
        root = sources.find(unpacked, "Annotations")
        if root is None or not (root / "ImageSets" / "Main").is_dir():
            raise mismatch(self, source, "no Annotations/ beside ImageSets/Main/ (VOC 2007's "
                                         "VOCdevkit/VOC2007)")
        content.split_lists(root / "ImageSets" / "Main", SPLIT_FILES, remedy(self))
        out = {}
        for split, name in SPLITS.items():
            annotations = read_voc(root, name)
            if not annotations:
                raise DataError(f"{root}/ImageSets/Main/{name}.txt lists no image; "
                                f"{remedy(self)}")
            files = [root / "JPEGImages" / f"{a.image}.jpg" for a in annotations]
            missing = next((f for f in files if not f.is_file()), None)
            if missing is not None:
                raise DataError(f"{missing} is missing; it is listed in ImageSets/Main/"
                                f"{name}.txt; {remedy(self)}")
            unknown = sorted({n for a in annotations for n in a.labels} - set(self.classes))
            if unknown:
                raise mismatch(self, source, f"object names {unknown} in {name}'s annotations "
                                             f"are none of the 20 VOC classes")
            y = [voc_labels(self.classes, a.labels, a.difficult or [False] * len(a.labels))
                 for a in annotations]
            out[split] = VocImages(self.classes, torch.tensor(y, dtype=torch.int64), files)
        return out

    def label_counts(self, y: torch.Tensor, num_classes: int) -> list[int] | None:
        if len(y) and (y.min() < 0 or y.max() >= 1 << (DIFFICULT_BIT + num_classes)):
            return None
        return counts(y, num_classes)

    def summary(self) -> str:
        return ("VOC 2007 images (train / val as train / test), 20-class multi-label; "
                + super().summary().replace(" images,", " images (counts: images with the "
                                            "class, non-difficult),", 1))


VOC2007_CLS = VocClassification(
    name="voc2007-cls", kind=CLASSIFICATION, metric=VOC07_CLS, classes=VOC2007.classes,
    class_ids="name", splits=("train", "test"),  # test: VOC's val
    per_class={"train": None, "test": None},  # images per class: recorded from the source
    shards="voc2007", shard_files=VOC2007.shard_files, archives=VOC2007.archives[:1],
    fix="the folder holding the voc2007 shards and SHA256SUMS (../shared/data/voc2007), "
        "VOCtrainval_06-Nov-2007.tar, or its unpacked VOCdevkit/VOC2007")
ENTRIES = (VOC2007_CLS,)
