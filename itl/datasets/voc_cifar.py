"""`voc-cifar`: a VOC-format detection set that itl generates deterministically, the small scale's
stand-in for PASCAL-DET (paper Section 3): CIFAR-10 test objects pasted at random positions and
scales onto 15-Scene backgrounds, with their boxes, written as VOC XML + JPEG + ImageSets/Main
lists under ITL_DATA/voc-cifar on first use, with `files.sha256` (the sha256 of every file it
wrote). Each use checks the files against it (once per process and file version), so an edited
folder is refused, never read under the same name; a folder generated before that file was
written gets it on its next use (what is there is recorded).
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import torch
import torch.nn.functional as F
import torchvision
from filelock import FileLock

from itl import paths, rng
from itl.datasets import content
from itl.datasets.cached import CachedSet
from itl.datasets.cifar10 import CIFAR10
from itl.datasets.entry import (DETECTION, FAILING, GENERATED, GENERATED_ON_USE, VOC07_MAP,
                                Dataset, Status)
from itl.datasets.images import DataError, ImageSet, concat
from itl.datasets.scene15 import SCENE15
from itl.datasets.voc import iou, is_voc_folder, xml


@dataclass(frozen=True)
class VocSpec:
    """A generated detection set: objects pasted on backgrounds (small-scale PASCAL-DET)."""
    n_train: int = 500  # images
    n_test: int = 500
    size: int = 128  # pixels, square images
    max_objects: int = 3  # per image (at least one)
    min_object: int = 24  # pixels, object side
    max_object: int = 64
    seed: int = 0


def make_voc(objects: ImageSet, backgrounds: ImageSet, spec: VocSpec, out: Path) -> Path:
    """Write the generated set to `out` (atomically: built beside it, then renamed). Training
    images use the even-indexed objects and backgrounds, test images the odd ones."""
    staging = out.with_name(f".{out.name}.staging")
    if staging.exists():
        shutil.rmtree(staging)
    for d in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (staging / d).mkdir(parents=True)
    for part, (split, n) in enumerate((("train", spec.n_train), ("test", spec.n_test))):
        g = rng.generator("voc", spec.seed, split)
        # train and test draw from disjoint halves of the objects and backgrounds
        obj_pool = list(range(part, len(objects), 2)) or list(range(len(objects)))
        bg_pool = list(range(part, len(backgrounds), 2)) or list(range(len(backgrounds)))
        ids = []
        for i in range(n):
            image = f"{split}_{i:05d}"
            bg = backgrounds.x[bg_pool[torch.randint(len(bg_pool), (1,), generator=g).item()]]
            canvas = F.interpolate(bg[None].float(), size=(spec.size, spec.size),
                                   mode="bilinear", align_corners=False)[0]
            boxes, labels = [], []
            for _ in range(1 + torch.randint(spec.max_objects, (1,), generator=g).item()):
                k = obj_pool[torch.randint(len(obj_pool), (1,), generator=g).item()]
                side = torch.randint(spec.min_object, spec.max_object + 1, (1,),
                                     generator=g).item()
                x0 = torch.randint(spec.size - side + 1, (1,), generator=g).item()
                y0 = torch.randint(spec.size - side + 1, (1,), generator=g).item()
                box = torch.tensor([x0, y0, x0 + side - 1, y0 + side - 1], dtype=torch.float32)
                if boxes and iou(box, torch.tensor(boxes, dtype=torch.float32)).max() > 0:
                    continue  # objects never hide each other: every box stays fully visible
                obj = F.interpolate(objects.x[k][None].float(), size=(side, side),
                                    mode="bilinear", align_corners=False)[0]
                canvas[:, y0:y0 + side, x0:x0 + side] = obj
                boxes.append([x0, y0, x0 + side - 1, y0 + side - 1])
                labels.append(objects.classes[int(objects.y[k])])
            img = canvas.round().clamp(0, 255).to(torch.uint8)
            torchvision.io.write_jpeg(img, str(staging / "JPEGImages" / f"{image}.jpg"),
                                      quality=95)
            (staging / "Annotations" / f"{image}.xml").write_text(
                xml(image, (spec.size, spec.size), torch.tensor(boxes), labels))
            ids.append(image)
        (staging / "ImageSets" / "Main" / f"{split}.txt").write_text("\n".join(ids) + "\n")
    content.write_manifest(staging, [f for f in staging.rglob("*") if f.is_file()])
    paths.ensure_writable(out.parent)
    if out.exists():
        shutil.rmtree(out)
    staging.rename(out)
    return out


SMALL_SPEC = VocSpec(n_train=2000, n_test=1000, size=128, seed=0)


@dataclass(frozen=True, kw_only=True)
class GeneratedVoc(Dataset):
    """A VOC-format detection set generated on first use from two prepared sets: the test split
    of `objects`, pasted on every image of `backgrounds`."""
    spec: VocSpec
    objects: CachedSet
    backgrounds: CachedSet

    origin: ClassVar[str] = GENERATED

    def root(self) -> Path:
        """Its folder, generating it on first use (one process at a time), its files checked
        against the files.sha256 written with them (an edited folder: one DataError)."""
        root = paths.data_dir() / self.name
        paths.ensure_writable(root.parent)
        with FileLock(str(root.parent / f"{self.name}.lock")):
            if not is_voc_folder(root):
                scenes = concat([self.backgrounds.load(s) for s in ("train", "test")])
                make_voc(self.objects.load("test"), scenes, self.spec, root)
            elif not (root / content.MANIFEST).is_file():  # generated before it was written
                content.write_manifest(root, [f for f in root.rglob("*") if f.is_file()])
            problem = self.problem(root)
        if problem:
            raise DataError(problem)
        return root

    def problem(self, root: Path) -> str | None:
        """Why a generated folder's files are not the ones written with it (None: they are, or
        it has no files.sha256 yet)."""
        manifest = root / content.MANIFEST
        if not manifest.is_file():
            return None
        return content.manifest_problem(root, content.sha256_of(manifest),
                                        f"delete {root} to generate it again")

    def present(self) -> bool:
        return True  # generated whenever it is read

    def needs(self) -> tuple[str, ...]:
        built = is_voc_folder(paths.data_dir() / self.name)
        return () if built else (self.objects.name, self.backgrounds.name)

    def status(self) -> Status:
        root = paths.data_dir() / self.name
        if is_voc_folder(root):
            problem = self.problem(root)
            return Status(FAILING, problem) if problem else \
                Status(GENERATED_ON_USE, f"generated: {root}")
        absent = [e.name for e in (self.objects, self.backgrounds) if not e.present()]
        return Status(GENERATED_ON_USE, f"from {self.objects.name} (test objects) on "
                                        f"{self.backgrounds.name} (backgrounds)" +
                      (f", once {' and '.join(absent)} are prepared" if absent else ""))


VOC_CIFAR = GeneratedVoc(
    name="voc-cifar", kind=DETECTION, metric=VOC07_MAP, classes=CIFAR10.classes,
    class_ids="name", image_size=(SMALL_SPEC.size, SMALL_SPEC.size), spec=SMALL_SPEC,
    objects=CIFAR10, backgrounds=SCENE15)
ENTRIES = (VOC_CIFAR,)
