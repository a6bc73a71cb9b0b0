"""PASCAL VOC 2007 detection, the paper's PASCAL-DET target (paper Section 3: "object detection
on PASCAL-VOC 2007"): Faster R-CNN fine-tuned on trainval (5,011 images) and scored on test
(4,952 images) with the VOC 2007 11-point mAP over its 20 classes (`itl.detection`).

Prepared from the two official tars, `VOCtrainval_06-Nov-2007.tar` and
`VOCtest_06-Nov-2007.tar` (each checked against the md5 that torchvision's `VOCDetection`
checks, both before anything is unpacked; they unpack into one `VOCdevkit/VOC2007` folder), from
the shards of ../shared/data (`voc2007/voc2007-trainval-{0,1}.tar.gz`, each checked against its
sha256 in SHA256SUMS before anything is unpacked; ../shared/data/README.md), or from a
`VOCdevkit/VOC2007` folder already unpacked. `--from` takes the folder holding both tars, either
tar (the other beside it), the shards folder holding SHA256SUMS or its `voc2007` folder, or the
unpacked folder.

Two contents are accepted (`VocSet.releases`): the official release (trainval 5,011 + test 4,952
images: fine-tune on trainval, score on test, as the paper) and the shards' copy, trainval only
with 5,008 of its 5,011 images (005042, 007284, 009623 could not be had and are left out of
every list; the test half could not be had at all: fine-tune on train, 2,500, score on val,
2,508). The prepared folder's record says which; `VOC2007.eval_splits()` gives the pair. What is
installed is checked as every VOC-format set is (`voc.VocSet`): the image lists and their sizes,
no id twice in a list, train and val disjoint and together trainval, trainval apart from test,
every listed annotation parses with its boxes inside its image, the 20 class names, every listed
image present.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from itl.datasets import checksums, records, sources, staging
from itl.datasets.entry import DETECTION, SHARDS_FOLDER, VOC07_MAP, Archive
from itl.datasets.identity import mismatch
from itl.datasets.images import DataError
from itl.datasets.voc import VocSet

# torchvision.datasets.VOCDetection's DATASET_YEAR_DICT["2007"] and ["2007-test"]
TRAINVAL = Archive("VOCtrainval_06-Nov-2007.tar", md5="c52e279531787c972589f7e41ab4ae64")
TEST = Archive("VOCtest_06-Nov-2007.tar", md5="b6e924de25625d8de591ea690078ad9f")


@dataclass(frozen=True, kw_only=True)
class SplitTarsVoc(VocSet):
    """A VOC-format set published as several tars that unpack into one folder (VOC 2007: its
    trainval and its test apart); each tar must have its published md5."""

    def prepare(self, source: Path, size: int = records.SIZE) -> Path:
        """Verify every tar, unpack them together in a staging folder, check the result as a
        VOC-format set and move it into place; an unpacked folder is checked and copied."""
        source, top = sources.checked(self.name, source)
        tars = self.tars(source)
        if tars is None:
            return super().prepare(source, size)
        sums = {}
        for archive, f in tars:  # every checksum before anything is unpacked
            md5, sha = checksums.md5_sha256(f)
            if archive.md5 and md5 != archive.md5:
                raise mismatch(self, f, f"md5 {md5}, expected {archive.md5} (the published md5 "
                                        f"of {archive.name}; a truncated or other file?)")
            sums[archive.name] = {"md5": md5, "sha256": sha}
        with staging.building(top, self.name) as stage:
            unpacked = stage / "unpacked"
            unpacked.mkdir()
            for _, f in tars:
                sources.unpack(f, unpacked)
            origin = records.origin(source, "archives", files=sums)
            return self._install(source, unpacked, top, stage, origin)

    def tars(self, source: Path) -> list[tuple[Archive, Path]] | None:
        """The archives that `source` is one of (the others beside it) or holds; None when it is
        a folder holding none of them (an unpacked copy)."""
        names = [a.name for a in self.archives]
        if source.is_file() and source.name not in names:
            raise DataError(f"{source} is none of {', '.join(names)}: pass the folder holding "
                            f"them, or {self.fix}")
        folder = source.parent if source.is_file() else source
        found = [(a, folder / a.name) for a in self.archives if (folder / a.name).is_file()]
        if not found:
            return None
        missing = [a.name for a in self.archives if not (folder / a.name).is_file()]
        if missing:
            raise DataError(f"{folder} holds {found[0][0].name} but not {', '.join(missing)}: "
                            f"{self.name} needs every one of {', '.join(names)} side by side")
        return found


VOC2007 = SplitTarsVoc(
    name="voc2007", kind=DETECTION, metric=VOC07_MAP,
    classes=("aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair",
             "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant",
             "sheep", "sofa", "train", "tvmonitor"), class_ids="name",
    splits=("trainval", "test"), train_split="trainval",
    split_sizes={"trainval": 5011, "test": 4952},  # torchvision's prototype VOC (TVP)
    other_releases=({"train": 2500, "val": 2508, "trainval": 5008},),  # ../shared/data's copy
    folder="VOC2007", archives=(TRAINVAL, TEST),
    shards="voc2007", shard_files=("voc2007-trainval-0.tar.gz", "voc2007-trainval-1.tar.gz"),
    fix=f"{SHARDS_FOLDER} or its voc2007 folder, the folder holding {TRAINVAL.name} and "
        f"{TEST.name}, or the VOCdevkit/VOC2007 folder they unpack to")
ENTRIES = (VOC2007,)
