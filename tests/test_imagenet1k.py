"""ImageNet-1k (itl.datasets.imagenet1k) on a fabricated miniature ILSVRC2012 in its official
layout (a tar of per-class tars, a flat validation tar, the devkit), and in the extracted folder
layout: verified, prepared into streamed shards, gathered batch by batch, trained on at Caffe's
227-px crops and evaluated; bad archives refused in one line with nothing half-written; images
per class in the paper's units; on-disk images chosen and joined without being read."""
import dataclasses
import hashlib
import io
import json
import sys
import tarfile
from pathlib import Path

import pytest
import torch
import torchvision

from itl import cli, data, datasets, subsets, train
from itl.datasets import imagenet1k, shards, staging
from itl.datasets.entry import FAILING, VERIFIED, Archive
from itl.datasets.images import DataError, DiskImages, ImageSet, concat, relabel
from itl.datasets.imagenet1k import DEVKIT, IMAGENET_1K, TRAIN, VAL
from archives import tar_bytes, write_tar

WNIDS = ("n01440764", "n01443537", "n01484850")  # the first three of ImageNet-1k's 1000
DEVKIT_IDS = {1: "n01484850", 2: "n01440764", 3: "n01443537"}  # ILSVRC2012_ID -> wnid: the
# devkit's ids are not in wnid order (in the real devkit, id 1 is n02119789)
TRAIN_PER_CLASS, VAL_PER_CLASS = 3, 2
VAL_WNIDS = [WNIDS[i % 3] for i in range(6)]  # the wnid of ILSVRC2012_val_0000000{1..6}


def _jpeg(k: int, i: int) -> bytes:
    """A small image of class k (its colour), of a size that is not square."""
    g = torch.Generator().manual_seed(10 * k + i)
    x = torch.zeros(3, 20 + i, 30, dtype=torch.uint8)
    x[k] = 200
    x += torch.randint(0, 40, x.shape, dtype=torch.uint8, generator=g)
    return torchvision.io.encode_jpeg(x, quality=95).numpy().tobytes()


def _train_images() -> dict[str, dict[str, bytes]]:
    return {w: {f"{w}_{i}.JPEG": _jpeg(k, i) for i in range(TRAIN_PER_CLASS)}
            for k, w in enumerate(WNIDS)}


def _val_images() -> dict[str, bytes]:
    return {f"ILSVRC2012_val_{n + 1:08d}.JPEG": _jpeg(WNIDS.index(w), 5 + n)
            for n, w in enumerate(VAL_WNIDS)}


def _archives(folder: Path) -> Path:
    """ILSVRC2012's three archives, in miniature, under their official names."""
    folder.mkdir()
    inner = {}
    for w, files in _train_images().items():
        inner[f"{w}.tar"] = tar_bytes(dict(reversed(files.items())))  # not in name order: itl sorts
    write_tar(folder / TRAIN, dict(reversed(inner.items())))
    write_tar(folder / VAL, _val_images())
    ids = {w: i for i, w in DEVKIT_IDS.items()}
    truth = "".join(f"{ids[w]}\n" for w in VAL_WNIDS).encode()
    write_tar(folder / DEVKIT, {"ILSVRC2012_devkit_t12/data/ILSVRC2012_validation_ground_truth.txt":
                                truth})
    return folder


def _folders(root: Path) -> Path:
    """The extracted layout: train/<wnid>/ and val/<wnid>/."""
    for w, files in _train_images().items():
        for name, b in files.items():
            (root / "train" / w).mkdir(parents=True, exist_ok=True)
            (root / "train" / w / name).write_bytes(b)
    for (name, b), w in zip(_val_images().items(), VAL_WNIDS):
        (root / "val" / w).mkdir(parents=True, exist_ok=True)
        (root / "val" / w / name).write_bytes(b)
    return root


def _md5(f: Path) -> str:
    return hashlib.md5(f.read_bytes()).hexdigest()


def _miniature(monkeypatch, archives: Path | None = None) -> imagenet1k.ImageNet1k:
    """The registry's imagenet-1k replaced by the miniature's entry: its 3 classes and counts,
    and (the test-only override) its archives' md5s in place of the published ones."""
    sums = IMAGENET_1K.archives
    if archives is not None:
        sums = tuple(Archive(a.name, md5=_md5(archives / a.name)) for a in sums)
    mini = dataclasses.replace(IMAGENET_1K, classes=WNIDS, archives=sums,
                               train_images=TRAIN_PER_CLASS * 3, test_per_class=VAL_PER_CLASS)
    monkeypatch.setitem(datasets.REGISTRY, "imagenet-1k", mini)
    return mini


def _ground_truth(devkit: Path, stage: Path) -> list[str]:
    """What torchvision's parse_devkit_archive returns for the miniature devkit (it reads the
    id -> wnid table from data/meta.mat with scipy, which this venv lacks: the table is the
    fixture's)."""
    with tarfile.open(devkit) as t:
        text = t.extractfile("ILSVRC2012_devkit_t12/data/"
                             "ILSVRC2012_validation_ground_truth.txt").read().decode()
    return [DEVKIT_IDS[int(line)] for line in text.split()]


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    d = tmp_path / "data"
    monkeypatch.setenv("ITL_DATA", str(d))
    return d


@pytest.fixture
def no_scipy_devkit(monkeypatch):
    monkeypatch.setattr(imagenet1k, "val_labels", _ground_truth)


def _nothing_prepared(data_dir: Path) -> None:
    left = sorted(p.name for p in data_dir.iterdir()) if data_dir.exists() else []
    assert left == [], left  # neither imagenet-1k/ nor a staging folder


# ---------------------------------------------------------------- prepare, load, train


def test_the_archives_prepare_into_shards_that_train_and_evaluate(tmp_path, data_dir,
                                                                   monkeypatch, no_scipy_devkit):
    src = _archives(tmp_path / "ilsvrc")
    _miniature(monkeypatch, src)
    monkeypatch.setattr(shards, "SHARD", 4)  # 9 training images: shards of 4, 4 and 1
    assert datasets.prepare("imagenet-1k", src) == data_dir / "imagenet-1k"
    tr, te = data.load("imagenet-1k", "train", 256), data.load("imagenet-1k", "test", 256)
    assert isinstance(tr.x, DiskImages) and len(tr.x.shards) == 3
    assert tr.x.shape == (9, 3, 256, 256) and te.x.shape == (6, 3, 256, 256)
    assert tr.classes == te.classes == WNIDS
    assert tr.y.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2] and te.y.tolist() == [0, 0, 1, 1, 2, 2]
    # class order, then file name; each image warped to 256 x 256 (aspect ignored) once
    names = (data_dir / "imagenet-1k" / "test-files.txt").read_text().split()
    assert names == [f"ILSVRC2012_val_0000000{n}.JPEG" for n in (1, 4, 2, 5, 3, 6)]
    want = imagenet1k.warp(_train_images()[WNIDS[1]][f"{WNIDS[1]}_2.JPEG"], "x")
    assert torch.equal(tr.x[5], want) and torch.equal(tr.x[[5, 0]][0], want)
    assert torch.equal(tr.x[torch.tensor([8, 5, 0])], torch.stack([tr.x[8], want, tr.x[0]]))
    assert tr.x[3:6].shape == (3, 3, 256, 256) and tr.x[0][0].float().mean() > 150  # class 0 red
    # a subset, in the paper's units, reads nothing until a batch is drawn
    m = subsets.build("images-per-class=2", tr, "imagenet-1k", seed=0)
    assert len(m.indices) == 6  # 2 of each class's 3, not 2/1000 of them
    chosen = subsets.apply(m, tr)
    assert isinstance(chosen.x, DiskImages) and torch.equal(chosen.x[0], tr.x[m.indices[0]])
    cfg = train.PretrainConfig(model="caffenet", steps=1, batch_size=2, lr=0.001, crop_pad=0,
                               crop=227, caffe_param_groups=True)
    out = train.pretrain(cfg, chosen, subsets.apply(m, te, chosen_only=False), len(tr), 0,
                         tmp_path / "run")
    assert out["steps"] == 1 and out["train_images"] == 6 and 0 <= out["source_top1"] <= 100
    assert (tmp_path / "run" / "checkpoint.pt").is_file()
    rec = json.loads((data_dir / "imagenet-1k" / "source.json").read_text())
    assert rec["source"]["kind"] == "archives" and \
        rec["source"]["md5"][TRAIN] == _md5(src / TRAIN)
    assert data.fingerprint("imagenet-1k", 256) == rec["fingerprint"] != "imagenet-1k-unprepared"


def test_the_extracted_folders_give_the_same_bytes_as_the_archives(tmp_path, data_dir,
                                                                    monkeypatch,
                                                                    no_scipy_devkit):
    src = _archives(tmp_path / "ilsvrc")
    _miniature(monkeypatch, src)
    datasets.prepare("imagenet-1k", src)
    from_archives = data.fingerprint("imagenet-1k", 256)
    datasets.prepare("imagenet-1k", _folders(tmp_path / "extracted"))
    assert data.fingerprint("imagenet-1k", 256) == from_archives
    rec = json.loads((data_dir / "imagenet-1k" / "source.json").read_text())
    assert rec["source"]["kind"] == "folder"
    assert sorted(p.name for p in data_dir.iterdir()) == ["imagenet-1k"]  # no staging left


def test_status_shows_the_prepared_set_verified_and_a_damaged_shard_failing(
        tmp_path, data_dir, monkeypatch, capsys):
    _miniature(monkeypatch)
    datasets.prepare("imagenet-1k", _folders(tmp_path / "extracted"))
    assert cli.main(["data", "status", "--scale", "paper"]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if " imagenet-1k " in x)
    assert line.split()[:2] == ["paper", "imagenet-1k"]
    assert f"{VERIFIED}: 9 train and 6 test images, 3 classes, at 256x256 px " \
           "in 2 shards" in line and "GB on disk; from folder" in line
    with (data_dir / "imagenet-1k" / "train-000.u8").open("ab") as f:
        f.write(b"\0")
    st = datasets.get("imagenet-1k").status()
    assert st.state == FAILING and "train-000.u8 has 1,769,473 bytes where" in st.detail
    with pytest.raises(DataError, match="prepare it again: run `itl data prepare imagenet-1k"):
        data.load("imagenet-1k", "train", 256)
    with pytest.raises(DataError, match="prepared at 256 px only"):
        data.load("imagenet-1k", "train", 64)


def test_the_real_entry_reads_torchvisions_md5s_and_counts_in_images():
    published = torchvision.datasets.imagenet.ARCHIVE_META
    assert [(a.name, a.md5) for a in IMAGENET_1K.archives] == \
        [published[k] for k in ("train", "val", "devkit")]
    assert len(IMAGENET_1K.classes) == 1000 and IMAGENET_1K.train_images == 1_281_167
    assert datasets.get("imagenet-1k") is IMAGENET_1K
    assert "missing: run `itl data prepare imagenet-1k --from PATH` with PATH the folder " \
           "holding ILSVRC2012_img_train.tar" in str(IMAGENET_1K.status())


# ---------------------------------------------------------------- bad sources


def test_an_archive_under_its_official_name_must_have_the_published_md5(tmp_path, data_dir,
                                                                         capsys):
    src = _archives(tmp_path / "ilsvrc")  # the real entry: the published md5s
    assert cli.main(["data", "prepare", "imagenet-1k", "--from", str(src)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and f"{src / TRAIN} is not imagenet-1k: md5 {_md5(src / TRAIN)}, " \
        "expected 1d675b47d978889d74fa0da5fadfb00e (the published md5 of " \
        "ILSVRC2012_img_train.tar)" in err[0], err
    _nothing_prepared(data_dir)


def test_a_truncated_tar_is_one_error_and_nothing_is_prepared(tmp_path, data_dir, monkeypatch,
                                                              no_scipy_devkit):
    src = _archives(tmp_path / "ilsvrc")
    blob = (src / TRAIN).read_bytes()
    (src / TRAIN).write_bytes(blob[:len(blob) * 2 // 3])  # cut inside a class's tar
    _miniature(monkeypatch, src)  # whose md5s say so: only the tar's own reading can tell
    with pytest.raises(DataError, match=r"cannot read .*ILSVRC2012_img_train.tar.*truncated"):
        datasets.prepare("imagenet-1k", src)
    _nothing_prepared(data_dir)


def test_a_missing_devkit_names_the_three_archives(tmp_path, data_dir, monkeypatch):
    src = _archives(tmp_path / "ilsvrc")
    _miniature(monkeypatch, src)
    (src / DEVKIT).unlink()
    with pytest.raises(DataError, match=rf"has no {DEVKIT}: put the official {TRAIN}, {VAL}, "
                                        rf"{DEVKIT} in one folder"):
        datasets.prepare("imagenet-1k", src)
    _nothing_prepared(data_dir)


def test_without_scipy_the_devkit_is_one_line_naming_the_fix(tmp_path, data_dir, monkeypatch):
    monkeypatch.setitem(sys.modules, "scipy", None)  # as if it were not installed: importing
    monkeypatch.setitem(sys.modules, "scipy.io", None)  # it raises ImportError
    src = _archives(tmp_path / "ilsvrc")
    _miniature(monkeypatch, src)
    with pytest.raises(DataError, match=r"needs scipy .*`pip install scipy`, or pass the "
                                        r"extracted layout"):
        datasets.prepare("imagenet-1k", src)
    _nothing_prepared(data_dir)


def test_the_devkit_is_read_by_torchvision(tmp_path, monkeypatch):
    """With scipy: a meta.mat as the real devkit holds it (leaf synsets with num_children 0, a
    parent with children), read by torchvision's parse_devkit_archive."""
    sio = pytest.importorskip("scipy.io")
    import numpy as np
    src = _archives(tmp_path / "ilsvrc")
    rows = [(i, w, f"words {w}", "gloss", 0, np.array([]), 0, 3) for i, w in DEVKIT_IDS.items()]
    rows.append((1001, "n00000001", "parent", "gloss", 3, np.array([1, 2, 3]), 1, 0))
    fields = ("ILSVRC2012_ID", "WNID", "words", "gloss", "num_children", "children",
              "wordnet_height", "num_train_images")
    synsets = np.array(rows, dtype=[(f, object) for f in fields])
    mat = io.BytesIO()
    sio.savemat(mat, {"synsets": synsets})
    with tarfile.open(src / DEVKIT) as t:
        gt = t.extractfile("ILSVRC2012_devkit_t12/data/"
                           "ILSVRC2012_validation_ground_truth.txt").read()
    write_tar(src / DEVKIT, {"ILSVRC2012_devkit_t12/data/ILSVRC2012_validation_ground_truth.txt":
                             gt, "ILSVRC2012_devkit_t12/data/meta.mat": mat.getvalue()})
    monkeypatch.setitem(torchvision.datasets.imagenet.ARCHIVE_META, "devkit",
                        (DEVKIT, _md5(src / DEVKIT)))  # torchvision checks the md5 again
    (tmp_path / "stage").mkdir()
    assert imagenet1k.val_labels(src / DEVKIT, tmp_path / "stage") == VAL_WNIDS


def test_a_folder_that_is_not_imagenet_is_refused_before_decoding(tmp_path, data_dir,
                                                                   monkeypatch):
    _miniature(monkeypatch)
    root = _folders(tmp_path / "extracted")
    (root / "val" / WNIDS[0] / "ILSVRC2012_val_00000001.JPEG").unlink()
    monkeypatch.setattr(imagenet1k, "warp", lambda *a: pytest.fail("decoded"))
    with pytest.raises(DataError, match=f"found 1 validation images of {WNIDS[0]}, expected 2"):
        datasets.prepare("imagenet-1k", root)
    (root / "train" / "n99999999").mkdir()
    (root / "train" / "n99999999" / "a.JPEG").write_bytes(_jpeg(0, 0))
    with pytest.raises(DataError, match="train/ holds 4 classes where ImageNet-1k has 3; not "
                                        "in it: n99999999"):
        datasets.prepare("imagenet-1k", root)
    _nothing_prepared(data_dir)


def test_a_preparation_that_dies_midway_leaves_nothing_that_looks_prepared(
        tmp_path, data_dir, monkeypatch):
    _miniature(monkeypatch)
    calls, real = [], imagenet1k.warp

    def dies(blob, name):
        calls.append(name)
        if len(calls) == 5:
            raise KeyboardInterrupt  # as a killed process stops
        return real(blob, name)
    monkeypatch.setattr(imagenet1k, "warp", dies)
    with pytest.raises(KeyboardInterrupt):
        datasets.prepare("imagenet-1k", _folders(tmp_path / "extracted"))
    _nothing_prepared(data_dir)
    assert not datasets.get("imagenet-1k").present()


# ---------------------------------------------------------------- images per class


def _fake_source(counts: list[int], classes: tuple[str, ...]) -> ImageSet:
    y = torch.cat([torch.full((n,), k) for k, n in enumerate(counts)])
    return ImageSet(torch.zeros(len(y), 3, 1, 1, dtype=torch.uint8), y, classes)


def test_images_per_class_counts_images_on_imagenet_and_shares_on_stand_ins():
    src = _fake_source([1300, 732, 400], WNIDS)
    m = subsets.build("images-per-class=500", src, "imagenet-1k", seed=0)
    got = torch.bincount(src.y[m.indices], minlength=3).tolist()
    assert got == [500, 500, 400]  # the paper's 500; a class with fewer keeps all of its own
    m = subsets.build("images-per-class=500", src, "tiny-imagenet-200", seed=0)
    assert torch.bincount(src.y[m.indices], minlength=3).tolist() == [650, 650, 400]
    assert subsets.counts_images("imagenet-1k:main+imagenet-1k:extra")
    assert not subsets.counts_images("tiny-imagenet-200") and not subsets.counts_images("smoke")


# ---------------------------------------------------------------- images on disk


def test_disk_images_gather_pick_and_join_without_reading(tmp_path):
    whole = torch.arange(7 * 3 * 2 * 2, dtype=torch.int64).remainder(251).to(torch.uint8)
    whole = whole.reshape(7, 3, 2, 2)
    x = DiskImages([whole[:3], whole[3:4], whole[4:]])
    assert x.shape == whole.shape and len(x) == 7 and x.numel() == whole.numel()
    for key in (2, -1, slice(1, 6), [6, 0, 3], torch.tensor([4, 4, 1])):
        assert torch.equal(x[key], whole[key])
    view = x.pick(torch.tensor([5, 1, 3]))
    assert isinstance(view, DiskImages) and torch.equal(view[:], whole[[5, 1, 3]])
    assert torch.equal(view[1], whole[1]) and torch.equal(view.to("cpu"), whole[[5, 1, 3]])
    images = ImageSet(x, torch.tensor([0, 1, 0, 1, 0, 1, 0]), ("a", "b"))
    picked = relabel(images, {"b": "b"}, ["b"], [1, 2, 3, 5])
    assert isinstance(picked.x, DiskImages) and torch.equal(picked.x[:], whole[[1, 3, 5]])
    joined = concat([picked, ImageSet(whole[:2], torch.tensor([0, 0]), ("c",))])
    assert isinstance(joined.x, DiskImages) and joined.classes == ("b", "c")
    assert torch.equal(joined.x[:], whole[[1, 3, 5, 0, 1]])
    assert joined.y.tolist() == [0, 0, 0, 1, 1]
    with pytest.raises(ValueError, match="one image shape"):
        DiskImages([whole, whole[:, :, :1]])


def test_a_staging_folder_is_where_shards_are_written(tmp_path, data_dir, monkeypatch):
    """The shards are written inside the staging folder, renamed into place at the end."""
    _miniature(monkeypatch)
    seen = []
    real = shards.Writer.add

    def add(self, *a):
        seen.append(self.folder.parent.name)
        return real(self, *a)
    monkeypatch.setattr(shards.Writer, "add", add)
    datasets.prepare("imagenet-1k", _folders(tmp_path / "extracted"))
    assert seen and all(s.startswith(staging.STAGING) for s in seen)


def test_the_cli_prepares_at_256_px_and_refuses_another_size(tmp_path, data_dir, monkeypatch,
                                                              capsys):
    _miniature(monkeypatch)
    root = _folders(tmp_path / "extracted")
    assert cli.main(["data", "prepare", "imagenet-1k", "--from", str(root), "--size", "64"]) == 2
    assert "imagenet-1k is prepared at 256 px only (Caffe's 256 x 256), not 64: leave out " \
           "--size" in capsys.readouterr().err
    _nothing_prepared(data_dir)
    assert cli.main(["data", "prepare", "imagenet-1k", "--from", str(root)]) == 0
    out = capsys.readouterr().out
    assert "imagenet-1k train: 9 images, 3 classes, (3, 256, 256)" in out
    assert "imagenet-1k test: 6 images, 3 classes, (3, 256, 256)" in out
