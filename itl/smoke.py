"""The embedded smoke data set: a pipeline check of every paper question on 2 CPU cores.

It is generated, not downloaded, and it is *not* a result: it exists so that every experiment of
the paper runs end to end in minutes. Never tune it to make a claim pass.

Classes. The source task has 16 real ImageNet-1k classes (WordNet 3.0 wnids) forming a small
subtree of the animal part of WordNet (two dogs, a cat, a bird, sharks, cyprinids, beetles,
butterflies, snakes, lizards), so itl's WordNet machinery (levels, splits, overlap removal) applies
to it as to ImageNet: down-up gives 15, 14, 12, 11, 9, 6, 5, 2, 1 classes. The transfer target
has 6 PASCAL VOC classes by the authors' PASCAL synsets (dog, cat, bird, car, boat, aeroplane):
each of its images shows a random ImageNet-1k leaf under that synset, so, as with PASCAL, some
source classes (the two dogs, the cat and the bird) overlap the target and the vehicles are new.
A third set, `smoke-extra`, holds 8 more ImageNet-1k leaves unrelated to the target (fruit,
fungi, instruments, a ball, a clock): the extra data of "is more data always better?".

Appearance carries the hierarchy. Every synset `s` owns a random code vector z_s (seeded by its
wnid). A leaf's class code is the weighted sum of the codes of itself and its three nearest
ancestors on the first-hypernym path (weights 0.6, 0.8, 1.0, 1.0 from the leaf up), so siblings
share more of their code than cousins do. The code fixes the object's shape (number and depth of
lobes, aspect), its two colours, and its texture (frequency, orientation, stripes vs. checks).

Nuisance. Each image adds instance noise to the code (sd 0.6), and draws the object's position,
scale, rotation and brightness at random, on a smooth random background with two distractor
blobs of random appearance (clutter) and pixel noise. Images are 32x32 RGB, stored as uint8.

Everything is drawn from one `torch.Generator` seeded from (data set seed, split, class index),
so a data set is a pure function of its spec: the same bytes on every run.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from itl import rng, wordnet

SOURCE_CLASSES = (  # 16 ImageNet-1k leaves
    "n02094433",  # Yorkshire terrier < terrier < hunting dog < dog
    "n02088364",  # beagle < hound < hunting dog < dog
    "n02123045",  # tabby < domestic cat < cat
    "n01530575",  # brambling < finch < oscine < passerine < bird
    "n01484850",  # great white shark < mackerel shark < shark
    "n01491361",  # tiger shark < requiem shark < shark
    "n01440764",  # tench < cyprinid
    "n01443537",  # goldfish < cyprinid
    "n02165456",  # ladybug < beetle
    "n02167151",  # ground beetle < beetle
    "n02276258",  # admiral < nymphalid < butterfly
    "n02279972",  # monarch < danaid < butterfly
    "n01728572",  # thunder snake < colubrid snake
    "n01728920",  # ringneck snake < colubrid snake
    "n01677366",  # common iguana < iguanid < lizard
    "n01682714",  # American chameleon < iguanid < lizard
)
TARGET_CLASSES = (  # the authors' PASCAL VOC synsets for 6 of the 20 classes
    "n02084071",  # dog
    "n02121620",  # cat
    "n01503061",  # bird
    "n02958343",  # car
    "n02858304",  # boat
    "n02691156",  # aeroplane
)
EXTRA_CLASSES = (  # 8 ImageNet-1k leaves unrelated to the target, for "more data" (Section 6)
    "n07747607",  # orange
    "n07753592",  # banana
    "n13054560",  # bolete
    "n13040303",  # stinkhorn
    "n03447721",  # gong
    "n03272010",  # electric guitar
    "n04254680",  # soccer ball
    "n04548280",  # wall clock
)
CODE_DIM = 12
LEVEL_WEIGHTS = (0.6, 0.8, 1.0, 1.0)  # leaf, parent, grandparent, great-grandparent
INSTANCE_SD = 0.6


@dataclass(frozen=True)
class SmokeSpec:
    """One generated data set: its classes, how many images each, and its seed."""
    name: str
    classes: tuple[str, ...]  # wnids: leaves (source) or synsets whose ImageNet leaves are drawn
    n_train: int  # images per class
    n_test: int  # images per class
    seed: int
    size: int = 32  # pixels


SOURCE = SmokeSpec("smoke", SOURCE_CLASSES, n_train=80, n_test=20, seed=0)
TARGET = SmokeSpec("smoke-target", TARGET_CLASSES, n_train=20, n_test=50, seed=1)
EXTRA = SmokeSpec("smoke-extra", EXTRA_CLASSES, n_train=80, n_test=20, seed=2)


def synset_code(wnid: str) -> torch.Tensor:
    g = rng.generator("code", wnid)
    return torch.randn(CODE_DIM, generator=g)


def class_code(h: wordnet.Hierarchy, leaf: str) -> torch.Tensor:
    path = h.path(leaf)
    return sum(w * synset_code(s) for w, s in zip(LEVEL_WEIGHTS, path))


def render(codes: torch.Tensor, size: int, g: torch.Generator) -> torch.Tensor:
    """Images (uint8, B x 3 x size x size) of objects with the given codes (B x CODE_DIM)."""
    b = codes.shape[0]
    u = lambda *s: torch.rand(*s, generator=g)  # noqa: E731
    c = codes + INSTANCE_SD * torch.randn(codes.shape, generator=g)
    lobes = 2 + torch.floor(torch.sigmoid(c[:, 0]) * 5)
    depth = 0.1 + 0.35 * torch.sigmoid(c[:, 1])
    aspect = torch.exp(0.4 * torch.tanh(c[:, 2]))
    col_a, col_b = torch.sigmoid(1.5 * c[:, 3:6]), torch.sigmoid(1.5 * c[:, 6:9])
    freq = 0.6 + 2.4 * torch.sigmoid(c[:, 9])  # stripes per object radius
    angle = math.pi * torch.tanh(c[:, 10])
    checks = torch.sigmoid(2 * c[:, 11])
    # nuisance: position, scale, rotation, brightness
    cx, cy = (u(2, b) - 0.5) * 0.7
    scale = 0.35 + 0.35 * u(b)
    rot = 2 * math.pi * u(b)
    bright = 0.7 + 0.6 * u(b)

    lin = torch.linspace(-1, 1, size)
    y, x = torch.meshgrid(lin, lin, indexing="ij")
    col = lambda t: t[:, :, None, None]  # noqa: E731
    v = lambda t: t[:, None, None]  # noqa: E731
    dx, dy = (x - v(cx)) / v(scale), (y - v(cy)) / v(scale)
    xr = (dx * v(torch.cos(rot)) + dy * v(torch.sin(rot))) / v(aspect)
    yr = -dx * v(torch.sin(rot)) + dy * v(torch.cos(rot))
    theta, rho = torch.atan2(yr, xr), torch.hypot(xr, yr)
    mask = torch.sigmoid((1 + v(depth) * torch.cos(v(lobes) * theta) - rho) * 12)
    ut = xr * v(torch.cos(angle)) + yr * v(torch.sin(angle))
    vt = -xr * v(torch.sin(angle)) + yr * v(torch.cos(angle))
    stripes = torch.sin(2 * math.pi * v(freq) * ut)
    tex = (1 - v(checks)) * stripes + v(checks) * stripes * torch.sin(2 * math.pi * v(freq) * vt)
    t = torch.sigmoid(4 * tex)[:, None]
    obj = (col(col_a) * t + col(col_b) * (1 - t)) * col(bright[:, None])

    # background: smooth random colour field plus two distractor blobs
    bg = torch.nn.functional.interpolate(u(b, 3, 3, 3), size=size, mode="bilinear",
                                         align_corners=False) * 0.8
    for _ in range(2):
        bx, by = (u(2, b) - 0.5) * 1.8
        r = 0.1 + 0.2 * u(b)
        blob = torch.sigmoid((v(r) - torch.hypot(x - v(bx), y - v(by))) * 20)[:, None]
        bg = bg * (1 - blob) + col(u(b, 3)) * blob
    img = obj * mask[:, None] + bg * (1 - mask[:, None])
    img = img + 0.04 * torch.randn(img.shape, generator=g)
    return (img.clamp(0, 1) * 255).round().to(torch.uint8)


def leaf_pool(h: wordnet.Hierarchy, wnid: str, imagenet: list[str]) -> list[str]:
    """The leaves whose appearance a class shows: itself if it is an ImageNet-1k leaf, else
    every ImageNet-1k leaf under it."""
    if wnid in imagenet:
        return [wnid]
    pool = [w for w in imagenet if h.is_under(w, wnid)]
    if not pool:
        raise ValueError(f"{wnid} has no ImageNet-1k leaf under it")
    return pool


def generate(spec: SmokeSpec, split: str, h: wordnet.Hierarchy,
             imagenet: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """(images uint8 N x 3 x S x S, labels int64 N) of one split, class-major order."""
    if split not in ("train", "test"):
        raise ValueError(f"unknown split {split!r}: choose train or test")
    h.check(spec.classes)
    n = spec.n_train if split == "train" else spec.n_test
    xs, ys = [], []
    for k, wnid in enumerate(spec.classes):
        g = rng.generator(spec.seed, split, k)
        pool = leaf_pool(h, wnid, imagenet)
        pick = torch.randint(len(pool), (n,), generator=g)
        codes = torch.stack([class_code(h, pool[i]) for i in pick.tolist()])
        xs.append(render(codes, spec.size, g))
        ys.append(torch.full((n,), k, dtype=torch.int64))
    return torch.cat(xs), torch.cat(ys)
