"""`itl data prepare`: from shards with SHA256SUMS and from the original layouts, tested with
small fabricated archives (each declaring its miniature identity); bad input gives one clear
error and leaves nothing prepared."""
import dataclasses
import hashlib
import pickle
import zipfile
from pathlib import Path

import pytest
import torch
import torchvision

from itl import data, datasets
from itl.datasets.entry import Archive
from archives import write_shards, write_tar

G = torch.Generator().manual_seed(0)


def _jpeg(size: int = 16) -> bytes:
    x = torch.randint(0, 256, (3, size, size), dtype=torch.uint8, generator=G)
    return torchvision.io.encode_jpeg(x).numpy().tobytes()


def _tiny_files(classes=("n01443537", "n02094433"), per_class=3) -> dict[str, bytes]:
    files = {"tiny-imagenet-200/wnids.txt": "\n".join(classes).encode(),
             "tiny-imagenet-200/words.txt": b""}
    ann = []
    for c in classes:
        for i in range(per_class):
            files[f"tiny-imagenet-200/train/{c}/images/{c}_{i}.JPEG"] = _jpeg()
        files[f"val_{c}"] = b""
    files = {k: v for k, v in files.items() if not k.startswith("val_")}
    for i, c in enumerate(classes * 2):
        files[f"tiny-imagenet-200/val/images/val_{i}.JPEG"] = _jpeg()
        ann.append(f"val_{i}.JPEG\t{c}\t0\t0\t10\t10")
    files["tiny-imagenet-200/val/val_annotations.txt"] = "\n".join(ann).encode()
    return files


def expect(monkeypatch, name: str, **changes) -> None:
    """Replace data set `name`'s registry entry (classes, images per class, image size...) by a
    miniature one for a fabricated source."""
    monkeypatch.setitem(datasets.REGISTRY, name,
                        dataclasses.replace(datasets.REGISTRY[name], **changes))


def _expect_tiny(monkeypatch, **changes) -> None:
    expect(monkeypatch, "tiny-imagenet-200", classes=("n01443537", "n02094433"),
           per_class={"train": 3, "test": 2}, image_size=(16, 16), **changes)


def _nothing_prepared(root: Path, name: str) -> bool:
    return not (root / name).exists() and not list(root.glob(".staging-*"))


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    d = tmp_path / "data"
    monkeypatch.setenv("ITL_DATA", str(d))
    return d


def test_from_shards_with_checksums(tmp_path, data_dir, monkeypatch):
    _expect_tiny(monkeypatch)
    files = _tiny_files()
    train = {k: v for k, v in files.items() if "/train/" in k}
    rest = {k: v for k, v in files.items() if "/train/" not in k}
    src = write_shards(tmp_path / "shards", {"tiny-imagenet-200/train-0.tar.gz": train,
                                             "tiny-imagenet-200/val.tar.gz": rest})
    datasets.prepare("tiny-imagenet-200", src, size=64)
    tr, te = data.load("tiny-imagenet-200", "train"), data.load("tiny-imagenet-200", "test")
    assert tr.x.shape == (6, 3, 64, 64) and tr.x.dtype == torch.uint8
    assert tr.classes == ("n01443537", "n02094433") and tr.y.tolist() == [0, 0, 0, 1, 1, 1]
    assert te.y.tolist() == [0, 1, 0, 1]
    assert data.fingerprint("tiny-imagenet-200").startswith("tiny-imagenet-200-")


def test_from_the_original_zip(tmp_path, data_dir, monkeypatch):
    z = tmp_path / "tiny-imagenet-200.zip"
    with zipfile.ZipFile(z, "w") as zf:
        for name, blob in _tiny_files().items():
            zf.writestr(name, blob)
    _expect_tiny(monkeypatch, archives=(Archive("tiny-imagenet-200.zip",
                                                  md5=hashlib.md5(z.read_bytes()).hexdigest()),))
    datasets.prepare("tiny-imagenet-200", z, size=32)
    assert data.load("tiny-imagenet-200", "train", 32).x.shape == (6, 3, 32, 32)


def test_cifar_python_batches(tmp_path, data_dir, monkeypatch):
    def batch(n):
        return {b"data": torch.randint(0, 256, (n, 3072), dtype=torch.uint8).numpy(),
                b"labels": [i % 10 for i in range(n)]}

    files = {f"cifar-10-batches-py/data_batch_{i}": pickle.dumps(batch(4)) for i in range(1, 6)}
    files["cifar-10-batches-py/test_batch"] = pickle.dumps(batch(3))
    files["cifar-10-batches-py/batches.meta"] = pickle.dumps(
        {b"label_names": [f"c{i}".encode() for i in range(10)]})
    archive = write_tar(tmp_path / "cifar-10-python.tar.gz", files)
    expect(monkeypatch, "cifar-10", classes=tuple(f"c{i}" for i in range(10)),
           per_class={"train": (5,) * 4 + (0,) * 6, "test": (1,) * 3 + (0,) * 7},
           archives=(Archive("cifar-10-python.tar.gz",
                             md5=hashlib.md5(archive.read_bytes()).hexdigest()),))
    datasets.prepare("cifar-10", archive, size=32)
    tr = data.load("cifar-10", "train", 32)
    assert len(tr) == 20 and tr.x.shape[1:] == (3, 32, 32) and tr.classes[3] == "c3"


def test_scene_classes_without_split_get_the_standard_split(tmp_path, data_dir, monkeypatch):
    expect(monkeypatch, "15-scene", classes=("coast", "forest"),
           per_class={"train": 3, "test": 2})
    files = {f"scenes/{c}/{i}.jpg": _jpeg() for c in ("coast", "forest") for i in range(5)}
    datasets.prepare("15-scene", write_tar(tmp_path / "scene.tar.gz", files))
    tr, te = data.load("15-scene", "train"), data.load("15-scene", "test")
    assert (len(tr), len(te)) == (6, 4) and tr.classes == ("coast", "forest")


def test_wrong_checksum_is_named_and_nothing_is_left(tmp_path, data_dir):
    src = write_shards(tmp_path / "shards", {"15-scene/15-scene.tar.gz": {
        f"15-scene/{s}/a/{i}.jpg": _jpeg() for s in ("train", "test") for i in range(2)}})
    (src / "SHA256SUMS").write_text("0" * 64 + "  ./15-scene/15-scene.tar.gz\n")
    with pytest.raises(data.DataError, match="wrong checksum for .*15-scene.tar.gz"):
        datasets.prepare("15-scene", src)
    assert _nothing_prepared(data_dir, "15-scene")


def test_truncated_archive_is_named(tmp_path, data_dir):
    f = write_tar(tmp_path / "15-scene.tar.gz", {f"15-scene/train/a/{i}.jpg": _jpeg(64)
                                                 for i in range(20)})
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    with pytest.raises(data.DataError, match="cannot unpack"):
        datasets.prepare("15-scene", f)
    assert _nothing_prepared(data_dir, "15-scene")


def test_missing_split_is_named(tmp_path, data_dir):
    f = write_tar(tmp_path / "c.tar.gz", {f"cifar-10/train/cat/{i}.jpg": _jpeg() for i in range(2)})
    with pytest.raises(data.DataError, match="test/ split of cifar-10 is missing"):
        datasets.prepare("cifar-10", f)
    assert _nothing_prepared(data_dir, "cifar-10")


def test_unreadable_image_is_named(tmp_path, data_dir, monkeypatch):
    expect(monkeypatch, "15-scene", classes=("a",), per_class={"train": 2, "test": 3})
    files = {f"15-scene/{s}/a/{i}.jpg": _jpeg() for s in ("train", "test") for i in range(2)}
    files["15-scene/test/a/broken.jpg"] = b"not a jpeg"
    with pytest.raises(data.DataError, match="unreadable image .*broken.jpg"):
        datasets.prepare("15-scene", write_tar(tmp_path / "s.tar.gz", files))
    assert _nothing_prepared(data_dir, "15-scene")


def test_unknown_name_and_missing_source(tmp_path, data_dir):
    with pytest.raises(data.DataError, match="unknown data set 'imagenet-21k'"):
        datasets.prepare("imagenet-21k", tmp_path)
    with pytest.raises(data.DataError, match="does not exist"):
        datasets.prepare("cifar-10", tmp_path / "nope.tar.gz")


def test_real_15_scene_shards(data_dir):
    shards = Path(__file__).resolve().parents[2] / "shared" / "data"
    if not (shards / "SHA256SUMS").is_file():
        pytest.skip(f"no shards at {shards}")
    datasets.prepare("15-scene", shards)
    tr, te = data.load("15-scene", "train"), data.load("15-scene", "test")
    assert (len(tr), len(te), len(tr.classes)) == (1500, 2985, 15)


def test_real_bccd_shard_is_installed_as_voc(data_dir):
    from itl.datasets import voc
    shards = Path(__file__).resolve().parents[2] / "shared" / "data"
    if not (shards / "SHA256SUMS").is_file():
        pytest.skip(f"no shards at {shards}")
    root = datasets.prepare("bccd", shards)
    assert datasets.get("bccd").root() == root
    assert len(voc.read_voc(root, "train")) > 100
