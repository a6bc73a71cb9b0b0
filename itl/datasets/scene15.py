"""15-Scene (Lazebnik, Schmid & Ponce, CVPR 2006): at small scale it stands in for the paper's
SUN-CLS scene classification target (Section 3), and its images are the backgrounds of the
generated detection set `voc-cifar`. 15 classes, 4,485 grayscale images of varied size.

Besides train/ and test/ class folders (the shards' layout, images resized to 128x128), it reads
Lazebnik's own distribution, one folder per class without a split (some folders named
differently: `SCENE_ORIGINAL`), and draws the standard split: 100 training images per class,
seeded, the rest test.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from itl import rng
from itl.datasets.cached import CachedSet
from itl.datasets.entry import CLASSIFICATION, SHARDS_FOLDER, TOP1
from itl.datasets.images import DataError
from itl.datasets.identity import remedy
from itl.datasets.layouts import Split

SCENE_CLASSES = ("bedroom", "coast", "forest", "highway", "industrial", "insidecity", "kitchen",
                 "livingroom", "mountain", "office", "opencountry", "store", "street", "suburb",
                 "tallbuilding")  # the shards' folder names
SCENE_TEST = (116, 260, 228, 160, 211, 208, 110, 189, 274, 115, 310, 215, 192, 141, 256)
# test images per class of the standard split: each class's images (Lazebnik et al. 2006,
# 4,485 in all) less its 100 training images; 2,985 in all
SCENE_ORIGINAL = {  # the folder names of Lazebnik's own distribution -> the shards' names
    "CALsuburb": "suburb", "MITcoast": "coast", "MITforest": "forest", "MIThighway": "highway",
    "MITinsidecity": "insidecity", "MITmountain": "mountain", "MITopencountry": "opencountry",
    "MITstreet": "street", "MITtallbuilding": "tallbuilding", "PARoffice": "office",
}


def standard_split(everything: Split, per_class: int) -> dict[str, Split]:
    """15-Scene as distributed (one folder per class): the standard split, `per_class` training
    images per class drawn with a fixed seed, the rest for testing."""
    train_idx, test_idx = [], []
    for k in range(len(everything.classes)):
        idx = torch.nonzero(everything.y == k).flatten()
        if len(idx) <= per_class:
            raise DataError(f"15-scene class {everything.classes[k]} has {len(idx)} images: "
                            f"too few for {per_class} training images and a test split")
        perm = idx[torch.randperm(len(idx), generator=rng.generator("15-scene split", k))]
        train_idx += perm[:per_class].tolist()
        test_idx += perm[per_class:].tolist()
    pick = lambda i: Split(everything.classes, everything.y[sorted(i)],  # noqa: E731
                           [everything.files[j] for j in sorted(i)])
    return {"train": pick(train_idx), "test": pick(test_idx)}


@dataclass(frozen=True, kw_only=True)
class Scene15(CachedSet):
    def split_unsplit(self, root: Path, everything: Split) -> dict[str, Split]:
        if not isinstance(self.per_class.get("train"), int):
            raise DataError(f"{root}: {self.name} needs train/ and test/ folders; "
                            f"{remedy(self)}")
        return standard_split(everything, self.per_class["train"])


SCENE15 = Scene15(
    name="15-scene", kind=CLASSIFICATION, metric=TOP1,  # what itl scores (Lazebnik et al.
    # report the mean of per-class recognition rates)
    classes=SCENE_CLASSES, class_ids="name", per_class={"train": 100, "test": SCENE_TEST},
    image_size=None,  # the shards' images are 128x128, Lazebnik's originals of varied size
    shards="15-scene", shard_files=("15-scene.tar.gz",),
    fix=f"{SHARDS_FOLDER} or an archive of Lazebnik's 15 class folders",
    aliases=SCENE_ORIGINAL,
    test_in_train=18)  # the shards hold 18 pairs of byte-identical images (16 in livingroom), 11
# across their standard split; a split drawn from Lazebnik's folders may put any of them across
ENTRIES = (SCENE15,)
