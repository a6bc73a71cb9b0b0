"""Real data for the small scale (Tiny ImageNet-200 as the source "ImageNet"; 15-Scene and
CIFAR-10 as stand-ins for the paper's SUN-CLS and PASCAL targets): verify, unpack, cache.

`itl data prepare NAME --from PATH` takes either
- a folder of tar.gz shards with a SHA256SUMS file (`../shared/data`): every shard of NAME is
  checked against its sum before anything is unpacked; or
- the original public distribution: Tiny ImageNet's `tiny-imagenet-200.zip`, CIFAR-10's
  `cifar-10-python.tar.gz` (pickled batches), 15-Scene as a zip/tar of one folder per class
  (the standard split is drawn: 100 training images per class, seeded, the rest test); or
- a folder already in one of those layouts.
It then decodes every image once into uint8 tensors (`cache-<size>-<split>.pt`) that training
reads. Everything is built in a staging folder under ITL_DATA and renamed into place only when
complete, so a wrong checksum, a truncated archive, a missing split or an unreadable image gives
one error naming it and leaves nothing that looks prepared. Nothing here touches the network.
"""
from __future__ import annotations

import functools
import hashlib
import os
import pickle
import shutil
import tarfile
import tempfile
import zipfile
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

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
SCENE_TRAIN_PER_CLASS = 100  # 15-Scene's standard protocol (Lazebnik et al. 2006)


def cache_path(name: str, split: str, size: int = SIZE) -> Path:
    return paths.data_dir() / name / f"cache-{size}-{split}.pt"


def fingerprint_file(size: int = SIZE) -> str:
    """The file holding the digest of a data set's caches at `size` px (the 64-px one keeps
    its first name, so runs keyed on it stay valid)."""
    return "fingerprint" if size == SIZE else f"fingerprint-{size}"


# ---------------------------------------------------------------- unpacking


def _sha256(f: Path) -> str:
    h = hashlib.sha256()
    with f.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def verified_shards(folder: Path, name: str) -> list[Path]:
    """The shards of `name` listed in folder/SHA256SUMS, each checked against its sum."""
    sums = folder / "SHA256SUMS"
    shards = []
    for line in sums.read_text().splitlines():
        digest, _, rel = line.strip().partition("  ")
        rel = rel.removeprefix("./")
        if rel.split("/")[0] != DATASETS[name]:
            continue
        f = folder / rel
        if not f.is_file():
            raise DataError(f"shard {f} listed in {sums} is missing")
        if _sha256(f) != digest:
            raise DataError(f"wrong checksum for {f}: expected {digest} from {sums}")
        shards.append(f)
    if not shards:
        raise DataError(f"{sums} lists no shard of {name} (expected ./{DATASETS[name]}/...)")
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


def _decode(f: Path, size: int) -> torch.Tensor:
    img = data.decode_rgb(f)
    if img.shape[-2:] != (size, size):
        img = F.interpolate(img[None].float(), size=(size, size), mode="bilinear",
                            antialias=True, align_corners=False)[0].round().clamp(0, 255)
        img = img.to(torch.uint8)
    return img


def _images(files: list[Path], labels: list[int], classes: list[str], size: int,
            what: str) -> ImageSet:
    if not files:
        raise DataError(f"no images found for {what}")
    xs = [_decode(f, size) for f in tqdm(files, desc=what, unit="img", leave=False,
                                         mininterval=2.0)]
    return ImageSet(torch.stack(xs), torch.tensor(labels), tuple(classes))


def _tiny(root: Path, size: int) -> dict[str, ImageSet]:
    wnids = sorted((root / "wnids.txt").read_text().split())
    if not (root / "train").is_dir() or not (root / "val" / "val_annotations.txt").is_file():
        raise DataError(f"{root}: Tiny ImageNet needs train/ and val/val_annotations.txt")
    files, ys = [], []
    for k, w in enumerate(wnids):
        got = sorted((root / "train" / w / "images").glob("*.JPEG"))
        if not got:
            raise DataError(f"{root}/train/{w}/images holds no images")
        files += got
        ys += [k] * len(got)
    out = {"train": _images(files, ys, wnids, size, "tiny-imagenet-200 train")}
    index = {w: k for k, w in enumerate(wnids)}
    files, ys = [], []
    for line in (root / "val" / "val_annotations.txt").read_text().splitlines():
        name, wnid = line.split("\t")[:2]
        files.append(root / "val" / "images" / name)
        ys.append(index[wnid])
    out["test"] = _images(files, ys, wnids, size, "tiny-imagenet-200 val")
    return out


def _class_folders(root: Path, size: int, what: str) -> ImageSet:
    classes = sorted(p.name for p in root.iterdir() if p.is_dir())
    files, ys = [], []
    for k, c in enumerate(classes):
        got = sorted(f for f in (root / c).iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
        files += got
        ys += [k] * len(got)
    return _images(files, ys, classes, size, what)


def _split_folders(root: Path, name: str, size: int) -> dict[str, ImageSet]:
    for split in ("train", "test"):
        if not (root / split).is_dir():
            raise DataError(f"{root}: the {split}/ split of {name} is missing")
    return {s: _class_folders(root / s, size, f"{name} {s}") for s in ("train", "test")}


def _scene_original(root: Path, size: int,
                    per_class: int = SCENE_TRAIN_PER_CLASS) -> dict[str, ImageSet]:
    """15-Scene as distributed (one folder per class): the standard split, `per_class` training
    images per class drawn with a fixed seed, the rest for testing."""
    everything = _class_folders(root, size, "15-scene")
    train_idx, test_idx = [], []
    for k in range(len(everything.classes)):
        idx = torch.nonzero(everything.y == k).flatten()
        if len(idx) <= per_class:
            raise DataError(f"15-scene class {everything.classes[k]} has {len(idx)} images: "
                            f"too few for {per_class} training images and a test split")
        perm = idx[torch.randperm(len(idx), generator=rng.generator("15-scene split", k))]
        train_idx += perm[:per_class].tolist()
        test_idx += perm[per_class:].tolist()
    pick = lambda i: ImageSet(everything.x[sorted(i)], everything.y[sorted(i)],  # noqa: E731
                              everything.classes)
    return {"train": pick(train_idx), "test": pick(test_idx)}


def _cifar_batches(root: Path, size: int) -> dict[str, ImageSet]:
    """CIFAR-10's python distribution: pickled batches of 32x32 images."""
    def load(files: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        xs, ys = [], []
        for f in files:
            try:
                with (root / f).open("rb") as fh:
                    d = pickle.load(fh, encoding="bytes")
            except (OSError, pickle.UnpicklingError, EOFError) as e:
                raise DataError(f"unreadable CIFAR-10 batch {root / f}: {e}") from e
            xs.append(torch.as_tensor(d[b"data"]).reshape(-1, 3, 32, 32))
            ys.append(torch.as_tensor(d[b"labels"]))
        x = torch.cat(xs)
        if size != 32:
            x = F.interpolate(x.float(), size=(size, size), mode="bilinear",
                              align_corners=False).round().clamp(0, 255).to(torch.uint8)
        return x, torch.cat(ys)

    with (root / "batches.meta").open("rb") as fh:
        names = [n.decode() for n in pickle.load(fh, encoding="bytes")[b"label_names"]]
    tr = load([f"data_batch_{i}" for i in range(1, 6)])
    te = load(["test_batch"])
    return {"train": ImageSet(*tr, tuple(names)), "test": ImageSet(*te, tuple(names))}


IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


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


def _read(name: str, unpacked: Path, size: int) -> dict[str, ImageSet]:
    if name == "tiny-imagenet-200":
        root = _find(unpacked, "wnids.txt")
        if root is None:
            raise DataError(f"no Tiny ImageNet layout (wnids.txt) under {unpacked}")
        return _tiny(root, size)
    if name == "cifar-10":
        batches = _find(unpacked, "batches.meta")
        if batches is not None:
            return _cifar_batches(batches, size)
    root, layout = _layout_root(unpacked)
    if layout == "split":
        return _split_folders(root, name, size)
    if name == "15-scene":
        return _scene_original(root, size)
    raise DataError(f"{root}: {name} needs train/ and test/ folders")


# ---------------------------------------------------------------- the command


def prepare(name: str, source: Path, size: int = SIZE) -> Path:
    """Verify/unpack `source` and build the uint8 caches of `name`; returns its folder."""
    if name not in DATASETS:
        raise DataError(f"unknown data set {name!r} to prepare: choose one of "
                        f"{', '.join(DATASETS)}")
    source = Path(source)
    if not source.exists():
        raise DataError(f"{source} does not exist")
    top = paths.ensure_writable(paths.data_dir())
    staging = Path(tempfile.mkdtemp(prefix=f".staging-{name}-", dir=top))
    try:
        unpacked = staging / "unpacked"
        unpacked.mkdir()
        if source.is_dir() and (source / "SHA256SUMS").is_file():
            for shard in verified_shards(source, name):
                _unpack(shard, unpacked)
        elif source.is_file():
            _unpack(source, unpacked)
        else:
            unpacked = source  # a folder already laid out
        if name == "bccd":
            return _install_voc(unpacked, top, staging)
        built = staging / name
        built.mkdir()
        for px in dict.fromkeys((size,) + SIZES):
            sets = _read(name, unpacked, px)
            for split, images in sets.items():
                torch.save({"x": images.x, "y": images.y, "classes": list(images.classes)},
                           built / f"cache-{px}-{split}.pt")
            digest = hashlib.sha256()
            for split in sorted(sets):
                digest.update(_sha256(built / f"cache-{px}-{split}.pt").encode())
            (built / fingerprint_file(px)).write_text(f"{name}-{digest.hexdigest()[:16]}\n")
        if name == "tiny-imagenet-200":
            (built / "wnids.txt").write_text("\n".join(sets["train"].classes) + "\n")
        final = top / name
        old = staging / "old"
        if final.exists():
            os.replace(final, old)
        os.replace(built, final)  # the one step that makes it look prepared
        return final
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _install_voc(unpacked: Path, top: Path, staging: Path) -> Path:
    """Move a VOC-format folder (BCCD) into place once its layout is complete."""
    from itl import detection
    root = _find(unpacked, "Annotations")
    if root is None or not (root / "JPEGImages").is_dir():
        raise DataError(f"no VOC layout (Annotations/, JPEGImages/) under {unpacked}")
    for split in ("train", "test"):
        detection.read_voc(root, split)  # every listed annotation must parse
    final = top / "BCCD"
    if final.exists():
        os.replace(final, staging / "old")
    if root == unpacked:  # a folder laid out already: copy, never move the user's data
        shutil.copytree(root, staging / "BCCD")
        root = staging / "BCCD"
    os.replace(root, final)
    return final


def load(name: str, split: str, size: int = SIZE) -> ImageSet:
    f = cache_path(name, split, size)
    if not f.is_file():
        what = ("is not prepared" if not (paths.data_dir() / name).is_dir()
                else f"has no {size}-px cache (prepared by an older itl)")
        raise DataError(f"data set {name!r} {what} under {paths.data_dir()} "
                        f"(ITL_DATA): run `itl data prepare {name} --from PATH` "
                        "(a folder of shards with SHA256SUMS, or the original archive)")
    st = f.stat()
    return _read_cache(str(f.resolve()), st.st_mtime_ns, st.st_size)


@functools.lru_cache(maxsize=4)
def _read_cache(f: str, mtime_ns: int, size: int) -> ImageSet:
    """One read per cache file and version (Tiny ImageNet's is 1.2 GB): a process that builds
    many manifests or runs reads it once."""
    return data.read_cache(Path(f), "prepare it again")
