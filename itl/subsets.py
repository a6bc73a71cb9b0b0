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

from itl import datasets, labels, paths, rng, wordnet
from itl import data
from itl.datasets.entry import IMAGES
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


RULES = ("full", "images-per-class=N", "classes=N", "classes=N:TARGET", "labels=SCHEME:K", "without=TARGET",
         "split=random|minimal:a|b", "budget=CxN", "budget=CxN:TARGET", "extra=K", "holdout=K")


def _int(text: str, rule: str, lo: int, hi: int) -> int:
    try:
        n = int(text)
    except ValueError:
        n = lo - 1
    if not lo <= n <= hi:
        raise SubsetError(f"bad subset {rule!r}: expected a whole number from {lo} to {hi}")
    return n


def parse_rule(text: str) -> tuple[str, dict]:
    """A rule and its parameters. N and C are in the paper's units (of 1000 classes, of 1000
    images per class); K is a class count of the data set's own hierarchy level."""
    rule, params = _parse(text)
    # one condition, one name: the same data under another rule is the same run
    if rule == "budget" and params["classes"] == labels.IMAGENET_CLASSES:
        rule, params = "images-per-class", {"images_per_class": params["images_per_class"]}
    if rule == "budget" and params["images_per_class"] == FULL_IMAGES_PER_CLASS:
        rule, params = "classes", {k: v for k, v in params.items() if k != "images_per_class"}
    if (rule == "images-per-class" and params["images_per_class"] == FULL_IMAGES_PER_CLASS
            or rule == "classes" and params["classes"] == labels.IMAGENET_CLASSES):
        rule, params = "full", {}
    return rule, params


def _stratify(text: str, target: str) -> dict:
    if target and target not in labels.TARGET_SYNSETS:
        raise SubsetError(f"bad subset {text!r}: a class draw is stratified by one of "
                          f"{', '.join(labels.TARGET_SYNSETS)}")
    return {"stratify": target} if target else {}


def _parse(text: str) -> tuple[str, dict]:
    if text == "full":
        return "full", {}
    name, _, value = text.partition("=")
    full = FULL_IMAGES_PER_CLASS
    if name == "images-per-class":
        return name, {"images_per_class": _int(value, text, 1, full)}
    if name == "classes":  # N, or N:TARGET (drawn stratified by TARGET's overlap)
        value, _, target = value.partition(":")
        return name, {"classes": _int(value, text, 2, labels.IMAGENET_CLASSES),
                      **_stratify(text, target)}
    if name == "labels":
        scheme, _, k = value.partition(":")
        if scheme not in wordnet.SCHEMES:
            raise SubsetError(f"bad subset {text!r}: scheme must be one of "
                              f"{', '.join(wordnet.SCHEMES)}")
        return name, {"scheme": scheme, "classes": _int(k, text, 1, 10**6)}
    if name == "without":
        if value not in labels.TARGET_SYNSETS:
            raise SubsetError(f"bad subset {text!r}: targets are "
                              f"{', '.join(labels.TARGET_SYNSETS)}")
        return name, {"target": value}
    if name == "split":
        kind, _, half = value.partition(":")
        if kind not in ("random", "minimal") or half not in ("a", "b"):
            raise SubsetError(f"bad subset {text!r}: use split=random:a, split=minimal:b, ...")
        return name, {"kind": kind, "half": half}
    if name == "extra":
        return name, {"extra_classes": _int(value, text, 1, 10**6)}
    if name == "holdout":
        return name, {"held_out": _int(value, text, 1, 10**6)}
    if name == "budget":  # CxN, or CxN:TARGET (classes drawn stratified by TARGET's overlap)
        value, _, target = value.partition(":")
        c, _, n = value.partition("x")
        params = {"classes": _int(c, text, 2, labels.IMAGENET_CLASSES),
                  "images_per_class": _int(n, text, 1, full)}
        return name, {**params, **_stratify(text, target)}
    raise SubsetError(f"bad subset {text!r}: known rules are {', '.join(RULES)}")


def counts_images(dataset: str) -> bool:
    """Whether `images-per-class=N` on `dataset` ("a+b": its first part; "name:view") means N
    images per class (ImageNet-1k itself: the paper's units), not N/1000 of its largest class
    (a stand-in); the data set's entry says which (`Dataset.per_class_unit`)."""
    base = dataset.split("+")[0].partition(":")[0]
    entry = datasets.REGISTRY.get(base)
    return entry is not None and entry.per_class_unit == IMAGES


def per_class_count(paper_images: int, full: int) -> int:
    """The analogue of `paper_images` of the paper's 1000 images per class, for a data set with
    `full` images per class (at least one image)."""
    return max(1, round(full * paper_images / FULL_IMAGES_PER_CLASS))


def class_count(paper_classes: int, total: int) -> int:
    """The analogue of `paper_classes` of ImageNet's 1000 classes, for `total` classes (>= 2)."""
    return max(2, round(total * paper_classes / labels.IMAGENET_CLASSES))


def _per_class_permutation(y: torch.Tensor, k: int, seed: int) -> torch.Tensor:
    idx = torch.nonzero(y == k).flatten()
    g = rng.generator("images", seed, k)
    return idx[torch.randperm(len(idx), generator=g)]


def _random_classes(leaves: list[str], n: int, seed: int) -> list[str]:
    order = torch.randperm(len(leaves), generator=rng.generator("classes", seed)).tolist()
    return sorted(leaves[i] for i in order[:n])


def _stratified_classes(h: wordnet.Hierarchy, leaves: list[str], n: int, seed: int,
                        target: str) -> list[str]:
    """n classes drawn with `seed` so that the share of classes under the target's synsets is
    the whole set's (rounded): the classes that overlap the target and the others, each drawn
    at random in proportion (small scale v3, Section 5.5: a fixed budget then compares like
    with like on the target)."""
    others = set(labels.without_target(h, leaves, target))
    overlap = [c for c in leaves if c not in others]
    k = round(n * len(overlap) / len(leaves))
    return sorted(_random_classes(overlap, k, seed) +
                  _random_classes([c for c in leaves if c in others], n - k, seed))


def _base(dataset: str) -> str:
    return dataset.partition("+")[0].partition(":")[0]


def _label_map(rule: str, params: dict, leaves: list[str], seed: int,
               extra: list[str], dataset: str) -> dict[str, str]:
    """Which leaf classes are kept, and the training class of each."""
    h = wordnet.load()
    if rule == "holdout":  # Section 6 at paper scale: the source without its extra classes
        base = _base(dataset)
        if base not in labels.HELD_OUT:
            raise SubsetError(f"holdout={params['held_out']}: {base} holds no classes out "
                              f"(only {', '.join(labels.HELD_OUT)} do)")
        out = set(labels.held_out(base, leaves))
        if len(out) != params["held_out"]:
            raise SubsetError(f"holdout={params['held_out']}: {base} holds {len(out)} classes "
                              f"out (itl.labels.HELD_OUT): use holdout={len(out)}")
        return {c: c for c in leaves if c not in out}
    if rule == "extra":
        if params["extra_classes"] > len(extra):
            raise SubsetError(f"extra={params['extra_classes']}: only {len(extra)} held-out "
                              "classes are available")
        return {c: c for c in leaves + extra[:params["extra_classes"]]}
    if rule in ("full", "images-per-class"):
        return {c: c for c in leaves}
    if rule in ("classes", "budget"):
        n = class_count(params["classes"], len(leaves))
        if "stratify" in params:
            kept = _stratified_classes(h, leaves, n, seed, params["stratify"])
        else:
            kept = _random_classes(leaves, n, seed)
        return {c: c for c in kept}
    if rule == "labels":
        lv = wordnet.levels(h, leaves, params["scheme"])
        if params["classes"] not in lv:
            raise SubsetError(f"no {params['scheme']} level has {params['classes']} classes; "
                              f"available: {', '.join(map(str, lv))}")
        return dict(lv[params["classes"]])
    if rule == "without":
        return {c: c for c in labels.without_target(h, leaves, params["target"])}
    if rule == "split":
        sp = (labels.random_split(h, leaves, seed) if params["kind"] == "random"
              else labels.minimal_split(h, leaves))
        return {c: c for c in (sp.a if params["half"] == "a" else sp.b)}
    raise SubsetError(f"unknown rule {rule!r}")


def label_map(text: str, leaves: list[str], dataset: str, seed: int) -> dict[str, str]:
    """Which of `leaves` rule `text` keeps, and the training class of each (a manifest's
    label_of), from the class names alone: what sizing a condition needs where its images are
    not here."""
    rule, params = parse_rule(text)
    return _label_map(rule, params, list(leaves), seed, [], dataset)


def build(text: str, source: ImageSet, dataset: str, seed: int,
          main: int | None = None) -> Manifest:
    """The manifest of rule `text` over `source` (a train split) whose first `main` classes
    (default: all) are the main set and the rest are held out for the `extra` rule. Images per
    class are drawn per class from a permutation seeded by (seed, class), so smaller subsets are
    nested in larger ones: 50 images per class are the first 50 of the 125. N images per class
    are N of the paper's 1000 (on ImageNet-1k: N images; a class with fewer keeps all of its),
    or the same share of a stand-in's largest class (`counts_images`)."""
    rule, params = parse_rule(text)
    main = len(source.classes) if main is None else main
    leaves, extra = list(source.classes[:main]), list(source.classes[main:])
    label_of = _label_map(rule, params, leaves, seed, extra, dataset)
    order = {c: i for i, c in enumerate(source.classes)}
    classes = sorted(set(label_of.values()), key=lambda c: (c not in order, order.get(c, 0), c))
    counts = torch.bincount(source.y, minlength=len(source.classes))
    full = FULL_IMAGES_PER_CLASS if counts_images(dataset) else int(counts.max())
    chosen = []
    for k, leaf in enumerate(source.classes):
        if leaf not in label_of:
            continue
        perm = _per_class_permutation(source.y, k, seed)
        n = len(perm)
        if "images_per_class" in params:
            n = per_class_count(params["images_per_class"], full)
        chosen.append(perm[:n])
    indices = sorted(torch.cat(chosen).tolist())
    m = Manifest(dataset, rule, params, seed, classes, label_of, indices)
    return _sealed(m)


def apply(m: Manifest, source: ImageSet, chosen_only: bool = True) -> ImageSet:
    """The manifest's images (or, with chosen_only=False, every image of a kept class, as for
    a test split) with training labels 0..C-1."""
    unknown = set(m.label_of) - set(source.classes)
    if unknown:
        raise SubsetError(f"manifest {m.sha256[:12]} names classes not in {m.dataset}: "
                          f"{sorted(unknown)[:5]}")
    return data.relabel(source, m.label_of, m.classes, m.indices if chosen_only else None)


def save(m: Manifest, folder: Path | None = None) -> Path:
    folder = paths.ensure_writable(folder or paths.runs_dir() / "manifests")
    path = folder / f"{m.dataset}-{m.rule}-{m.sha256[:16]}.json"
    if not path.exists():
        paths.atomic_write_text(path, m.to_json() + "\n")
    return path
