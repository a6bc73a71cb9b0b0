"""Real data for the small scale (Tiny ImageNet-200 as the source "ImageNet"; 15-Scene and
CIFAR-10 as stand-ins for the paper's SUN-CLS and PASCAL targets): verify, unpack, cache.

`itl data prepare NAME --from PATH` takes either
- a folder of tar.gz shards with a SHA256SUMS file (`../shared/data`): every shard of NAME is
  checked against its sum before anything is unpacked; or
- the original public distribution: Tiny ImageNet's `tiny-imagenet-200.zip`, CIFAR-10's
  `cifar-10-python.tar.gz` (pickled batches), 15-Scene as a zip/tar of one folder per class
  (the standard split is drawn: 100 training images per class, seeded, the rest test); an
  archive under the original's file name must have the original's published md5; or
- a folder already in one of those layouts; or
- a data set folder prepared by an itl that wrote no `source.json` (its caches are checked
  against the data set's identity and recorded, never rebuilt).
Whatever the source, it must be the data set it is called: each data set has an `Identity`
(class names, images per class per split, size of the original images), checked on the
unpacked source before any image is decoded, so 15-Scene offered as CIFAR-10 is refused.
It then decodes every image once into uint8 tensors (`cache-<size>-<split>.pt`) that training
reads, and writes `source.json` beside them: what the caches were built from (path, sha256 of the
shards or md5/sha256 of the archive), their classes, counts, image size and fingerprints. Every
read checks the cache against that record and the identity (cheaply: no hashing).
Everything is built in a staging folder under ITL_DATA and renamed into place only when
complete, so a wrong checksum, a truncated archive, a missing split or an unreadable image gives
one error naming it and leaves nothing that looks prepared; the staging folders of a killed
preparation are removed by the next one. Nothing here touches the network.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import pickle
import shutil
import socket
import tarfile
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

import itl
from itl import data, paths, rng
from itl.data import DataError, ImageSet

DATASETS = {  # name -> folder inside the shards folder / the unpacked distribution
    "tiny-imagenet-200": "tiny-imagenet-200",
    "15-scene": "15-scene",
    "cifar-10": "cifar-10",
    "bccd": "bccd",  # VOC-format detection set: unpacked as is, no image cache
}
SIZE = 64  # pixels: the default cache (AlexNet needs at least 63)
SIZES = (64, 32)  # every prepared data set gets a cache at each (small scale v2 trains at 32 px,
# CIFAR-10's own size); each is decoded from the original images, not from another cache
RECORD = "source.json"  # beside the caches: what they were built from
STAGING = ".staging-"  # prefix of the folders a preparation builds in, under ITL_DATA
OWNER = "owner.json"  # inside a staging folder: the pid and host building it
STALE_AFTER_S = 24 * 3600  # a staging folder this old is abandoned, whoever made it


# ---------------------------------------------------------------- what each data set is


@dataclass(frozen=True)
class Identity:
    """What a classification data set must be for itl to call it by its name."""
    name: str
    classes: tuple[str, ...]  # class names / wnids in the cache's order (sorted)
    per_class: dict[str, int | tuple[int, ...]]  # split -> images per class (int: every class)
    image_size: tuple[int, int] | None  # (height, width) of every original image; None: varies
    fix: str  # the PATH to give `itl data prepare NAME --from PATH` instead
    archive: str | None = None  # file name of the original distribution
    archive_md5: str | None = None  # its published md5
    aliases: dict[str, str] = dataclasses.field(default_factory=dict)  # folder name -> class

    def counts(self, split: str) -> tuple[int, ...]:
        n = self.per_class[split]
        return (n,) * len(self.classes) if isinstance(n, int) else tuple(n)


@dataclass(frozen=True)
class VocIdentity:
    """What a VOC-format detection set must be (BCCD)."""
    name: str
    classes: tuple[str, ...]  # every object's <name> is one of these, and each occurs
    split_sizes: dict[str, int]  # ImageSets/Main/<split>.txt -> images it lists
    image_size: tuple[int, int] | None  # (height, width) in every annotation's <size>
    fix: str


TINY_WNIDS = tuple("""
    n01443537 n01629819 n01641577 n01644900 n01698640 n01742172 n01768244 n01770393
    n01774384 n01774750 n01784675 n01855672 n01882714 n01910747 n01917289 n01944390
    n01945685 n01950731 n01983481 n01984695 n02002724 n02056570 n02058221 n02074367
    n02085620 n02094433 n02099601 n02099712 n02106662 n02113799 n02123045 n02123394
    n02124075 n02125311 n02129165 n02132136 n02165456 n02190166 n02206856 n02226429
    n02231487 n02233338 n02236044 n02268443 n02279972 n02281406 n02321529 n02364673
    n02395406 n02403003 n02410509 n02415577 n02423022 n02437312 n02480495 n02481823
    n02486410 n02504458 n02509815 n02666196 n02669723 n02699494 n02730930 n02769748
    n02788148 n02791270 n02793495 n02795169 n02802426 n02808440 n02814533 n02814860
    n02815834 n02823428 n02837789 n02841315 n02843684 n02883205 n02892201 n02906734
    n02909870 n02917067 n02927161 n02948072 n02950826 n02963159 n02977058 n02988304
    n02999410 n03014705 n03026506 n03042490 n03085013 n03089624 n03100240 n03126707
    n03160309 n03179701 n03201208 n03250847 n03255030 n03355925 n03388043 n03393912
    n03400231 n03404251 n03424325 n03444034 n03447447 n03544143 n03584254 n03599486
    n03617480 n03637318 n03649909 n03662601 n03670208 n03706229 n03733131 n03763968
    n03770439 n03796401 n03804744 n03814639 n03837869 n03838899 n03854065 n03891332
    n03902125 n03930313 n03937543 n03970156 n03976657 n03977966 n03980874 n03983396
    n03992509 n04008634 n04023962 n04067472 n04070727 n04074963 n04099969 n04118538
    n04133789 n04146614 n04149813 n04179913 n04251144 n04254777 n04259630 n04265275
    n04275548 n04285008 n04311004 n04328186 n04356056 n04366367 n04371430 n04376876
    n04398044 n04399382 n04417672 n04456115 n04465501 n04486054 n04487081 n04501370
    n04507155 n04532106 n04532670 n04540053 n04560804 n04562935 n04596742 n04597913
    n06596364 n07579787 n07583066 n07614500 n07615774 n07695742 n07711569 n07715103
    n07720875 n07734744 n07747607 n07749582 n07753592 n07768694 n07871810 n07873807
    n07875152 n07920052 n09193705 n09246464 n09256479 n09332890 n09428293 n12267677
""".split())  # the 200 classes of CS231n's Tiny ImageNet (its wnids.txt, sorted)
CIFAR_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
                 "truck")  # batches.meta's label_names (already in sorted order)
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
_SHARDS = "the shards folder holding SHA256SUMS (../shared/data)"
IDENTITIES: dict[str, Identity | VocIdentity] = {
    "tiny-imagenet-200": Identity(
        "tiny-imagenet-200", TINY_WNIDS, {"train": 500, "test": 50}, (64, 64),
        fix=f"{_SHARDS} or CS231n's tiny-imagenet-200.zip",
        archive="tiny-imagenet-200.zip",
        # md5 of http://cs231n.stanford.edu/tiny-imagenet-200.zip (248,100,043 bytes) as
        # checked by Avalanche's TinyImagenet loader (ContinualAI/avalanche,
        # avalanche/benchmarks/datasets/tiny_imagenet/tiny_imagenet.py) and many others
        archive_md5="90528d7ca1a48142e341f4ef8d21d0de"),
    "cifar-10": Identity(
        "cifar-10", CIFAR_CLASSES, {"train": 5000, "test": 1000}, (32, 32),
        fix=f"{_SHARDS} or Krizhevsky's cifar-10-python.tar.gz",
        archive="cifar-10-python.tar.gz",
        archive_md5="c58f30108f718f92721af3b95e74349a"),  # torchvision's datasets.CIFAR10
    "15-scene": Identity(
        "15-scene", SCENE_CLASSES, {"train": 100, "test": SCENE_TEST}, None,
        # the shards' images are 128x128, Lazebnik's originals of varied size
        fix=f"{_SHARDS} or an archive of Lazebnik's 15 class folders",
        aliases=SCENE_ORIGINAL),
    "bccd": VocIdentity(
        "bccd", ("Platelets", "RBC", "WBC"),
        {"train": 205, "val": 87, "trainval": 292, "test": 72}, (480, 640),
        fix=f"{_SHARDS} or the BCCD_Dataset repository's BCCD folder"),
}


def identity(name: str) -> Identity | VocIdentity:
    return IDENTITIES[name]


def cache_path(name: str, split: str, size: int = SIZE) -> Path:
    return paths.data_dir() / name / f"cache-{size}-{split}.pt"


def fingerprint_file(size: int = SIZE) -> str:
    """The file holding the digest of a data set's caches at `size` px (the 64-px one keeps
    its first name, so runs keyed on it stay valid)."""
    return "fingerprint" if size == SIZE else f"fingerprint-{size}"


def _names(items, k: int = 4) -> str:
    items = list(items)
    more = f" and {len(items) - k} more" if len(items) > k else ""
    return ", ".join(items[:k]) + more


def _remedy(ident: Identity | VocIdentity) -> str:
    return f"run `itl data prepare {ident.name} --from PATH` with PATH {ident.fix}"


def _mismatch(ident: Identity | VocIdentity, source: Path, what: str) -> DataError:
    """The one error of a source that is not the data set it is offered as."""
    return DataError(f"{source} is not {ident.name}: {what}; {_remedy(ident)}")


def _compare_classes(ident: Identity | VocIdentity, found, source: Path, where: str) -> None:
    found = tuple(found)
    if found == ident.classes:
        return
    missing = [c for c in ident.classes if c not in set(found)]
    extra = [c for c in found if c not in set(ident.classes)]
    detail = "" if len(extra) == len(found) else "".join([  # some in common: which differ
        f"; missing {_names(missing)}" if missing else "",
        f"; not in {ident.name}: {_names(extra)}" if extra else ""])
    raise _mismatch(ident, source, f"found {len(found)} classes in {where} ({_names(found)}), "
                                   f"expected {len(ident.classes)} ({_names(ident.classes)})"
                                   f"{detail}")


def _compare_counts(ident: Identity, split: str, counts, source: Path, where: str) -> None:
    counts, want = tuple(counts), ident.counts(split)
    if counts == want:
        return
    k = next(i for i, (a, b) in enumerate(zip(counts, want)) if a != b)
    c = ident.classes[k]
    where = f" in {where}" if where else ""
    raise _mismatch(ident, source, f"found {sum(counts):,} {split} images{where} "
                                   f"({c}: {counts[k]:,}), expected {sum(want):,} "
                                   f"({c}: {want[k]:,})")


def _size_text(hw) -> str:
    return f"{hw[1]}x{hw[0]}"  # width x height, as image sizes are usually written


def _compare_image_size(ident: Identity | VocIdentity, shapes, source: Path, what: str) -> None:
    if ident.image_size is None:
        return
    other = sorted({tuple(s) for s in shapes} - {tuple(ident.image_size)})
    if other:
        raise _mismatch(ident, source, f"found {what} of {', '.join(map(_size_text, other[:3]))}"
                                       f" px, expected {_size_text(ident.image_size)}")


# ---------------------------------------------------------------- checksums and unpacking


def _md5_sha256(f: Path) -> tuple[str, str]:
    md5, sha = hashlib.md5(usedforsecurity=False), hashlib.sha256()
    with f.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            md5.update(block)
            sha.update(block)
    return md5.hexdigest(), sha.hexdigest()


_HEX = frozenset("0123456789abcdefABCDEF")
_UNESCAPE = {"\\": "\\", "n": "\n", "r": "\r"}


def _unescape(name: str) -> str | None:
    """sha256sum's escaped file name (its line starts with a backslash): \\\\ is a backslash,
    \\n a newline, \\r a carriage return; None for any other escape."""
    out, i = [], 0
    while i < len(name):
        if name[i] == "\\":
            if i + 1 >= len(name) or name[i + 1] not in _UNESCAPE:
                return None
            out.append(_UNESCAPE[name[i + 1]])
            i += 2
        else:
            out.append(name[i])
            i += 1
    return "".join(out)


def read_sums(sums: Path) -> list[tuple[str, str]]:
    """(sha256, file name) for every line of a SHA256SUMS file, in each format `sha256sum`
    writes: `HASH  name` (text mode), `HASH *name` (binary mode), `SHA256 (name) = HASH`
    (`--tag`), each optionally starting with a backslash that marks an escaped name. Empty lines
    are skipped; any other line is one DataError naming the file and the line."""
    try:
        text = sums.read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"unreadable checksum file {sums}: {e}") from e
    out = []
    for n, line in enumerate(text.split("\n"), 1):
        line = line.removesuffix("\r")
        if not line.strip():
            continue
        escaped = line.startswith("\\")
        body = line[1:] if escaped else line
        digest = name = None
        if body.startswith("SHA256 (") and ") = " in body:
            name, _, digest = body[len("SHA256 ("):].rpartition(") = ")
        elif len(body) > 66 and body[64] == " " and body[65] in " *":
            digest, name = body[:64], body[66:]
        if escaped and name is not None:
            name = _unescape(name)
        if (digest is None or len(digest) != 64 or not set(digest) <= _HEX or not name):
            raise DataError(f"{sums} line {n} is not a sha256sum line (`HASH  NAME`, "
                            f"`HASH *NAME` or `SHA256 (NAME) = HASH`): {line[:80]!r}; "
                            "regenerate it with `sha256sum`")
        out.append((digest.lower(), name))
    return out


ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".zip")


def verified_shards(folder: Path, name: str) -> dict[Path, str]:
    """The shards of `name` listed in folder/SHA256SUMS (path -> sha256), each checked against
    its sum; a shard in the data set's folder that the file does not list is refused too."""
    sums = folder / "SHA256SUMS"
    shards = {}
    for digest, rel in read_sums(sums):
        rel = rel.removeprefix("./")
        if rel.split("/")[0] != DATASETS[name]:
            continue
        f = folder / rel
        if not f.is_file():
            raise DataError(f"shard {f} listed in {sums} is missing")
        if paths.sha256_file(f) != digest:
            raise DataError(f"wrong checksum for {f}: expected {digest} from {sums}")
        shards[f] = digest
    if not shards:
        raise DataError(f"{sums} lists no shard of {name} (expected ./{DATASETS[name]}/...)")
    listed = {f.resolve() for f in shards}
    for f in sorted((folder / DATASETS[name]).rglob("*")):
        if f.is_file() and f.name.endswith(ARCHIVE_SUFFIXES) and f.resolve() not in listed:
            raise DataError(f"shard {f} is not listed in {sums}: add its sum (`sha256sum`) "
                            "or remove it")
    return shards


def _unpack(archive: Path, into: Path) -> None:
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as z:
                bad = z.testzip()
                if bad:
                    raise DataError(f"corrupt member {bad} in {archive}")
                z.extractall(into)
        else:
            with tarfile.open(archive) as t:
                t.extractall(into, filter="data")
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as e:
        raise DataError(f"cannot unpack {archive}: {e} (truncated or not an archive?)") from e


def _find(root: Path, marker: str) -> Path | None:
    """The folder under root (root included) that holds `marker`."""
    hits = sorted(p.parent for p in root.rglob(marker))
    return min(hits, key=lambda p: len(p.parts)) if hits else None


# ---------------------------------------------------------------- reading each layout


@dataclass
class _Split:
    """One split of a source before any image is decoded: what the identity checks read."""
    classes: tuple[str, ...]
    y: torch.Tensor  # int64 labels
    files: list[Path] = dataclasses.field(default_factory=list)  # the images to decode, or
    x: torch.Tensor | None = None  # CIFAR's python batches: the 32x32 images themselves

    def counts(self) -> list[int]:
        return torch.bincount(self.y, minlength=len(self.classes)).tolist()


def _decode(f: Path, size: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """An image at size x size px, and the (height, width) it had."""
    img = data.decode_rgb(f)
    shape = tuple(img.shape[-2:])
    if shape != (size, size):
        img = F.interpolate(img[None].float(), size=(size, size), mode="bilinear",
                            antialias=True, align_corners=False)[0].round().clamp(0, 255)
        img = img.to(torch.uint8)
    return img, shape


def _images(part: _Split, size: int, what: str) -> tuple[ImageSet, set[tuple[int, int]]]:
    """The split's images at `size` px, and the sizes the originals had."""
    if part.x is not None:
        x = part.x
        if size != 32:
            x = F.interpolate(x.float(), size=(size, size), mode="bilinear",
                              align_corners=False).round().clamp(0, 255).to(torch.uint8)
        return ImageSet(x, part.y, part.classes), {tuple(part.x.shape[-2:])}
    if not part.files:
        raise DataError(f"no images found for {what}")
    xs, shapes = [], set()
    for f in tqdm(part.files, desc=what, unit="img", leave=False, mininterval=2.0):
        img, shape = _decode(f, size)
        xs.append(img)
        shapes.add(shape)
    return ImageSet(torch.stack(xs), part.y, part.classes), shapes


def _tiny(root: Path) -> dict[str, _Split]:
    listed = (root / "wnids.txt").read_text().split()
    wnids = sorted(listed)
    if len(set(wnids)) != len(wnids):
        raise DataError(f"{root / 'wnids.txt'} lists a wnid more than once")
    ann = root / "val" / "val_annotations.txt"
    if not (root / "train").is_dir() or not ann.is_file():
        raise DataError(f"{root}: Tiny ImageNet needs train/ and val/val_annotations.txt")
    stray = sorted(p.name for p in (root / "train").iterdir()
                   if p.is_dir() and p.name not in set(wnids))
    if stray:
        raise DataError(f"{root}/train holds class folders that wnids.txt does not list: "
                        f"{_names(stray)}")
    files, ys = [], []
    for k, w in enumerate(wnids):
        got = sorted((root / "train" / w / "images").glob("*.JPEG"))
        if not got:
            raise DataError(f"{root}/train/{w}/images holds no images")
        files += got
        ys += [k] * len(got)
    out = {"train": _Split(tuple(wnids), torch.tensor(ys), files)}
    index = {w: k for k, w in enumerate(wnids)}
    files, ys = [], []
    for n, line in enumerate(ann.read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) < 2 or parts[1] not in index:
            raise DataError(f"{ann} line {n} is not IMAGE<TAB>WNID with a wnid of wnids.txt: "
                            f"{line[:80]!r}")
        files.append(root / "val" / "images" / parts[0])
        ys.append(index[parts[1]])
    out["test"] = _Split(tuple(wnids), torch.tensor(ys), files)
    return out


IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def _class_folders(root: Path, what: str, aliases: dict[str, str]) -> _Split:
    folders: dict[str, Path] = {}
    for p in sorted(root.iterdir()):
        if p.is_dir():
            c = aliases.get(p.name, p.name)
            if c in folders:
                raise DataError(f"{root}: folders {folders[c].name} and {p.name} both hold "
                                f"class {c}")
            folders[c] = p
    classes = sorted(folders)
    files, ys = [], []
    for k, c in enumerate(classes):
        got = sorted(f for f in folders[c].iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
        files += got
        ys += [k] * len(got)
    if not files:
        raise DataError(f"no images found for {what} under {root}")
    return _Split(tuple(classes), torch.tensor(ys), files)


def _split_folders(root: Path, name: str, aliases: dict[str, str]) -> dict[str, _Split]:
    for split in ("train", "test"):
        if not (root / split).is_dir():
            raise DataError(f"{root}: the {split}/ split of {name} is missing")
    return {s: _class_folders(root / s, f"{name} {s}", aliases) for s in ("train", "test")}


def _scene_original(everything: _Split, per_class: int) -> dict[str, _Split]:
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
    pick = lambda i: _Split(everything.classes, everything.y[sorted(i)],  # noqa: E731
                            [everything.files[j] for j in sorted(i)])
    return {"train": pick(train_idx), "test": pick(test_idx)}


def _cifar_batches(root: Path) -> dict[str, _Split]:
    """CIFAR-10's python distribution: pickled batches of 32x32 images."""
    def unpickle(f: Path) -> dict:
        try:
            with f.open("rb") as fh:
                d = pickle.load(fh, encoding="bytes")
        except (OSError, pickle.UnpicklingError, EOFError, ValueError, TypeError) as e:
            raise DataError(f"unreadable CIFAR-10 batch {f}: {e}") from e
        if not isinstance(d, dict):
            raise DataError(f"{f} is not a CIFAR-10 batch (a pickled dict)")
        return d

    def load(files: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        xs, ys = [], []
        for name in files:
            d = unpickle(root / name)
            try:
                x = torch.as_tensor(d[b"data"]).reshape(-1, 3, 32, 32)
                y = torch.as_tensor(d[b"labels"])
            except (KeyError, TypeError, ValueError, RuntimeError) as e:
                raise DataError(f"{root / name} is not a CIFAR-10 batch (data: N x 3072 uint8, "
                                f"labels: N): {e}") from e
            if x.dtype != torch.uint8 or y.ndim != 1 or len(y) != len(x):
                raise DataError(f"{root / name} is not a CIFAR-10 batch: {tuple(x.shape)} "
                                f"{x.dtype} images, {tuple(y.shape)} labels")
            xs.append(x)
            ys.append(y.long())
        return torch.cat(xs), torch.cat(ys)

    meta = unpickle(root / "batches.meta")
    try:
        names = tuple(n.decode() for n in meta[b"label_names"])
    except (KeyError, TypeError, AttributeError) as e:
        raise DataError(f"{root / 'batches.meta'} has no label_names: {e}") from e
    out = {}
    for split, files in (("train", [f"data_batch_{i}" for i in range(1, 6)]),
                         ("test", ["test_batch"])):
        x, y = load(files)
        if len(y) and (y.min() < 0 or y.max() >= len(names)):
            raise DataError(f"{root}: {split} labels outside the {len(names)} classes of "
                            "batches.meta")
        out[split] = _Split(names, y, x=x)
    return out


def _layout_root(unpacked: Path) -> tuple[Path, str]:
    """The shallowest folder holding train/ or test/ ("split" layout), else the shallowest one
    whose subfolders all hold images ("classes" layout: one folder per class, no split)."""
    dirs = [unpacked] + sorted((p for p in unpacked.rglob("*") if p.is_dir()),
                               key=lambda p: (len(p.parts), str(p)))
    for d in dirs:
        if (d / "train").is_dir() or (d / "test").is_dir():
            return d, "split"
    for d in dirs:
        subs = [p for p in d.iterdir() if p.is_dir()]
        if subs and all(any(f.suffix.lower() in IMAGE_SUFFIXES for f in s.iterdir())
                        for s in subs):
            return d, "classes"
    raise DataError(f"no known layout under {unpacked}: expected train/ and test/ folders of "
                    "class folders")


def _index(ident: Identity, unpacked: Path, source: Path) -> dict[str, _Split]:
    """The splits of the source (files and labels, nothing decoded), checked against the
    identity: its splits, class names and images per class."""
    name = ident.name
    if name == "tiny-imagenet-200":
        root = _find(unpacked, "wnids.txt")
        if root is None:
            raise DataError(f"no Tiny ImageNet layout (wnids.txt) under {unpacked}; "
                            f"{_remedy(ident)}")
        index = _tiny(root)
    elif name == "cifar-10" and _find(unpacked, "batches.meta") is not None:
        index = _cifar_batches(_find(unpacked, "batches.meta"))
    else:
        root, layout = _layout_root(unpacked)
        if layout == "split":
            index = _split_folders(root, name, ident.aliases)
        else:
            everything = _class_folders(root, name, ident.aliases)
            _compare_classes(ident, everything.classes, source, f"the class folders of {root}")
            if not isinstance(ident.per_class.get("train"), int) or name != "15-scene":
                raise DataError(f"{root}: {name} needs train/ and test/ folders; "
                                f"{_remedy(ident)}")
            index = _scene_original(everything, ident.per_class["train"])
    if set(index) != set(ident.per_class):
        raise _mismatch(ident, source, f"found splits {', '.join(sorted(index))}, expected "
                                       f"{', '.join(sorted(ident.per_class))}")
    for split, part in index.items():
        _compare_classes(ident, part.classes, source, f"its {split} split")
        _compare_counts(ident, split, part.counts(), source, "")
    return index


# ---------------------------------------------------------------- staging folders


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # alive, but another user's
        return True
    return True


def _stale(folder: Path, now: float) -> bool:
    """A staging folder whose preparation is over: its owner (pid on this host) is gone, or it
    is older than STALE_AFTER_S. One without an owner record (an older itl's) only by age."""
    try:
        owner = json.loads((folder / OWNER).read_text())
        started, pid, host = float(owner["started"]), int(owner["pid"]), str(owner["host"])
    except (OSError, ValueError, KeyError, TypeError):
        try:
            return now - folder.stat().st_mtime > STALE_AFTER_S
        except OSError:
            return False
    if now - started > STALE_AFTER_S:
        return True
    return host == socket.gethostname() and not _pid_alive(pid)


def _rmtree(folder: Path) -> None:
    def retry(fn, path, _exc):  # a read-only folder unpacked from an archive
        try:
            os.chmod(os.path.dirname(path), 0o700)
            os.chmod(path, 0o700)
            fn(path)
        except OSError:
            pass
    shutil.rmtree(folder, onerror=retry)  # onerror: Python 3.11 (3.12 also takes onexc)


def remove_stale_staging(top: Path, now: float | None = None) -> list[Path]:
    """Remove the staging folders under `top` that a killed preparation left; returns them."""
    now = time.time() if now is None else now
    gone = []
    for d in sorted(top.glob(f"{STAGING}*")):
        if d.is_dir() and _stale(d, now):
            _rmtree(d)
            gone.append(d)
    return gone


def _staging(top: Path, name: str) -> Path:
    d = Path(tempfile.mkdtemp(prefix=f"{STAGING}{name}-", dir=top))
    (d / OWNER).write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                       "started": time.time()}) + "\n")
    return d


# ---------------------------------------------------------------- the record beside a cache


def _origin(source: Path, kind: str, **digests) -> dict:
    return {"path": str(source.resolve()), "kind": kind, **digests}


def _write_record(folder: Path, name: str, origin: dict, classes, images: dict,
                  image_size, sizes: dict) -> None:
    paths.atomic_write_json(folder / RECORD, {
        "dataset": name,
        "source": origin,  # path given, kind (shards, archive, folder, adopted) and digests
        "classes": list(classes),
        "images": images,  # split -> images per class, in the order of `classes`
        "original_image_size": image_size,  # [height, width]; None: varied or not known
        "sizes": sizes,  # px -> fingerprint and the byte size of each cache file
        "itl_version": itl.__version__,
        "prepared": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    })


def _prepare_again(name: str, folder: Path) -> str:
    return (f"run `itl data prepare {name} --from PATH` (PATH: the shards folder or the "
            f"original archive; or {folder} itself, to check and record caches that an itl "
            "without records built)")


def read_record(name: str) -> dict:
    """The record of a prepared data set, checked against its identity."""
    folder = paths.data_dir() / name
    f = folder / RECORD
    again = _prepare_again(name, folder)
    if not f.is_file():
        raise DataError(f"{f} is missing: nothing says what the {name} caches beside it were "
                        f"built from; {again}")
    try:
        rec = json.loads(f.read_text())
        found = (rec["dataset"], tuple(rec["classes"]),
                 {s: tuple(c) for s, c in rec["images"].items()}, dict(rec["sizes"]))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise DataError(f"unreadable record {f} ({e!r}); {again}") from e
    ident = IDENTITIES[name]
    want = {s: ident.counts(s) for s in ident.per_class}
    if found[0] != name:
        raise DataError(f"{f} records data set {found[0]!r}, not {name!r}; {again}")
    if found[1] != ident.classes:
        raise DataError(f"{f} records {len(found[1])} classes ({_names(found[1])}) where "
                        f"{name} has {len(ident.classes)} ({_names(ident.classes)}); {again}")
    if found[2] != want:
        got = {s: sum(c) for s, c in found[2].items()}
        raise DataError(f"{f} records images per split {got} where {name} has "
                        f"{ {s: sum(c) for s, c in want.items()} } (or other counts per "
                        f"class); {again}")
    return rec


def _check_cache(images: ImageSet, rec: dict, split: str, size: int, f: Path,
                 again: str) -> None:
    """A cache as read against its record: classes, images per class, image shape (cheap)."""
    want = rec["images"][split]
    problem = None
    if images.classes != tuple(rec["classes"]):
        problem = (f"classes {_names(images.classes)} where the record has "
                   f"{_names(rec['classes'])}")
    elif images.x.dtype != torch.uint8 or tuple(images.x.shape[1:]) != (3, size, size):
        problem = (f"{images.x.dtype} images of {tuple(images.x.shape[1:])} where "
                   f"uint8 (3, {size}, {size}) belong")
    elif images.y.ndim != 1 or len(images.y) != len(images.x) or (
            len(images.y) and (images.y.min() < 0 or images.y.max() >= len(want))):
        problem = f"{len(images.y)} labels for {len(images.x)} images, or labels out of range"
    elif torch.bincount(images.y, minlength=len(want)).tolist() != list(want):
        problem = (f"{len(images.y):,} images where the record has {sum(want):,} "
                   "(or other counts per class)")
    if problem:
        raise DataError(f"data cache {f} holds {problem}; {again}")


# ---------------------------------------------------------------- the command


def prepare(name: str, source: Path, size: int = SIZE) -> Path:
    """Verify/unpack `source`, check it is `name`, and build the uint8 caches of `name` with
    their record; returns its folder."""
    if name not in DATASETS:
        raise DataError(f"unknown data set {name!r} to prepare: choose one of "
                        f"{', '.join(DATASETS)}")
    ident = IDENTITIES[name]
    source = Path(source)
    if not source.exists():
        raise DataError(f"{source} does not exist")
    top = paths.ensure_writable(paths.data_dir())
    final = (top / name).resolve()
    here = source.resolve()
    if (here == final or final in here.parents) and not _is_cache_folder(source):
        raise DataError(f"{source} is where itl keeps the prepared {name} ({top / name}), and "
                        "preparing replaces that folder: move the original images or archive "
                        "elsewhere and pass that path to --from (nothing was changed)")
    remove_stale_staging(top)
    staging = _staging(top, name)
    try:
        if name != "bccd" and _is_cache_folder(source):
            return _adopt(ident, source, top, staging)
        unpacked = staging / "unpacked"
        unpacked.mkdir()
        if source.is_dir() and (source / "SHA256SUMS").is_file():
            shards = verified_shards(source, name)
            origin = _origin(source, "shards", sha256={
                str(f.relative_to(source)): d for f, d in shards.items()})
            for shard in shards:
                _unpack(shard, unpacked)
        elif source.is_file():
            md5, sha = _md5_sha256(source)
            if (getattr(ident, "archive", None) == source.name and ident.archive_md5
                    and md5 != ident.archive_md5):
                raise _mismatch(ident, source, f"md5 {md5}, expected {ident.archive_md5} (the "
                                               f"published md5 of {ident.archive})")
            origin = _origin(source, "archive", md5=md5, sha256=sha)
            _unpack(source, unpacked)
        else:
            unpacked = source  # a folder already laid out
            origin = _origin(source, "folder")
        if name == "bccd":
            return _install_voc(ident, source, unpacked, top, staging, origin)
        index = _index(ident, unpacked, source)
        built = staging / name
        built.mkdir()
        sizes, seen = {}, set()
        for n, px in enumerate(dict.fromkeys((size,) + SIZES)):
            files = {}
            for split, part in index.items():
                images, shapes = _images(part, px, f"{name} {split}")
                if n == 0:  # the originals' sizes, once
                    _compare_image_size(ident, shapes, source, f"{split} images")
                    seen |= shapes
                f = built / f"cache-{px}-{split}.pt"
                torch.save({"x": images.x, "y": images.y, "classes": list(images.classes)}, f)
                files[f.name] = f.stat().st_size
                del images
            digest = hashlib.sha256()
            for split in sorted(index):
                digest.update(paths.sha256_file(built / f"cache-{px}-{split}.pt").encode())
            fingerprint = f"{name}-{digest.hexdigest()[:16]}"
            (built / fingerprint_file(px)).write_text(f"{fingerprint}\n")
            sizes[str(px)] = {"fingerprint": fingerprint, "files": files}
        if name == "tiny-imagenet-200":
            (built / "wnids.txt").write_text("\n".join(ident.classes) + "\n")
        _write_record(built, name, origin, ident.classes,
                      {s: index[s].counts() for s in index},
                      list(next(iter(seen))) if len(seen) == 1 else None, sizes)
        return _install(built, top / name, staging)
    finally:
        _rmtree(staging)


def _install(built: Path, final: Path, staging: Path) -> Path:
    if final.exists():
        os.replace(final, staging / "old")
    os.replace(built, final)  # the one step that makes it look prepared
    return final


def _is_cache_folder(source: Path) -> bool:
    return source.is_dir() and (source / fingerprint_file(SIZE)).is_file() and \
        any(source.glob("cache-*-train.pt"))


def _adopt(ident: Identity, source: Path, top: Path, staging: Path) -> Path:
    """A data set folder that an itl prepared: every cache is checked against the identity and
    its fingerprint file (hashed once, here), then the record is written (in place, or on a
    copy installed under ITL_DATA)."""
    name = ident.name
    again = f"prepare {name} again from its shards or original archive ({_remedy(ident)})"
    sizes, counts = {}, {}
    for fp in sorted(source.glob("fingerprint*")):
        px = SIZE if fp.name == "fingerprint" else int(fp.name.removeprefix("fingerprint-"))
        digest, files = hashlib.sha256(), {}
        for split in sorted(ident.per_class):
            f = source / f"cache-{px}-{split}.pt"
            if not f.is_file():
                raise DataError(f"{source} has {fp.name} but no {f.name}; {again}")
            digest.update(paths.sha256_file(f).encode())
            images = data.read_cache(f, again)
            where = f"{f}"
            _compare_classes(ident, images.classes, source, where)
            if tuple(images.x.shape[1:]) != (3, px, px) or images.x.dtype != torch.uint8:
                raise DataError(f"{f} holds {images.x.dtype} images of "
                                f"{tuple(images.x.shape[1:])}, not uint8 (3, {px}, {px}); "
                                f"{again}")
            counts[split] = torch.bincount(images.y, minlength=len(images.classes)).tolist()
            _compare_counts(ident, split, counts[split], source, where)
            files[f.name] = f.stat().st_size
        fingerprint = f"{name}-{digest.hexdigest()[:16]}"
        if fp.read_text().strip() != fingerprint:
            raise DataError(f"{fp} says {fp.read_text().strip()} but the caches beside it hash "
                            f"to {fingerprint}: changed since they were prepared; {again}")
        sizes[str(px)] = {"fingerprint": fingerprint, "files": files}
    origin = _origin(source, "adopted", note="caches built by an itl that wrote no record, "
                     "checked against the identity and their fingerprint files")
    original_size = None  # not known from a cache
    old = source / RECORD
    if old.is_file():  # a folder prepared with a record (here or elsewhere): keep what it says
        try:
            rec = json.loads(old.read_text())
            origin, original_size = dict(rec["source"]), rec["original_image_size"]
        except (OSError, ValueError, KeyError, TypeError):
            pass
    if source.resolve() == (top / name).resolve():
        _write_record(source, name, origin, ident.classes, counts, original_size, sizes)
        return top / name
    built = staging / name
    shutil.copytree(source, built)
    _write_record(built, name, origin, ident.classes, counts, original_size, sizes)
    return _install(built, top / name, staging)


def _voc_image_size(f: Path) -> tuple[int, int] | None:
    import xml.etree.ElementTree as ET
    try:
        size = ET.parse(f).getroot().find("size")
        return int(size.find("height").text), int(size.find("width").text)
    except (OSError, ET.ParseError, AttributeError, TypeError, ValueError):
        return None


def _install_voc(ident: VocIdentity, source: Path, unpacked: Path, top: Path, staging: Path,
                 origin: dict) -> Path:
    """Move a VOC-format folder (BCCD) into place once its layout and identity are checked:
    split files and their sizes, every listed annotation parses, its classes, image sizes."""
    from itl import detection
    root = _find(unpacked, "Annotations")
    if root is None or not (root / "JPEGImages").is_dir():
        raise DataError(f"no VOC layout (Annotations/, JPEGImages/) under {unpacked}; "
                        f"{_remedy(ident)}")
    splits = {}
    for split, n in ident.split_sizes.items():
        listing = root / "ImageSets" / "Main" / f"{split}.txt"
        if not listing.is_file():
            raise _mismatch(ident, source, f"{listing.relative_to(root)} is missing")
        splits[split] = listing.read_text().split()
        if len(splits[split]) != n:
            raise _mismatch(ident, source, f"found {len(splits[split])} images in "
                                           f"{listing.relative_to(root)}, expected {n}")
    boxes: dict[str, int] = {}  # class -> boxes over every image listed (once each)
    counted = set()
    for split in splits:
        for a in detection.read_voc(root, split):  # every listed annotation must parse
            if a.image in counted:
                continue
            counted.add(a.image)
            for lab in a.labels:
                boxes[lab] = boxes.get(lab, 0) + 1
            if not (root / "JPEGImages" / f"{a.image}.jpg").is_file():
                raise DataError(f"{root / 'JPEGImages' / (a.image + '.jpg')} is missing; it "
                                f"is listed in ImageSets/Main/{split}.txt")
    _compare_classes(ident, sorted(boxes), source, "its annotations' object names")
    images = sorted({i for s in splits.values() for i in s})
    _compare_image_size(ident, [_voc_image_size(root / "Annotations" / f"{i}.xml") or (0, 0)
                                for i in images], source, "annotated image sizes")
    if staging not in root.parents:  # the user's own folder: copy, never move their data
        shutil.copytree(root, staging / "BCCD")
        root = staging / "BCCD"
    paths.atomic_write_json(root / RECORD, {
        "dataset": ident.name, "source": origin, "classes": sorted(boxes),
        "boxes": dict(sorted(boxes.items())), "images": {s: len(v) for s, v in splits.items()},
        "original_image_size": list(ident.image_size) if ident.image_size else None,
        "itl_version": itl.__version__, "prepared": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
    return _install(root, top / "BCCD", staging)


def load(name: str, split: str, size: int = SIZE) -> ImageSet:
    """A prepared cache, checked against the record beside it and the data set's identity
    (classes, images per class, image shape, byte size, fingerprint; nothing is hashed)."""
    f = cache_path(name, split, size)
    folder = f.parent
    again = _prepare_again(name, folder)
    if not f.is_file():
        what = ("is not prepared" if not folder.is_dir()
                else f"has no {size}-px cache (prepared by an older itl)")
        raise DataError(f"data set {name!r} {what} under {paths.data_dir()} "
                        f"(ITL_DATA): run `itl data prepare {name} --from PATH` "
                        "(a folder of shards with SHA256SUMS, or the original archive)")
    rec = read_record(name)
    entry = rec["sizes"].get(str(size)) or {}
    want = (entry.get("files") or {}).get(f.name)
    st = f.stat()
    if want is None:
        raise DataError(f"{folder / RECORD} records no {f.name}; {again}")
    if st.st_size != want:
        raise DataError(f"data cache {f} has {st.st_size:,} bytes where {folder / RECORD} "
                        f"records {want:,}: changed since it was prepared; {again}")
    fp = folder / fingerprint_file(size)
    if not fp.is_file() or fp.read_text().strip() != entry.get("fingerprint"):
        raise DataError(f"{fp} does not hold the fingerprint {entry.get('fingerprint')} that "
                        f"{folder / RECORD} records; {again}")
    images = _read_cache(str(f.resolve()), st.st_mtime_ns, st.st_size, again)
    _check_cache(images, rec, split, size, f, again)
    return images


@functools.lru_cache(maxsize=4)
def _read_cache(f: str, mtime_ns: int, size: int, again: str) -> ImageSet:
    """One read per cache file and version (Tiny ImageNet's is 1.2 GB): a process that builds
    many manifests or runs reads it once."""
    return data.read_cache(Path(f), again)
