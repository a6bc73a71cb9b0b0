"""VOC-format detection sets (the paper's PASCAL-DET; at small scale BCCD, and the generated
`voc-cifar`): reading a VOC-format folder (`Annotations/*.xml`, `JPEGImages/*.jpg`,
`ImageSets/Main/<split>.txt`), writing one, VOC's box overlap, and `VocSet`, a VOC-format folder
that `itl data prepare` checks and installs under ITL_DATA as it is (no image cache).

What is checked follows the VOC devkit's conventions (Everingham et al., "The PASCAL Visual
Object Classes Challenge 2007 Development Kit", Sections 2-3): `train` and `val` are disjoint and
make up `trainval`, `test` is apart from `trainval`, each split file lists an image once, and a
box is given in 1-based inclusive pixel coordinates inside the image that `<size>` describes
(the checks themselves are `itl.datasets.content`'s); every listed JPEG must also decode, at that
size. The installed folder keeps `files.sha256`, the sha256 of every file itl reads, named in its
record and re-checked by `verify` (so by `itl data status` and before a detection run).
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
from itl.datasets import content, records, sources, staging
from itl.datasets.entry import Dataset, prepare_command
from itl.datasets.identity import compare_classes, compare_image_size, mismatch, remedy
from itl.datasets.images import DataError


@dataclass
class Annotation:
    image: str  # image id (file stem)
    boxes: torch.Tensor  # N x 4, (x1, y1, x2, y2), inclusive pixel coordinates
    labels: list[str]
    difficult: list[bool] = field(default_factory=list)
    size: tuple[int, int] | None = None  # (height, width) its <size> gives; None: none given


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
    return [read_annotation(root / "Annotations" / f"{image}.xml", image)
            for image in listing.read_text().split()]


def read_annotation(f: Path, image: str) -> Annotation:
    """One annotation file: its labelled boxes and the image size its <size> gives (unreadable
    or malformed: one DataError naming the file and the object)."""
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
    return Annotation(image, torch.tensor(boxes).reshape(-1, 4), labels, diff, _size(tree))


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


def _size(tree: ET.Element) -> tuple[int, int] | None:
    """The (height, width) of an annotation's <size>; None if it gives none."""
    try:
        size = tree.find("size")
        return int(size.find("height").text), int(size.find("width").text)
    except (AttributeError, TypeError, ValueError):
        return None


def is_voc_folder(root: Path, splits: tuple[str, ...] = ("test",)) -> bool:
    """Built: each of `splits` is listed (by default its test split, what reading it for a
    detection target needs)."""
    return all((root / "ImageSets" / "Main" / f"{s}.txt").is_file() for s in splits)


# ---------------------------------------------------------------- a prepared VOC-format set


SPLIT_FILES = ("train", "val", "trainval", "test")  # the devkit's split lists, checked if there


@dataclass(frozen=True, kw_only=True)
class VocSet(Dataset):
    """A VOC-format detection set that `itl data prepare` checks and installs as it is.

    What it may be is data: `split_sizes`, its full release (split -> images listed), and
    `other_releases`, other contents accepted as the same set (a copy without its test half).
    The prepared folder's record names the release found (`images`: split -> images), which
    says the splits it has, and so the splits it is trained and scored on (`eval_splits`)."""
    split_sizes: dict[str, int]  # ImageSets/Main/<split>.txt -> images it lists
    folder: str  # its folder under ITL_DATA (the distribution's own name)
    other_releases: tuple[dict[str, int], ...] = ()  # other accepted contents, as split_sizes
    zero_area_boxes: tuple[str, ...] = ()  # images whose boxes with xmin == xmax or ymin ==
    # ymax are accepted as published (any other such box is refused)

    def __post_init__(self) -> None:
        if set(self.split_sizes) != set(self.splits):
            raise ValueError(f"{self.name}: split_sizes names {sorted(self.split_sizes)}, not "
                             f"its splits {sorted(self.splits)}")
        for release in self.releases():
            if not set(self.eval_pair(release)) <= set(release):
                raise ValueError(f"{self.name}: the release {release} has no "
                                 f"{' and '.join(self.eval_pair(release))} to train and score on")

    def releases(self) -> tuple[dict[str, int], ...]:
        """Every accepted content (split -> images listed), the full release first."""
        return (self.split_sizes, *self.other_releases)

    def eval_pair(self, splits) -> tuple[str, str]:
        """(split trained on, split scored on) of a content with these splits: its train split
        and test where it has a test half, else VOC's train and val."""
        return (self.train_split, "test") if "test" in splits else ("train", "val")

    def eval_splits(self) -> tuple[str, str]:
        """(split trained on, split scored on) of the prepared set, from its record:
        ("trainval", "test") for VOC 2007's official release, ("train", "val") for its copy
        without a test half (BCCD: ("train", "test")). Not prepared or failing verification:
        one DataError saying why and the fix."""
        root = self.root()
        problem = self.verify()
        if problem:
            raise DataError(problem)
        return self.eval_pair(self._recorded(root))

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
        """Check the unpacked source is this set (`_lists`, `_release`, then every listed
        image's files, boxes and classes), all before anything is installed."""
        root = sources.find(unpacked, "Annotations")
        if root is None or not (root / "JPEGImages").is_dir():
            raise DataError(f"no VOC layout (Annotations/, JPEGImages/) under {unpacked}; "
                            f"{remedy(self)}")
        lists = self._lists(root)
        release = self._release(root, source)
        boxes: dict[str, int] = {}  # class -> boxes over every image listed (once each)
        unknown = None  # (name, file): the first object name that is none of the classes
        sizes, counted = [], set()
        for split, ids in lists.items():
            for image in ids:
                if image in counted:
                    continue
                counted.add(image)
                a = self._annotation(root, split, image)
                sizes.append(a.size or (0, 0))
                for lab in a.labels:
                    boxes[lab] = boxes.get(lab, 0) + 1
                    if unknown is None and lab not in self.classes:
                        unknown = lab, root / "Annotations" / f"{image}.xml"
        where = "its annotations' object names" + (
            f" ({unknown[0]!r} first in {unknown[1]})" if unknown else "")
        compare_classes(self, sorted(boxes), source, where)
        compare_image_size(self, sizes, source, "annotated image sizes")
        if stage not in root.parents:  # the user's own folder: copy, never move their data
            shutil.copytree(root, stage / self.folder)
            root = stage / self.folder
        read = [f for f in (root / "ImageSets").rglob("*") if f.is_file()] + [
            root / d / f"{image}{ext}" for image in counted
            for d, ext in (("Annotations", ".xml"), ("JPEGImages", ".jpg"))]
        paths.atomic_write_json(root / records.RECORD, {
            "dataset": self.name, "source": origin, "classes": sorted(boxes),
            "boxes": dict(sorted(boxes.items())),
            "images": {s: len(lists[s]) for s in release},  # the release: the splits it has
            "original_image_size": list(self.image_size) if self.image_size else None,
            "files_sha256": content.write_manifest(root, read),  # of MANIFEST: what is read
            "itl_version": itl.__version__, "prepared": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
        return staging.install(root, top / self.folder, stage)

    def _release(self, root: Path, source: Path) -> dict[str, int]:
        """The first accepted release whose split files `root` holds with the images it lists;
        none: one error saying what differs from the full release (and from each other)."""
        problems = []
        for release in self.releases():
            problem = next((p for s, n in release.items()
                            if (p := _listing_problem(root, s, n))), None)
            if problem is None:
                return release
            problems.append(problem)
        others = "".join(f"; or, as the release of {_described(r)}: {p}"
                         for r, p in zip(self.other_releases, problems[1:]))
        raise mismatch(self, source, problems[0] + others)

    def _lists(self, root: Path) -> dict[str, list[str]]:
        """Split -> image ids of every split file present that a release names or the devkit
        has, checked as the devkit defines them (`content.split_lists`)."""
        return content.split_lists(root / "ImageSets" / "Main",
                                   (*(s for r in self.releases() for s in r), *SPLIT_FILES),
                                   remedy(self))

    def _annotation(self, root: Path, split: str, image: str) -> Annotation:
        """A listed image's annotation, its JPEG and XML present, the JPEG decoding whole at the
        size its <size> gives, and every box inside that image and of non-zero area unless
        `zero_area_boxes` names the image (`content.box_problem`)."""
        listed = f"it is listed in ImageSets/Main/{split}.txt; {remedy(self)}"
        jpeg = root / "JPEGImages" / f"{image}.jpg"
        for f in (root / "Annotations" / f"{image}.xml", jpeg):
            if not f.is_file():
                raise DataError(f"{f} is missing; {listed}")
        f = root / "Annotations" / f"{image}.xml"
        a = read_annotation(f, image)
        if a.size is None:
            raise DataError(f"malformed annotation {f}: no <size> with <width> and <height> "
                            f"to check its boxes against; {remedy(self)}")
        h, w = a.size
        for n, (box, lab) in enumerate(zip(a.boxes.tolist(), a.labels), 1):
            problem = content.box_problem(box, w, h, image in self.zero_area_boxes)
            if problem:
                raise DataError(f"{f}: object {n} ({lab}) has {problem}; {remedy(self)}")
        found = content.decoded_size(jpeg, listed)
        if found != (h, w):
            raise DataError(f"{jpeg} is {found[1]}x{found[0]} px where {f.name} gives "
                            f"{w}x{h} (its boxes are checked against <size>); {listed}")
        return a

    def _recorded(self, root: Path) -> dict[str, int] | None:
        """Split -> images that the prepared folder's record lists; None: no readable record."""
        try:
            images = json.loads((root / records.RECORD).read_text())["images"]
            return {str(s): int(n) for s, n in images.items()}
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None

    def root(self) -> Path:
        root = paths.data_dir() / self.folder
        if not self.present():
            raise DataError(f"{self.folder} is not prepared under {paths.data_dir()}: run "
                            f"`{prepare_command(self.name)}`")
        return root

    def present(self) -> bool:
        """The split files of the release its record names are there; with no readable record,
        the split it is scored on of any accepted release (test, or val without test)."""
        root = paths.data_dir() / self.folder
        recorded = self._recorded(root)
        if recorded:
            return is_voc_folder(root, tuple(recorded))
        return any(is_voc_folder(root, self.eval_pair(r)[1:]) for r in self.releases())

    def verify(self) -> str | None:
        """Its record against the entry (classes, images per split: one of its releases), its
        split files against the record, and every file it reads (split lists, annotations,
        JPEGs) against the sha256 its preparation recorded (`content.MANIFEST`; each file hashed
        once per process and version: for the small scale's VOC 2007, 10,079 files of 70 MB, 0.6 s
        of CPU, then 0.15 s again in the same process, on a busy 2-core AMD EPYC)."""
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
        if found[:2] != (self.name, self.classes) or found[2] not in self.releases():
            return (f"{f} records {found[0]!r} with classes {', '.join(found[1])} and images "
                    f"per split {found[2]} where {self.name} has classes "
                    f"{', '.join(self.classes)} and "
                    f"{' or '.join(map(str, self.releases()))}; {again}")
        for split, n in found[2].items():
            listing = root / "ImageSets" / "Main" / f"{split}.txt"
            listed = len(listing.read_text().split()) if listing.is_file() else None
            if listed != n:
                return (f"{listing} lists {listed} images where {f} records {n}; {again}"
                        if listed is not None else f"{listing} is missing; {again}")
        return content.manifest_problem(root, rec.get("files_sha256"), again)

    def summary(self) -> str:
        rec = json.loads((paths.data_dir() / self.folder / records.RECORD).read_text())
        boxes = sum(rec.get("boxes", {}).values())
        split_order = next((r for r in self.releases() if r == rec["images"]), rec["images"])
        images = ", ".join(f"{rec['images'][s]:,} {s}" for s in split_order)
        trained, scored = self.eval_pair(rec["images"])
        return (f"VOC-format folder {paths.data_dir() / self.folder}: images {images} "
                f"(fine-tuned on {trained}, scored on {scored}); "
                f"{boxes:,} boxes of {len(self.classes)} classes "
                f"(from {rec['source'].get('kind')} {rec['source'].get('path')})")


def _listing_problem(root: Path, split: str, n: int) -> str | None:
    """Why ImageSets/Main/<split>.txt is not a split of n images (missing, or another count)."""
    listing = root / "ImageSets" / "Main" / f"{split}.txt"
    if not listing.is_file():
        return f"{listing.relative_to(root)} is missing"
    found = len(listing.read_text().split())
    return None if found == n else (f"found {found} images in {listing.relative_to(root)}, "
                                    f"expected {n}")


def _described(release: dict[str, int]) -> str:
    return ", ".join(f"{n} {s}" for s, n in release.items()) + " images"
