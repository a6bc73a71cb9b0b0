"""ImageNet-1k at 64 px (itl.datasets.imagenet64) from a fabricated miniature of the official
downsampled release (zipped batches of 64-px images, npz or pickled, labels numbering the lines
of map_clsloc.txt): prepare -> load -> one training step -> evaluation; and each bad input
(missing or wrong class list, truncated zip, a batch of another shape, a missing batch) is one
clear line with nothing prepared. Also the scale's own rules: images per class in the paper's
units and Section 6's holdout."""
import dataclasses
import io
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from itl import data, datasets, labels, subsets, train, wordnet
from itl.datasets.images import DataError, ImageSet

# three ImageNet-1k wnids, numbered by the fabricated class list in an order that is not sorted,
# so a label that skipped map_clsloc.txt would land on the wrong class
NUMBERED = {1: "n01484850", 2: "n01440764", 3: "n01443537"}
WNIDS = tuple(sorted(NUMBERED.values()))
TRAIN_LABELS = ([1, 2, 3, 1, 2], [3, 1, 2, 3])  # batch 1, batch 2: 3 images of each class
VAL_LABELS = [2, 3, 1, 1, 2, 3]


def _batch(labels_: list[int], npz: bool, row: int = 3 * 64 * 64) -> bytes:
    """A batch as the release writes it: each image filled with 40 x its label number (so its
    class can be read back from its pixels), channel-major rows."""
    x = np.stack([np.full(row, 40 * k, dtype=np.uint8) for k in labels_])
    d = {"data": x, "labels": labels_, "mean": x.mean(0)}
    if not npz:
        return pickle.dumps(d)
    buf = io.BytesIO()
    np.savez(buf, data=x, labels=np.array(labels_), mean=d["mean"])
    return buf.getvalue()


def _zip(path: Path, files: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        for name, blob in files.items():
            z.writestr(name, blob)
    return path


def _release(folder: Path, npz: bool = False, class_list: str | None = None,
             row: int = 3 * 64 * 64) -> Path:
    """Imagenet64_train_part1.zip (batch 1), _part2.zip (batch 2), Imagenet64_val.zip and
    map_clsloc.txt in one folder."""
    folder.mkdir(parents=True, exist_ok=True)
    ext = ".npz" if npz else ""
    for part, k in ((1, 1), (2, 2)):
        _zip(folder / f"Imagenet64_train_part{part}.zip",
             {f"Imagenet64_train_part{part}/train_data_batch_{k}{ext}":
              _batch(TRAIN_LABELS[k - 1], npz, row)})
    _zip(folder / "Imagenet64_val.zip", {f"val_data{ext}": _batch(VAL_LABELS, npz, row)})
    if class_list is None:
        class_list = "".join(f"{w} {k} name_{k}\n" for k, w in NUMBERED.items())
    (folder / "map_clsloc.txt").write_text(class_list)
    return folder


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    d = tmp_path / "data"
    monkeypatch.setenv("ITL_DATA", str(d))
    # the miniature's identity: 3 classes, 3 training images each in 2 batches, 2 validation
    monkeypatch.setitem(datasets.REGISTRY, "imagenet64", dataclasses.replace(
        datasets.REGISTRY["imagenet64"], classes=WNIDS, images={"train": 9, "test": 6},
        per_class={"train": None, "test": 2},
        per_class_range={"train": (2, 4), "test": (2, 2)}, train_batches=2))
    return d


def _nothing_prepared(root: Path) -> bool:
    return not (root / "imagenet64").exists() and not list(root.glob(".staging-*"))


@pytest.mark.parametrize("npz", [False, True], ids=["pickled", "npz"])
def test_prepare_load_train_one_step_and_evaluate(tmp_path, data_dir, npz):
    datasets.prepare("imagenet64", _release(tmp_path / "release", npz))
    tr, te = data.load("imagenet64", "train", 64), data.load("imagenet64", "test", 64)
    assert tr.classes == WNIDS and tr.x.shape == (9, 3, 64, 64) and tr.x.dtype == torch.uint8
    assert torch.bincount(tr.y).tolist() == [3, 3, 3] and len(te) == 6
    for images in (tr, te):  # every image is its class's: label k was filled with 40 k
        number = {w: k for k, w in NUMBERED.items()}
        want = torch.tensor([40 * number[images.classes[c]] for c in images.y])
        assert torch.equal(images.x[:, :, 5, 7].long(), want[:, None].expand(-1, 3))
    small = data.load("imagenet64", "train", 32)
    assert small.x.shape == (9, 3, 32, 32) and torch.equal(small.x[:, :, 0, 0], tr.x[:, :, 0, 0])
    assert datasets.get("imagenet64").verify() is None
    assert datasets.get("imagenet64").status().state == "present, verified"

    # one training step and an evaluation, through the scale's own rules and trainer
    m = subsets.build("images-per-class=2", tr, "imagenet64", seed=0)
    assert len(m.indices) == 6  # 2 of each class: the paper's units, not a share of 3
    cfg = train.PretrainConfig(model="strided_cnn_w64", steps=1, batch_size=4, lr=0.01)
    r = train.pretrain(cfg, subsets.apply(m, tr), subsets.apply(m, te, chosen_only=False),
                       len(tr), 0, tmp_path / "run")
    assert r["steps"] == 1 and r["classes"] == 3 and 0.0 <= r["source_top1"] <= 100.0


def _one_line_error(tmp_path: Path, data_dir: Path, source: Path, *needles: str) -> None:
    with pytest.raises(DataError) as e:
        datasets.prepare("imagenet64", source)
    msg = str(e.value)
    assert "\n" not in msg, msg
    for n in needles:
        assert n in msg, msg
    assert _nothing_prepared(data_dir)


def test_a_missing_class_list_names_it(tmp_path, data_dir):
    src = _release(tmp_path / "release")
    (src / "map_clsloc.txt").unlink()
    _one_line_error(tmp_path, data_dir, src, "no map_clsloc.txt", "ILSVRC devkit")


@pytest.mark.parametrize("text,needle", [
    ("n01484850 1 a\nn01440764 2 b\nn09999999 3 c\n", "not the 3 ImageNet-1k classes"),
    ("n01484850 1 a\nn01440764 2 b\nn01443537 2 c\n", "numbers two classes 2"),
    ("n01484850 1 a\nn01440764 2 b\n", "lists 2 classes"),
    ("kit_fox n01484850 1\n", "is not 'WNID NUMBER NAME'"),
], ids=["other-wnid", "number-twice", "too-few", "not-the-format"])
def test_a_wrong_class_list_is_named(tmp_path, data_dir, text, needle):
    src = _release(tmp_path / "release", class_list=text)
    _one_line_error(tmp_path, data_dir, src, "map_clsloc.txt", needle)


def test_a_truncated_zip_is_named(tmp_path, data_dir):
    src = _release(tmp_path / "release")
    z = src / "Imagenet64_train_part2.zip"
    z.write_bytes(z.read_bytes()[: z.stat().st_size // 2])
    _one_line_error(tmp_path, data_dir, src, "Imagenet64_train_part2.zip", "truncated")


def test_a_batch_of_another_shape_is_named(tmp_path, data_dir):
    src = _release(tmp_path / "release", row=3 * 32 * 32)  # Imagenet32's rows
    _one_line_error(tmp_path, data_dir, src, "train_data_batch_1", "(5, 3072)",
                    "not the 64-px release")


def test_a_missing_batch_is_named(tmp_path, data_dir):
    src = _release(tmp_path / "release")
    (src / "Imagenet64_train_part2.zip").unlink()
    _one_line_error(tmp_path, data_dir, src, "lacks train_data_batch_2",
                    "Imagenet64_train_part2.zip")


def test_a_release_with_other_counts_is_refused(tmp_path, data_dir, monkeypatch):
    monkeypatch.setitem(datasets.REGISTRY, "imagenet64", dataclasses.replace(
        datasets.REGISTRY["imagenet64"], images={"train": 10, "test": 6}))
    _one_line_error(tmp_path, data_dir, _release(tmp_path / "release"),
                    "is not imagenet64", "found 9 train images, expected 10")


def test_the_real_entry_is_imagenet_1k_at_64_px():
    e = datasets.get("imagenet64")
    assert e.classes == tuple(labels.imagenet1k_wnids()) and len(e.classes) == 1000
    assert e.images == {"train": 1_281_167, "test": 50_000} and e.image_size == (64, 64)
    assert "map_clsloc.txt" in e.status().detail and "Imagenet64_val.zip" in e.status().detail


# ---------------------------------------------------------------- the scale's own rules


def _set(classes, per_class: int) -> ImageSet:
    y = torch.arange(len(classes)).repeat_interleave(per_class)
    return ImageSet(torch.zeros((len(y), 3, 1, 1), dtype=torch.uint8), y, tuple(classes))


def test_images_per_class_are_the_papers_units_on_imagenet_only():
    images = _set(("n01440764", "n01443537"), 1300)  # ImageNet's largest classes hold 1,300
    for name, want in (("imagenet64", 500), ("imagenet-1k", 500), ("tiny-imagenet-200", 650)):
        m = subsets.build("images-per-class=500", images, name, seed=0)
        assert len(m.indices) == 2 * want, name


def test_section6_holdout_leaves_out_229_classes_unrelated_to_pascal():
    leaves = labels.imagenet1k_wnids()
    images = _set(leaves, 1)
    m = subsets.build("holdout=229", images, "imagenet64", seed=0)
    held = set(leaves) - set(m.classes)
    assert len(m.classes) == 771 and held == set(labels.held_out("imagenet64", leaves))
    h = wordnet.load()
    assert not any(h.is_under(w, s) for w in held for s in labels.PASCAL_VOC.values())
    assert labels.view_leaves("imagenet64", "extra", leaves) == sorted(held)
    with pytest.raises(subsets.SubsetError, match="use holdout=229"):
        subsets.build("holdout=228", images, "imagenet64", seed=0)
    with pytest.raises(subsets.SubsetError, match="holds no classes out"):
        subsets.build("holdout=229", images, "cifar-10", seed=0)
