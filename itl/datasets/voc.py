"""VOC-format detection sets (the paper's PASCAL-DET; at small scale BCCD, and the generated
`voc-cifar`): reading a VOC-format folder (`Annotations/*.xml`, `JPEGImages/*.jpg`,
`ImageSets/Main/<split>.txt`), writing one, VOC's box overlap, and `VocSet`, a VOC-format folder
that `itl data prepare` checks and installs under ITL_DATA as it is (no image cache).
"""
from __future__ import annotations

import json
import math
import shutil
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import torch

import itl
from itl import paths
from itl.datasets import records, sources, staging
from itl.datasets.entry import Dataset, prepare_command
from itl.datasets.identity import compare_classes, compare_image_size, mismatch, remedy
from itl.datasets.images import DataError


@dataclass
class Annotation:
    image: str  # image id (file stem)
    boxes: torch.Tensor  # N x 4, (x1, y1, x2, y2), inclusive pixel coordinates
    labels: list[str]
    difficult: list[bool] = field(default_factory=list)


def iou(box: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """IoU of one box with many, in inclusive pixel coordinates (VOC)."""
    ix1, iy1 = torch.maximum(boxes[:, 0], box[0]), torch.maximum(boxes[:, 1], box[1])
    ix2, iy2 = torch.minimum(boxes[:, 2], box[2]), torch.minimum(boxes[:, 3], box[3])
    inter = (ix2 - ix1 + 1).clamp(min=0) * (iy2 - iy1 + 1).clamp(min=0)
    area = lambda b: (b[..., 2] - b[..., 0] + 1) * (b[..., 3] - b[..., 1] + 1)  # noqa: E731
    return inter / (area(box) + area(boxes) - inter)


# ---------------------------------------------------------------- VOC-format files


def xml(image: str, size: tuple[int, int], boxes: torch.Tensor, labels: list[str]) -> str:
    """One image's annotation file: its size (height, width) and labelled boxes."""
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


def voc_image_size(f: Path) -> tuple[int, int] | None:
    """The (height, width) an annotation file gives its image; None if it gives none."""
    try:
        size = ET.parse(f).getroot().find("size")
        return int(size.find("height").text), int(size.find("width").text)
    except (OSError, ET.ParseError, AttributeError, TypeError, ValueError):
        return None


def is_voc_folder(root: Path) -> bool:
    """Built: its test split is listed (what reading it for a detection target needs)."""
    return (root / "ImageSets" / "Main" / "test.txt").is_file()


# ---------------------------------------------------------------- a prepared VOC-format set


@dataclass(frozen=True, kw_only=True)
class VocSet(Dataset):
    """A VOC-format detection set that `itl data prepare` checks and installs as it is."""
    split_sizes: dict[str, int]  # ImageSets/Main/<split>.txt -> images it lists
    folder: str  # its folder under ITL_DATA (the distribution's own name)

    def __post_init__(self) -> None:
        if set(self.split_sizes) != set(self.splits):
            raise ValueError(f"{self.name}: split_sizes names {sorted(self.split_sizes)}, not "
                             f"its splits {sorted(self.splits)}")

    def prepare(self, source: Path, size: int = records.SIZE) -> Path:
        """Check a VOC-format source (split files and their sizes, every listed annotation
        parses, its classes, image sizes) and move it into place (`size` is not used: no
        image is cached)."""
        source, top = sources.checked(self.name, source)
        with staging.building(top, self.name) as stage:
            unpacked, origin = sources.opened(self, source, stage)
            return self._install(source, unpacked, top, stage, origin)

    def _install(self, source: Path, unpacked: Path, top: Path, stage: Path,
                 origin: dict) -> Path:
        root = sources.find(unpacked, "Annotations")
        if root is None or not (root / "JPEGImages").is_dir():
            raise DataError(f"no VOC layout (Annotations/, JPEGImages/) under {unpacked}; "
                            f"{remedy(self)}")
        splits = {}
        for split, n in self.split_sizes.items():
            listing = root / "ImageSets" / "Main" / f"{split}.txt"
            if not listing.is_file():
                raise mismatch(self, source, f"{listing.relative_to(root)} is missing")
            splits[split] = listing.read_text().split()
            if len(splits[split]) != n:
                raise mismatch(self, source, f"found {len(splits[split])} images in "
                                             f"{listing.relative_to(root)}, expected {n}")
        boxes: dict[str, int] = {}  # class -> boxes over every image listed (once each)
        counted = set()
        for split in splits:
            for a in read_voc(root, split):  # every listed annotation must parse
                if a.image in counted:
                    continue
                counted.add(a.image)
                for lab in a.labels:
                    boxes[lab] = boxes.get(lab, 0) + 1
                if not (root / "JPEGImages" / f"{a.image}.jpg").is_file():
                    raise DataError(f"{root / 'JPEGImages' / (a.image + '.jpg')} is missing; it "
                                    f"is listed in ImageSets/Main/{split}.txt")
        compare_classes(self, sorted(boxes), source, "its annotations' object names")
        images = sorted({i for s in splits.values() for i in s})
        compare_image_size(self, [voc_image_size(root / "Annotations" / f"{i}.xml") or (0, 0)
                                  for i in images], source, "annotated image sizes")
        if stage not in root.parents:  # the user's own folder: copy, never move their data
            shutil.copytree(root, stage / self.folder)
            root = stage / self.folder
        paths.atomic_write_json(root / records.RECORD, {
            "dataset": self.name, "source": origin, "classes": sorted(boxes),
            "boxes": dict(sorted(boxes.items())), "images": {s: len(v) for s, v in splits.items()},
            "original_image_size": list(self.image_size) if self.image_size else None,
            "itl_version": itl.__version__, "prepared": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
        return staging.install(root, top / self.folder, stage)

    def root(self) -> Path:
        root = paths.data_dir() / self.folder
        if not is_voc_folder(root):
            raise DataError(f"{self.folder} is not prepared under {paths.data_dir()}: run "
                            f"`{prepare_command(self.name)}`")
        return root

    def present(self) -> bool:
        return is_voc_folder(paths.data_dir() / self.folder)

    def verify(self) -> str | None:
        """Its record against the entry (classes, images per split) and its split files
        against the record (no annotation is parsed)."""
        root = paths.data_dir() / self.folder
        f = root / records.RECORD
        again = f"run `{prepare_command(self.name)}` with PATH {self.fix}"
        try:
            rec = json.loads(f.read_text())
            found = rec["dataset"], tuple(rec["classes"]), dict(rec["images"])
        except FileNotFoundError:
            return (f"{f} is missing: nothing says what the {self.name} folder beside it was "
                    f"prepared from; {again}")
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            return f"unreadable record {f} ({e!r}); {again}"
        if found != (self.name, self.classes, self.split_sizes):
            return (f"{f} records {found[0]!r} with classes {', '.join(found[1])} and images "
                    f"per split {found[2]} where {self.name} has classes "
                    f"{', '.join(self.classes)} and {self.split_sizes}; {again}")
        for split, n in self.split_sizes.items():
            listing = root / "ImageSets" / "Main" / f"{split}.txt"
            listed = len(listing.read_text().split()) if listing.is_file() else None
            if listed != n:
                return (f"{listing} lists {listed} images where {f} records {n}; {again}"
                        if listed is not None else f"{listing} is missing; {again}")
        return None

    def summary(self) -> str:
        rec = json.loads((paths.data_dir() / self.folder / records.RECORD).read_text())
        boxes = sum(rec.get("boxes", {}).values())
        images = ", ".join(f"{n} {s}" for s, n in self.split_sizes.items())
        return (f"VOC-format folder {paths.data_dir() / self.folder}: images {images}; "
                f"{boxes:,} boxes of {len(self.classes)} classes "
                f"(from {rec['source'].get('kind')} {rec['source'].get('path')})")
