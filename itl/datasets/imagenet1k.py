"""ImageNet-1k (ILSVRC2012 classification): the paper's source (Section 3), 1000 classes named by
WordNet id in itl.labels.imagenet1k_wnids()'s order (sorted, as torchvision's ImageNet orders
them), 1,281,167 training images (732 to 1,300 per class) and the 50,000 validation images (50 per
class), which are its test split.

Prepared from either
- the official archives in one folder, `ILSVRC2012_img_train.tar` (a tar of 1,000 per-class
  tars), `ILSVRC2012_img_val.tar` (flat JPEGs) and `ILSVRC2012_devkit_t12.tar.gz` (the validation
  labels), each first checked against the md5 that torchvision's `ImageNet` checks
  (`torchvision.datasets.imagenet.ARCHIVE_META`); the validation labels are read by torchvision's
  `parse_devkit_archive` (which needs scipy). The image archives are read in place, one member
  at a time, never unpacked to disk (torchvision's `parse_train_archive` would need another
  ~140 GB);
- or the common extracted layout, `train/<wnid>/*.JPEG` and `val/<wnid>/*.JPEG` (what
  torchvision's `ImageNet` leaves), listed by torchvision's `ImageFolder` helpers.

Each image is decoded once and warped to 256 x 256 as Caffe's `examples/imagenet/
create_imagenet.sh` did (RESIZE_HEIGHT=256, RESIZE_WIDTH=256: aspect ratio ignored; here by
torchvision's bilinear resize with antialias, where Caffe's OpenCV resize had none), into uint8
shards that stream (`shards`): about 252 GB for the training split and 9.8 GB for the test split
on disk, read batch by batch. Training takes Caffe's random 227-px crops and mirrors from them
(`PretrainConfig.crop`), evaluation the central crop. Both sources give the same bytes: every
split is stored in class order, then by file name. Preparing takes hours and builds in a staging
folder, so a killed preparation leaves nothing that looks prepared (no resume: it starts over).
"""
from __future__ import annotations

import hashlib
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from torchvision.datasets import folder as tv_folder
from torchvision.datasets import imagenet as tv_imagenet
from torchvision.io import ImageReadMode, decode_image
from torchvision.transforms.v2 import functional as TF
from tqdm import tqdm

from itl import labels, paths
from itl.datasets import records, shards, sources, staging
from itl.datasets.entry import CLASSIFICATION, IMAGES, TOP1, Archive, Dataset
from itl.datasets.identity import mismatch, short_list
from itl.datasets.images import DataError, ImageSet

SIZE = 256  # px, square: Caffe's create_imagenet.sh (RESIZE_HEIGHT=256, RESIZE_WIDTH=256)
TRAIN, VAL, DEVKIT = (tv_imagenet.ARCHIVE_META[k][0] for k in ("train", "val", "devkit"))

Listing = list[tuple[int, str, Callable[[], bytes]]]  # (label, file name, its bytes), in order


@dataclass(frozen=True, kw_only=True)
class ImageNet1k(Dataset):
    """ImageNet-1k as streamed shards of 256 x 256 images."""
    train_images: int  # the training images of the whole set (ILSVRC2012: 1,281,167)
    test_per_class: int  # validation images per class (ILSVRC2012: 50)

    # ------------------------------------------------------------ preparing

    def prepare(self, source: Path, size: int = SIZE) -> Path:
        """Verify `source` (the official archives' folder, or the extracted layout), check it
        is ImageNet-1k, decode and warp every image into shards; returns the prepared folder.
        At 256 px only (Caffe's), refused at any other `size` before anything is read."""
        if size != SIZE:
            raise DataError(f"{self.name} is prepared at {SIZE} px only (Caffe's 256 x 256), not "
                            f"{size}: leave out --size")
        source, top = sources.checked(self.name, source)
        if not source.is_dir():
            raise DataError(f"{source} is a file: pass the folder holding {TRAIN}, {VAL} and "
                            f"{DEVKIT}, or the folder of train/<wnid>/ and val/<wnid>/")
        with staging.building(top, self.name) as stage:
            if (source / "train").is_dir() and (source / "val").is_dir():
                listing, origin = self._folders(source), records.origin(source, "folder")
                return self._build(listing, origin, source, stage, top)
            archives, md5s = self._verified_archives(source)
            wnids = val_labels(archives[DEVKIT], stage)
            with _open(archives[TRAIN]) as train, _open(archives[VAL]) as val:
                listing = {"train": _train_archive(train, archives[TRAIN], self.classes),
                           "test": _val_archive(val, archives[VAL], wnids, self.classes)}
                self._check_test(listing["test"], source)
                origin = records.origin(source, "archives", md5=md5s)
                return self._build(listing, origin, source, stage, top)

    def _verified_archives(self, source: Path) -> tuple[dict[str, Path], dict[str, str]]:
        """The three archives in `source`, each with the md5 this entry gives its name, and
        their md5s."""
        found = {a.name: source / a.name for a in self.archives}
        missing = [n for n, f in found.items() if not f.is_file()]
        if missing:
            raise DataError(f"{source} has no {', '.join(missing)}: put the official "
                            f"{', '.join(found)} in one folder (the devkit holds the validation "
                            "labels), or pass a folder of train/<wnid>/ and val/<wnid>/")
        md5s = {}
        for a in self.archives:
            md5s[a.name] = md5(found[a.name])
            if md5s[a.name] != a.md5:
                raise mismatch(self, found[a.name], f"md5 {md5s[a.name]}, expected {a.md5} "
                                                    f"(the published md5 of {a.name}); "
                                                    "download it again")
        return found, md5s

    def _folders(self, root: Path) -> dict[str, Listing]:
        """train/<wnid>/ and val/<wnid>/, listed by torchvision's ImageFolder helpers (class
        folders sorted, then files), checked against the entry before anything is decoded."""
        out = {}
        for split, sub in (("train", "train"), ("test", "val")):
            try:
                wnids, index = tv_folder.find_classes(str(root / sub))
                found = tv_folder.make_dataset(str(root / sub), index,
                                               extensions=tv_folder.IMG_EXTENSIONS)
            except (FileNotFoundError, OSError) as e:
                raise DataError(f"{root / sub}: {e}") from e
            if tuple(wnids) != self.classes:
                raise mismatch(self, root, _classes_differ(self.classes, wnids, f"{sub}/"))
            out[split] = [(k, Path(f).name, Path(f).read_bytes) for f, k in found]
        if len(out["train"]) != self.train_images:
            raise mismatch(self, root, f"found {len(out['train']):,} training images, expected "
                                       f"{self.train_images:,}")
        self._check_test(out["test"], root)
        return out

    def _check_test(self, listing: Listing, source: Path) -> None:
        counts = torch.bincount(torch.tensor([k for k, _, _ in listing]),
                                minlength=len(self.classes)).tolist()
        if counts != [self.test_per_class] * len(self.classes):
            k = next(i for i, c in enumerate(counts) if c != self.test_per_class)
            raise mismatch(self, source, f"found {counts[k]} validation images of "
                                         f"{self.classes[k]}, expected {self.test_per_class}")

    def _build(self, listing, origin: dict, source: Path, stage: Path, top: Path) -> Path:
        built = stage / self.name
        built.mkdir()
        splits = {}
        for split in ("train", "test"):
            out = shards.Writer(built, split, (3, SIZE, SIZE))
            total = self.train_images if split == "train" else \
                self.test_per_class * len(self.classes)
            for k, name, read in tqdm(listing[split], total=total, unit="img",
                                      desc=f"{self.name} {split}", mininterval=5.0,
                                      leave=False):
                out.add(warp(read(), name), k, name)
            splits[split] = out.close(len(self.classes))
        if sum(splits["train"]["images"]) != self.train_images:  # an archive's, at the end
            raise mismatch(self, source, f"found {sum(splits['train']['images']):,} training "
                                         f"images, expected {self.train_images:,}")
        shards.write_record(built, self.name, origin, self.classes, splits,
                            records.fingerprint_file(SIZE))
        return staging.install(built, top / self.name, stage)

    # ------------------------------------------------------------ reading

    def folder(self) -> Path:
        return paths.data_dir() / self.name

    def _record(self) -> dict:
        return shards.read_record(self.folder(), self.name, self.classes,
                                  {"train": None, "test": self.test_per_class},
                                  records.fingerprint_file(SIZE))

    def load(self, split: str, size: int | None = None) -> ImageSet:
        if size not in (None, SIZE):
            raise DataError(f"{self.name} is prepared at {SIZE} px only (Caffe's 256 x 256, "
                            f"cropped to 227 in training), not {size}: use --scale paper")
        if split not in self.splits:
            raise DataError(f"unknown split {split!r} of {self.name}: choose "
                            f"{' or '.join(self.splits)}")
        return shards.open_split(self.folder(), self.name, self._record(), split)

    def fingerprint(self, size: int | None = None) -> str:
        return records.fingerprint(self.name, size or SIZE)

    def present(self) -> bool:
        return (self.folder() / shards.RECORD).is_file()

    def verify(self) -> str | None:
        try:
            rec = self._record()
            for split in self.splits:
                shards.checked_files(self.folder(), self.name, rec, split)
        except DataError as e:
            return str(e)
        return None

    def summary(self) -> str:
        rec = self._record()
        n = {s: sum(p["images"]) for s, p in rec["splits"].items()}
        files = [s for p in rec["splits"].values() for s in p["shards"]]
        gb = sum(s["bytes"] for s in files) / 1e9
        return (f"{n['train']:,} train and {n['test']:,} test images, {len(self.classes)} "
                f"classes, at {SIZE}x{SIZE} px in {len(files)} shards ({gb:,.1f} GB on disk; "
                f"from {rec['source'].get('kind')} {rec['source'].get('path')})")


# ---------------------------------------------------------------- the sources


def md5(f: Path) -> str:
    """The md5 of a file, with progress for a large one (the training archive is 147 GB)."""
    h = hashlib.md5(usedforsecurity=False)
    size = f.stat().st_size
    with f.open("rb") as fh, tqdm(total=size, unit="B", unit_scale=True, desc=f"md5 {f.name}",
                                  mininterval=5.0, leave=False, disable=size < 1 << 30) as bar:
        for block in iter(lambda: fh.read(1 << 24), b""):
            h.update(block)
            bar.update(len(block))
    return h.hexdigest()


def val_labels(devkit: Path, stage: Path) -> list[str]:
    """The wnid of every validation image, in file-name order, as torchvision's
    `parse_devkit_archive` reads them from the devkit (data/meta.mat and
    data/ILSVRC2012_validation_ground_truth.txt; it checks the devkit's md5 again)."""
    try:
        import scipy.io  # noqa: F401 - torchvision's parser reads meta.mat with it
    except ImportError as e:
        raise DataError(f"reading the validation labels from {DEVKIT} needs scipy "
                        "(torchvision's parse_devkit_archive reads its data/meta.mat with "
                        "scipy.io): `pip install scipy`, or pass the extracted layout "
                        "(train/<wnid>/, val/<wnid>/)") from e
    root = stage / "devkit"
    root.mkdir()
    (root / DEVKIT).symlink_to(devkit.resolve())
    try:
        tv_imagenet.parse_devkit_archive(str(root))
        return list(tv_imagenet.load_meta_file(str(root))[1])
    except Exception as e:  # noqa: BLE001 - a devkit torchvision cannot read, whatever the cause
        raise DataError(f"cannot read the validation labels from {devkit}: {e}") from e


def _classes_differ(classes: tuple[str, ...], found, where: str) -> str:
    missing = sorted(set(classes) - set(found))
    extra = sorted(set(found) - set(classes))
    return (f"{where} holds {len(found)} classes where ImageNet-1k has {len(classes)}"
            + (f"; missing {short_list(missing)}" if missing else "")
            + (f"; not in it: {short_list(extra)}" if extra else ""))


def _open(f: Path) -> tarfile.TarFile:
    try:
        return tarfile.open(f)
    except (tarfile.TarError, EOFError, OSError) as e:
        raise DataError(f"cannot read {f}: {e} (truncated or not a tar?)") from e


def _read(tar: tarfile.TarFile, member: tarfile.TarInfo, where: str) -> bytes:
    try:
        return tar.extractfile(member).read()
    except (tarfile.TarError, EOFError, OSError) as e:
        raise DataError(f"cannot read {member.name} in {where}: {e} (truncated?)") from e


def _members(tar: tarfile.TarFile, where: str) -> list[tarfile.TarInfo]:
    """The files of a tar, sorted by name."""
    try:
        return sorted((m for m in tar.getmembers() if m.isfile()), key=lambda m: m.name)
    except (tarfile.TarError, EOFError, OSError) as e:
        raise DataError(f"cannot read {where}: {e} (truncated or not a tar?)") from e


def _train_archive(train: tarfile.TarFile, path: Path,
                   classes: tuple[str, ...]) -> Iterator[tuple[int, str, Callable[[], bytes]]]:
    """The training images of the tar of per-class tars (<wnid>.tar), class by class, each
    class's by file name; the classes are checked before any image is read."""
    inner = {Path(m.name).name.removesuffix(".tar"): m for m in _members(train, str(path))}
    if tuple(sorted(inner)) != classes:
        raise DataError(f"{path} is not {TRAIN}: " +
                        _classes_differ(classes, sorted(inner), "it"))

    def images():
        for k, w in enumerate(classes):
            where = f"{path} ({inner[w].name})"
            try:
                tar = tarfile.open(fileobj=train.extractfile(inner[w]))
            except (tarfile.TarError, EOFError, OSError) as e:
                raise DataError(f"cannot read {where}: {e} (truncated?)") from e
            with tar:
                for m in _members(tar, where):
                    data = _read(tar, m, where)
                    yield k, Path(m.name).name, lambda data=data: data
    return images()


def _val_archive(val: tarfile.TarFile, path: Path, wnids: list[str],
                 classes: tuple[str, ...]) -> Listing:
    """The validation images (flat, labelled in file-name order by `wnids`), in class order,
    then by file name."""
    members = _members(val, str(path))
    if len(members) != len(wnids):
        raise DataError(f"{path} holds {len(members):,} images where {DEVKIT} labels "
                        f"{len(wnids):,}")
    index = {w: k for k, w in enumerate(classes)}
    unknown = sorted(set(wnids) - set(index))
    if unknown:
        raise DataError(f"{DEVKIT} labels validation images with classes not in ImageNet-1k: "
                        f"{short_list(unknown)}")
    order = sorted(zip(wnids, members), key=lambda p: (index[p[0]], p[1].name))
    return [(index[w], Path(m.name).name, lambda m=m: _read(val, m, str(path)))
            for w, m in order]


def warp(data: bytes, name: str) -> torch.Tensor:
    """An encoded image as uint8 RGB warped to 256 x 256 (Caffe's create_imagenet.sh: the
    aspect ratio ignored)."""
    try:
        img = decode_image(torch.frombuffer(bytearray(data), dtype=torch.uint8),
                           mode=ImageReadMode.RGB)
    except Exception as e:  # noqa: BLE001 - any decoder failure is an unreadable image
        raise DataError(f"unreadable image {name}: {e}") from e
    return TF.resize(img, [SIZE, SIZE], antialias=True)


IMAGENET_1K = ImageNet1k(
    name="imagenet-1k", kind=CLASSIFICATION, metric=TOP1,
    classes=tuple(labels.imagenet1k_wnids()), class_ids="wnid",
    splits=("train", "test"),  # test: ILSVRC2012's 50,000 validation images
    train_images=1_281_167, test_per_class=50,
    per_class_unit=IMAGES,  # the paper's own data: its 500 images per class are 500
    archives=tuple(Archive(*tv_imagenet.ARCHIVE_META[k])  # (name, md5), as torchvision checks
                   for k in ("train", "val", "devkit")),
    fix=f"the folder holding {TRAIN}, {VAL} and {DEVKIT} (or train/<wnid>/ and val/<wnid>/)")
ENTRIES = (IMAGENET_1K,)
