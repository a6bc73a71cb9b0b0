"""ImageNet-1k at 64 px: the official downsampled release (Chrabaszcz, Loshchilov & Hutter 2017,
"A Downsampled Variant of ImageNet as an Alternative to the CIFAR datasets", arXiv:1707.08819),
the source of the `imagenet64` scale (paper Section 3's ImageNet-1k, all 1000 classes and all
1,281,167 training images, at 64 x 64), so the paper's own label sets run on one GPU.

**The release, as itl reads it** (facts and their sources):
- Files (image-net.org, "Download downsampled images"): `Imagenet64_train_part1.zip` and
  `Imagenet64_train_part2.zip` holding `train_data_batch_1` ... `train_data_batch_10` (part 1:
  1-5, part 2: 6-10), and `Imagenet64_val.zip` holding `val_data`; the npz variant
  (`*_npz.zip`) holds the same batches as `train_data_batch_K.npz` / `val_data.npz`. itl reads
  either, from the zips themselves (nothing is extracted) or from the unpacked files.
- A batch is a dict with `data` (uint8, N x 12288: the R, then the G, then the B plane of a 64 x 64
  image, each flattened row by row, so `reshape(N, 3, 64, 64)` gives the image), `labels` (N ints,
  1..1000) and, in training batches, `mean`: PatrykChrabaszcz/Imagenet32_Scripts
  `image2numpy_imagenet_train.py` / `image2numpy_imagenet_val.py` (`np.array(list(r) + list(g) +
  list(b))`, `pickle.dump({'data', 'labels', 'mean'})`, ten training files, one `val_data`).
- Labels number the classes of `map_clsloc.txt` (ILSVRC's class list, lines "n02119789 1
  kit_fox"): the same scripts' `utils.get_label_dict` maps each wnid to the number on its line,
  and each image's label is its wnid's number. itl maps every label to its WordNet id through
  that file and stores the classes in ImageNet-1k's standard (sorted wnid) order, the order of
  `itl.labels.imagenet1k_wnids`. The file comes with ILSVRC's devkit
  (`ILSVRC2015_devkit/devkit/data/map_clsloc.txt`); whether the zips carry it was not
  verifiable here, so itl looks for it in the zips and beside them, and names it when absent.
- Sizes: 1,281,167 training images (all of ILSVRC-2012's; the scripts resize every training
  image), 50,000 validation images, 50 per class. ILSVRC-2012 has 732 to 1,300 training images per
  class; its per-class counts are not carried by itl, so the training split is checked by total
  and range, and the counts found are recorded (`source.json`) and checked on every read.

**The cache.** Prepared into itl's usual uint8 caches per split and size (`cache-64-train.pt`,
1,281,167 x 12,288 bytes = 15.7 GB; `cache-32-train.pt`, 3.9 GB): one format, so reading,
records, fingerprints and the run store work as for every other set. Training holds the split it
reads in RAM (a machine for this scale needs about 48 GB: the 64-px cache and one subset of it);
memory-mapping was not chosen because every condition draws images from the whole split in a
random order, so a map would read the file in random 12 KB pieces for every batch. Preparing holds
the 64-px split once (batches are copied into one pre-sized tensor) and resizes in chunks.
"""
from __future__ import annotations

import io
import json
import pickle
import re
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from itl import labels, paths
from itl.datasets import records
from itl.datasets.cached import CachedSet
from itl.datasets.entry import CLASSIFICATION, IMAGES, TOP1, Archive
from itl.datasets.identity import mismatch, remedy
from itl.datasets.images import DataError
from itl.datasets.layouts import Split

SIDE = 64  # px of the release's images
ROW = 3 * SIDE * SIDE  # bytes of one image in a batch's `data`
CLASS_LIST = "map_clsloc.txt"
TRAIN, VAL = "train_data_batch_", "val_data"
_BATCH = re.compile(r"^(train_data_batch_(\d+)|val_data)(\.npz)?$")

Opener = Callable[[], io.BufferedIOBase]  # opens one member of the release for reading


def _members(root: Path) -> dict[str, tuple[str, Opener]]:
    """Every batch and class list under `root`, in zips or unpacked: name -> (where, opener)."""
    found: dict[str, tuple[str, Opener]] = {}

    def add(name: str, where: str, opener: Opener) -> None:
        key = name.removesuffix(".npz")
        if key in found:
            raise DataError(f"{key} is in both {found[key][0]} and {where}: give one copy of "
                            "the release")
        found[key] = (where, opener)

    for f in sorted(p for p in root.rglob("*") if p.is_file()):
        if f.suffix == ".zip":
            try:
                with zipfile.ZipFile(f) as z:
                    names = [i.filename for i in z.infolist() if not i.is_dir()]
            except (zipfile.BadZipFile, OSError) as e:
                raise DataError(f"cannot read {f}: {e} (truncated or not a zip? download it "
                                "again)") from e
            for n in names:
                base = n.rsplit("/", 1)[-1]
                if _BATCH.match(base) or base == CLASS_LIST:
                    add(base, f"{f.name}:{n}",
                        lambda f=f, n=n: _ZipMember(f, n))
        elif _BATCH.match(f.name) or f.name == CLASS_LIST:
            add(f.name, str(f), lambda f=f: f.open("rb"))
    return found


class _ZipMember(io.BytesIO):
    """One member of a zip, read whole (a corrupt or truncated member fails its CRC here)."""

    def __init__(self, archive: Path, name: str):
        try:
            with zipfile.ZipFile(archive) as z, z.open(name) as m:
                super().__init__(m.read())
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
            raise DataError(f"cannot read {name} from {archive}: {e} (a truncated or corrupt "
                            "zip: download it again)") from e


def class_list(where: str, text: str, want: tuple[str, ...]) -> dict[int, str]:
    """`map_clsloc.txt` read: label number -> wnid, checked to number exactly the wnids of
    `want` 1..len(want)."""
    out: dict[int, str] = {}
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) < 2 or not re.fullmatch(r"n\d{8}", parts[0]) or not parts[1].isdigit():
            raise DataError(f"{where} line {n} is not 'WNID NUMBER NAME' (as 'n02119789 1 "
                            f"kit_fox'): {line[:80]!r}; use the ILSVRC devkit's {CLASS_LIST}")
        if int(parts[1]) in out:
            raise DataError(f"{where} numbers two classes {parts[1]}; use the ILSVRC devkit's "
                            f"{CLASS_LIST}")
        out[int(parts[1])] = parts[0]
    if sorted(out) != list(range(1, len(want) + 1)) or set(out.values()) != set(want):
        missing = sorted(set(want) - set(out.values()))
        extra = sorted(set(out.values()) - set(want))
        raise DataError(f"{where} lists {len(out)} classes numbered {min(out, default=0)}.."
                        f"{max(out, default=0)}, not the {len(want)} ImageNet-1k classes "
                        f"numbered 1..{len(want)} (missing {missing[:3]}, not ImageNet-1k "
                        f"{extra[:3]}); use the ILSVRC devkit's {CLASS_LIST}")
    return out


def read_batch(where: str, blob: io.BufferedIOBase) -> tuple[torch.Tensor, torch.Tensor]:
    """One batch of the release (npz or pickle) as uint8 N x 3 x 64 x 64 images and its labels
    as they are (1..1000)."""
    try:
        head = blob.read(4)
        blob.seek(0)
        if head.startswith(b"PK"):  # an npz is a zip of .npy files
            with np.load(blob, allow_pickle=False) as z:
                d = {k: z[k] for k in ("data", "labels") if k in z.files}
        else:  # the pickled variant, as the release's scripts wrote it (trust only its files)
            d = pickle.load(blob, encoding="latin1")
        x, y = np.asarray(d["data"]), np.asarray(d["labels"])
    except Exception as e:  # noqa: BLE001 - any unreadable batch is the same problem
        raise DataError(f"{where} is not a batch of the 64-px release (a dict of data and "
                        f"labels): {e!r}") from e
    if x.dtype != np.uint8 or x.ndim != 2 or x.shape[1] != ROW or y.shape != (len(x),) or \
            not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"{where} holds {x.dtype} data of shape {x.shape} and labels of shape "
                        f"{y.shape}, not uint8 N x {ROW} (3 x {SIDE} x {SIDE}, channel-major) "
                        f"with N labels: not the 64-px release (Imagenet32 and Imagenet16 rows "
                        f"are {3 * 32 * 32} and {3 * 16 * 16} bytes)")
    return torch.from_numpy(x.reshape(-1, 3, SIDE, SIDE)), torch.from_numpy(y.astype(np.int64))


@dataclass(frozen=True, kw_only=True)
class ImageNet64(CachedSet):
    """The downsampled release; `per_class[split]` None: the count per class is checked by total
    (`images`) and range (`per_class_range`), and the counts found are recorded."""
    images: dict[str, int]  # split -> images in all
    per_class_range: dict[str, tuple[int, int]]  # split -> (fewest, most) images of a class
    train_batches: int = 10  # train_data_batch_1 .. _10

    def counts(self, split: str) -> tuple[int, ...]:
        if self.per_class[split] is not None:
            return super().counts(split)
        f = paths.data_dir() / self.name / records.RECORD
        try:  # as found when it was prepared (checked then by total and range)
            return tuple(json.loads(f.read_text())["images"][split])
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise DataError(f"{f} is missing or unreadable, and nothing else says how many "
                            f"{split} images each class of {self.name} has; "
                            f"{remedy(self)}") from e

    def read(self, unpacked: Path, source: Path) -> dict[str, Split]:
        found = _members(unpacked)
        if CLASS_LIST not in found:
            raise DataError(f"no {CLASS_LIST} in or beside the zips in {source}: the release's "
                            f"labels 1..1000 number its lines; put the ILSVRC devkit's "
                            f"{CLASS_LIST} (lines 'n02119789 1 kit_fox') beside the zips")
        where, opener = found[CLASS_LIST]
        with opener() as f:
            number = class_list(where, f.read().decode("utf-8", "replace"), self.classes)
        lut = torch.full((len(number) + 1,), -1, dtype=torch.int64)
        for k, wnid in number.items():
            lut[k] = self.classes.index(wnid)
        want = [f"{TRAIN}{i}" for i in range(1, self.train_batches + 1)]
        missing = [n for n in want + [VAL] if n not in found]
        if missing:
            raise DataError(f"{source} lacks {', '.join(missing)} of the 64-px release: it "
                            f"expects {', '.join(a.name for a in self.archives)} (or their "
                            f"unpacked files) and {CLASS_LIST}")
        stray = sorted(n for n in found if n.startswith(TRAIN) and n not in want)
        if stray:
            raise DataError(f"{source} holds {', '.join(stray)} beyond the release's "
                            f"{self.train_batches} training batches")
        return {"train": self._split("train", [found[n] for n in want], lut, source),
                "test": self._split("test", [found[VAL]], lut, source)}

    def _split(self, split: str, parts: list[tuple[str, Opener]], lut: torch.Tensor,
               source: Path) -> Split:
        """The batches of one split copied into one tensor sized by the entry's count."""
        total = self.images[split]
        x = torch.empty((total, 3, SIDE, SIDE), dtype=torch.uint8)
        y = torch.empty((total,), dtype=torch.int64)
        at = 0
        for where, opener in parts:
            with opener() as f:
                bx, by = read_batch(where, f)
            if len(by) and (by.min() < 1 or by.max() >= len(lut)):
                raise DataError(f"{where} has labels outside 1..{len(lut) - 1}, the numbers of "
                                f"{CLASS_LIST}")
            if at + len(by) > total:
                raise mismatch(self, source, f"more than {total:,} {split} images")
            x[at:at + len(by)], y[at:at + len(by)] = bx, lut[by]
            at += len(by)
        if at != total:
            raise mismatch(self, source, f"found {at:,} {split} images, expected {total:,}")
        part = Split(self.classes, y, x=x)
        lo, hi = self.per_class_range[split]
        counts = part.counts()
        bad = [(c, n) for c, n in zip(self.classes, counts) if not lo <= n <= hi]
        if bad:
            raise mismatch(self, source, f"{bad[0][0]} has {bad[0][1]:,} {split} images, "
                                         f"outside {lo:,}..{hi:,}")
        return part

    def index(self, unpacked: Path, source: Path) -> dict[str, Split]:
        """The splits, checked against the entry: classes through the class list, totals,
        per-class ranges, and exact counts where the entry has them."""
        index = self.read(unpacked, source)
        for split, part in index.items():
            if self.per_class[split] is not None and tuple(part.counts()) != self.counts(split):
                raise mismatch(self, source, f"{split} images per class differ from "
                                             f"{self.per_class[split]} each")
        return index


IMAGENET64 = ImageNet64(
    name="imagenet64", kind=CLASSIFICATION, metric=TOP1,
    classes=tuple(labels.imagenet1k_wnids()), class_ids="wnid",
    per_class={"train": None, "test": 50},  # ILSVRC-2012's 50 validation images per class
    images={"train": 1_281_167, "test": 50_000},
    per_class_range={"train": (732, 1300), "test": (50, 50)},
    image_size=(SIDE, SIDE),
    per_class_unit=IMAGES,  # ImageNet-1k itself: the paper's 500 images per class are 500
    test_in_train=None,  # not measured (no copy here): train and test are not compared
    archives=(Archive("Imagenet64_train_part1.zip"), Archive("Imagenet64_train_part2.zip"),
              Archive("Imagenet64_val.zip")),  # image-net.org publishes no checksums for them
    fix=(f"a folder holding Imagenet64_train_part1.zip, Imagenet64_train_part2.zip, "
         f"Imagenet64_val.zip (image-net.org's downsampled ImageNet 64x64, or their _npz "
         f"variants) and the ILSVRC devkit's {CLASS_LIST}"))
ENTRIES = (IMAGENET64,)
