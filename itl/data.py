"""Images for pre-training and transfer, held as uint8 tensors (paper Section 3: ImageNet source,
PASCAL / SUN targets; here at each scale's stand-ins).

A data set is an `ImageSet` per split: uint8 images N x 3 x H x W, int64 labels, and the class
wnids (or names) the labels index. Sets are cached under `ITL_DATA`, so training never decodes an
image. Augmentation (random crop with padding, or a smaller random crop as Caffe's crop_size;
horizontal flip) runs on whole batches, drawn from an explicit generator.
"""
from __future__ import annotations

import hashlib
import json
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
import torchvision

from itl import labels, paths, smoke, wordnet


class DataError(RuntimeError):
    """A data set is missing, corrupt or unknown."""


@dataclass(frozen=True)
class ImageSet:
    x: torch.Tensor  # uint8, N x 3 x H x W
    y: torch.Tensor  # int64, N
    classes: tuple[str, ...]  # y indexes this

    def __len__(self) -> int:
        return len(self.y)


# torchvision 0.29 announces that its JPEG/PNG codecs will move to TorchCodec; they work, and
# itl decodes each image once, so the notice is noise here.
warnings.filterwarnings("ignore", message="The image decoding and encoding capabilities",
                        category=DeprecationWarning)


def decode_rgb(f: Path) -> torch.Tensor:
    """An image file as uint8 RGB (3 x H x W); an unreadable file is a DataError naming it."""
    try:
        return torchvision.io.decode_image(str(f), mode=torchvision.io.ImageReadMode.RGB)
    except Exception as e:  # noqa: BLE001 - any decoder failure is an unreadable image
        raise DataError(f"unreadable image {f}: {e}") from e


def read_cache(f: Path, remedy: str) -> ImageSet:
    """An ImageSet saved by itl (torch file of x, y, classes); unreadable or of another shape
    (not uint8 N x 3 x H x W images with N int64 labels and a list of class names): one
    DataError naming the file and `remedy`."""
    try:
        blob = torch.load(f, weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unreadable cache is the same problem
        raise DataError(f"corrupt data cache {f} ({e}); {remedy}") from e
    x, y, classes = (blob.get(k) if isinstance(blob, dict) else None
                     for k in ("x", "y", "classes"))
    if not (isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor)
            and isinstance(classes, (list, tuple)) and all(isinstance(c, str) for c in classes)
            and x.dtype == torch.uint8 and x.ndim == 4 and x.shape[1] == 3
            and y.dtype == torch.int64 and y.ndim == 1 and len(y) == len(x)):
        what = (f"{x.dtype} images of {tuple(x.shape)} and {y.dtype} labels of {tuple(y.shape)}"
                if isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor)
                else f"keys {sorted(blob) if isinstance(blob, dict) else type(blob).__name__}")
        raise DataError(f"data cache {f} is not an itl image cache (uint8 N x 3 x H x W images, "
                        f"N int64 labels, class names): it holds {what}; {remedy}")
    return ImageSet(x, y, tuple(classes))


def relabel(images: ImageSet, label_of: dict[str, str], classes: list[str],
            indices: list[int] | None = None) -> ImageSet:
    """The images (all, or those at `indices`) whose class is in `label_of`, labelled by the
    position of label_of[class] in `classes`."""
    lut = torch.full((len(images.classes),), -1, dtype=torch.int64)
    for leaf, merged in label_of.items():
        lut[images.classes.index(leaf)] = classes.index(merged)
    idx = torch.arange(len(images)) if indices is None else torch.tensor(indices,
                                                                          dtype=torch.int64)
    y = lut[images.y[idx]]
    keep = y >= 0
    return ImageSet(images.x[idx[keep]], y[keep], tuple(classes))


SMOKE_SPECS = {s.name: s for s in (smoke.SOURCE, smoke.TARGET, smoke.EXTRA)}
REAL = {  # prepared by `itl data prepare` (small scale); the paper scale's have no loader yet
    "tiny-imagenet-200", "15-scene", "cifar-10", "imagenet-1k", "voc2007", "sun397",
}


def spec_hash(obj: object) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]


def fingerprint(name: str, size: int | None = None) -> str:
    """What identifies a data set's content (at `size` px; None: its own size) in a run's
    config."""
    if "+" in name:
        return "+".join(fingerprint(n, size) for n in name.split("+"))
    if ":" in name:
        base, _, view = name.partition(":")
        return f"{fingerprint(base, size)}:{view}"
    if name in SMOKE_SPECS:
        _smoke_size(SMOKE_SPECS[name], size)
        return f"smoke-{spec_hash(asdict(SMOKE_SPECS[name]))}"
    if name in REAL:  # a prepared cache: the digest its preparation wrote
        from itl import prepare
        f = paths.data_dir() / name / prepare.fingerprint_file(size or prepare.SIZE)
        return f.read_text().strip() if f.exists() else f"{name}-unprepared"
    return name


def _smoke_size(spec: smoke.SmokeSpec, size: int | None) -> None:
    if size is not None and size != spec.size:
        raise DataError(f"generated data set {spec.name} exists at {spec.size} px only, "
                        f"not {size}")


def _load_smoke(spec: smoke.SmokeSpec, split: str) -> ImageSet:
    cache = paths.data_dir() / "smoke" / f"{spec.name}-{spec_hash(asdict(spec))}-{split}.pt"
    if cache.exists():
        return read_cache(cache, "delete it to regenerate")
    x, y = smoke.generate(spec, split, wordnet.load(), labels.imagenet1k_wnids())
    paths.ensure_writable(cache.parent)
    paths.atomic_torch_save(cache, {"x": x, "y": y, "classes": list(spec.classes)})
    return ImageSet(x, y, spec.classes)


def concat(sets: list[ImageSet]) -> ImageSet:
    """One image set holding several, their class lists one after the other."""
    offsets = [0]
    for s in sets[:-1]:
        offsets.append(offsets[-1] + len(s.classes))
    return ImageSet(torch.cat([s.x for s in sets]),
                    torch.cat([s.y + o for s, o in zip(sets, offsets)]),
                    tuple(c for s in sets for c in s.classes))


def load(name: str, split: str, size: int | None = None) -> ImageSet:
    """Split `split` ("train" or "test") of data set `name` ("a+b": both, classes of a first),
    at `size` px (None: the data set's own; prepared real data has 64- and 32-px caches)."""
    if split not in ("train", "test"):
        raise DataError(f"unknown split {split!r} of {name}: choose train or test")
    if "+" in name:
        return concat([load(n, split, size) for n in name.split("+")])
    if ":" in name:  # a class view: name:main / name:extra (labels.view_leaves)
        base, _, view = name.partition(":")
        full = load(base, split, size)
        keep = labels.view_leaves(base, view, list(full.classes))
        return relabel(full, {c: c for c in keep}, keep)
    if name in SMOKE_SPECS:
        _smoke_size(SMOKE_SPECS[name], size)
        return _load_smoke(SMOKE_SPECS[name], split)
    if name in REAL:
        from itl import prepare  # real data: the uint8 caches `itl data prepare` builds
        if name not in prepare.DATASETS:
            raise DataError(f"data set {name!r} (paper scale) has no loader in itl yet: use "
                            "--scale smoke or small")
        return prepare.load(name, split, size or prepare.SIZE)
    raise DataError(f"unknown data set {name!r}: known are "
                    f"{', '.join(sorted(SMOKE_SPECS) + sorted(REAL))}")


# ---------------------------------------------------------------- batches

MEAN, STD = 0.45, 0.25  # one normalisation for every scale's uint8 images


def to_input(x: torch.Tensor) -> torch.Tensor:
    """uint8 images -> normalised float input."""
    return (x.float() / 255 - MEAN) / STD


def crop_room(h: int, w: int, pad: int, crop: int | None) -> tuple[int, int] | None:
    """The largest crop offsets (rows, columns) of a random `crop` x `crop` crop from h x w
    images padded by `pad` (Caffe's crop_size: offsets 0..H-crop); None for no crop (a crop of
    the original size from the padded image, offsets 0..2 pad)."""
    if crop is None:
        return None
    if not 0 < crop <= min(h, w) + 2 * pad:
        raise ValueError(f"crop {crop} px does not fit the {h}x{w} px images (padded by {pad}): "
                         f"choose a crop between 1 and {min(h, w) + 2 * pad}, or None")
    return h + 2 * pad - crop, w + 2 * pad - crop


def augment_params(n: int, pad: int, g: torch.Generator,
                   room: tuple[int, int] | None = None) -> tuple[torch.Tensor, ...]:
    """Crop offsets (rows, columns) and flips for n images, drawn from `g` (on the CPU, so the
    same draws on every device). Offsets lie in 0..room (crop_room; None: 0..2 pad)."""
    ry, rx = (2 * pad, 2 * pad) if room is None else room
    oy = torch.randint(0, ry + 1, (n,), generator=g)
    ox = torch.randint(0, rx + 1, (n,), generator=g)
    flip = torch.rand(n, generator=g) < 0.5
    return oy, ox, flip


def apply_augment(x: torch.Tensor, pad: int, oy: torch.Tensor, ox: torch.Tensor,
                  flip: torch.Tensor, crop: int | None = None) -> torch.Tensor:
    """Random crop (of the original size, or `crop` px square) from a zero-padded image, and a
    horizontal flip, for a whole uint8 batch at once on its own device (no per-image Python)."""
    n, c, h, w = x.shape
    oy, ox, flip = oy.to(x.device), ox.to(x.device), flip.to(x.device)
    if pad or crop is not None:
        ch, cw = (h, w) if crop is None else (crop, crop)
        xp = F.pad(x, (pad, pad, pad, pad)) if pad else x
        ar_h, ar_w = torch.arange(ch, device=x.device), torch.arange(cw, device=x.device)
        rows = (oy[:, None] + ar_h)[:, None, :, None]  # n,1,ch,1
        cols = (ox[:, None] + ar_w)[:, None, None, :]  # n,1,1,cw
        x = xp[torch.arange(n, device=x.device)[:, None, None, None],
               torch.arange(c, device=x.device)[None, :, None, None], rows, cols]
    return torch.where(flip[:, None, None, None], x.flip(3), x)


def augment(x: torch.Tensor, pad: int, g: torch.Generator, crop: int | None = None
            ) -> torch.Tensor:
    room = crop_room(x.shape[-2], x.shape[-1], pad, crop)
    return apply_augment(x, pad, *augment_params(len(x), pad, g, room), crop=crop)


def center_crop(x: torch.Tensor, crop: int | None) -> torch.Tensor:
    """The central `crop` x `crop` pixels of a batch, as Caffe's TEST phase takes them (offset
    (H - crop) // 2); the batch itself for None."""
    if crop is None:
        return x
    h, w = x.shape[-2:]
    crop_room(h, w, 0, crop)
    top, left = (h - crop) // 2, (w - crop) // 2
    return x[..., top:top + crop, left:left + crop]
