"""Pre-training conditions as data (all of Sections 4-6): `(rule, params, seed) -> manifest`.

A manifest names the training classes (label i is `classes[i]`), maps every kept leaf class to
its training class, and lists the chosen training images (indices into the source's train split).
It is JSON with a sha256 of its content, so the same condition gives the same bytes on every
machine, and a run's config names the manifest by that hash. The trainer never knows why its data
is smaller: `apply` turns a manifest into images and labels 0..C-1.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from itl import paths, rng
from itl.data import ImageSet

FULL_IMAGES_PER_CLASS = 1000  # the paper's unit: ImageNet has ~1000 training images per class


class SubsetError(ValueError):
    """A subset rule that cannot be parsed or applied."""


@dataclass(frozen=True)
class Manifest:
    dataset: str
    rule: str  # e.g. "images-per-class"
    params: dict  # e.g. {"images_per_class": 500} in the paper's units
    seed: int
    classes: list[str]  # training label i is classes[i]
    label_of: dict[str, str]  # leaf class -> training class
    indices: list[int]  # chosen images of the source's train split, ascending
    sha256: str = field(default="")

    def content(self) -> dict:
        d = asdict(self)
        d.pop("sha256")
        return d

    def to_json(self) -> str:
        return json.dumps({**self.content(), "sha256": self.sha256}, sort_keys=True, indent=1)


def _sealed(m: Manifest) -> Manifest:
    digest = hashlib.sha256(json.dumps(m.content(), sort_keys=True).encode()).hexdigest()
    return Manifest(**{**m.content(), "sha256": digest})


def parse_rule(text: str) -> tuple[str, dict]:
    """"full" or "images-per-class=N" (N in the paper's units, 1..1000)."""
    if text == "full":
        return "full", {}
    name, _, value = text.partition("=")
    if name == "images-per-class":
        try:
            n = int(value)
        except ValueError:
            n = 0
        if not 1 <= n <= FULL_IMAGES_PER_CLASS:
            raise SubsetError(f"bad subset {text!r}: images-per-class takes a whole number "
                              f"from 1 to {FULL_IMAGES_PER_CLASS} (the paper's units)")
        return name, {"images_per_class": n}
    raise SubsetError(f"bad subset {text!r}: known rules are full, images-per-class=N")


def per_class_count(paper_images: int, full: int) -> int:
    """The analogue of `paper_images` of the paper's 1000 images per class, for a data set with
    `full` images per class (at least one image)."""
    return max(1, round(full * paper_images / FULL_IMAGES_PER_CLASS))


def _per_class_permutation(y: torch.Tensor, k: int, seed: int) -> torch.Tensor:
    idx = torch.nonzero(y == k).flatten()
    g = rng.generator("images", seed, k)
    return idx[torch.randperm(len(idx), generator=g)]


def build(text: str, source: ImageSet, dataset: str, seed: int) -> Manifest:
    """The manifest of rule `text` over `source` (a train split). Images per class are drawn
    per class from a permutation seeded by (seed, class), so smaller subsets are nested in
    larger ones: 50 images per class are the first 50 of the 125."""
    rule, params = parse_rule(text)
    classes = list(source.classes)
    counts = torch.bincount(source.y, minlength=len(classes))
    chosen = []
    for k in range(len(classes)):
        perm = _per_class_permutation(source.y, k, seed)
        n = len(perm)
        if rule == "images-per-class":
            n = per_class_count(params["images_per_class"], int(counts.max()))
        chosen.append(perm[:n])
    indices = sorted(torch.cat(chosen).tolist())
    m = Manifest(dataset, rule, params, seed, classes, {c: c for c in classes}, indices)
    return _sealed(m)


def apply(m: Manifest, source: ImageSet, chosen_only: bool = True) -> ImageSet:
    """The manifest's images (or, with chosen_only=False, every image of a kept class, as for
    a test split) with training labels 0..C-1."""
    unknown = set(m.label_of) - set(source.classes)
    if unknown:
        raise SubsetError(f"manifest {m.sha256[:12]} names classes not in {m.dataset}: "
                          f"{sorted(unknown)[:5]}")
    lut = torch.full((len(source.classes),), -1, dtype=torch.int64)
    for leaf, merged in m.label_of.items():
        lut[source.classes.index(leaf)] = m.classes.index(merged)
    idx = torch.tensor(m.indices if chosen_only else range(len(source)), dtype=torch.int64)
    y = lut[source.y[idx]]
    keep = y >= 0
    return ImageSet(source.x[idx[keep]], y[keep], tuple(m.classes))


def save(m: Manifest, folder: Path | None = None) -> Path:
    folder = paths.ensure_writable(folder or paths.runs_dir() / "manifests")
    path = folder / f"{m.dataset}-{m.rule}-{m.sha256[:16]}.json"
    if not path.exists():
        paths.atomic_write_text(path, m.to_json() + "\n")
    return path
