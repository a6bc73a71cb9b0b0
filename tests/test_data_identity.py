"""Bad input never passes silently: a source that is not the data set it is offered as, a cache
without (or against) its record, a malformed SHA256SUMS, an abandoned staging folder. Every
input is fabricated in a temporary folder and takes seconds."""
import dataclasses
import hashlib
import json
import os
import pickle
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import torch
import torchvision

from itl import data, datasets, paths
from itl.datasets import checksums, images, records
from itl.datasets.entry import Archive
from archives import write_shards, write_tar

G = torch.Generator().manual_seed(1)


def _jpeg(size: int = 16, width: int | None = None) -> bytes:
    """A random JPEG, size x size px (size x width: `size` rows of `width`)."""
    x = torch.randint(0, 256, (3, size, width or size), dtype=torch.uint8, generator=G)
    return torchvision.io.encode_jpeg(x).numpy().tobytes()


def expect(monkeypatch, name: str, **changes) -> None:
    """Replace data set `name`'s registry entry by a miniature one for a fabricated source."""
    monkeypatch.setitem(datasets.REGISTRY, name,
                        dataclasses.replace(datasets.REGISTRY[name], **changes))


def _nothing_prepared(root: Path, name: str) -> bool:
    return not (root / name).exists() and not list(root.glob(".staging-*"))


def _tiny_files(classes=("n01443537", "n02094433"), per_class=3) -> dict[str, bytes]:
    files = {"tiny-imagenet-200/wnids.txt": "\n".join(classes).encode()}
    for c in classes:
        for i in range(per_class):
            files[f"tiny-imagenet-200/train/{c}/images/{c}_{i}.JPEG"] = _jpeg()
    ann = []
    for i, c in enumerate(classes * 2):
        files[f"tiny-imagenet-200/val/images/val_{i}.JPEG"] = _jpeg()
        ann.append(f"val_{i}.JPEG\t{c}\t0\t0\t10\t10")
    files["tiny-imagenet-200/val/val_annotations.txt"] = "\n".join(ann).encode()
    return files


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    d = tmp_path / "data"
    monkeypatch.setenv("ITL_DATA", str(d))
    return d


# ---------------------------------------------------------------- the real identities


def test_real_identities_are_the_full_data_sets():
    tiny, cifar = datasets.REGISTRY["tiny-imagenet-200"], datasets.REGISTRY["cifar-10"]
    scene, bccd = datasets.REGISTRY["15-scene"], datasets.REGISTRY["bccd"]
    assert len(set(tiny.classes)) == 200 and list(tiny.classes) == sorted(tiny.classes)
    assert all(len(w) == 9 and w[0] == "n" and w[1:].isdigit() for w in tiny.classes)
    assert (sum(tiny.counts("train")), sum(tiny.counts("test"))) == (100_000, 10_000)
    assert tiny.image_size == (64, 64)
    assert tiny.archives == (Archive("tiny-imagenet-200.zip",
                                     md5="90528d7ca1a48142e341f4ef8d21d0de"),)
    assert cifar.classes == ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog",
                             "horse", "ship", "truck")
    assert (sum(cifar.counts("train")), sum(cifar.counts("test"))) == (50_000, 10_000)
    assert cifar.image_size == (32, 32)
    assert cifar.archives == (Archive("cifar-10-python.tar.gz",
                                      md5="c58f30108f718f92721af3b95e74349a"),)
    assert len(scene.classes) == 15 and scene.counts("train") == (100,) * 15
    assert sum(scene.counts("test")) == 2985
    assert sum(scene.counts("train")) + sum(scene.counts("test")) == 4485
    assert set(scene.aliases.values()) <= set(scene.classes)
    assert bccd.classes == ("Platelets", "RBC", "WBC") and bccd.image_size == (480, 640)
    assert bccd.split_sizes == {"train": 205, "val": 87, "trainval": 292, "test": 72}


# ---------------------------------------------------------------- the wrong data set


def _scene_layout(prefix: str = "15-scene") -> dict[str, bytes]:
    """15-Scene's real shape (its 15 class folders, 100 training images each and its 2,985 test
    images), every file the same tiny JPEG: the check refuses it before decoding any."""
    ident, blob = datasets.REGISTRY["15-scene"], _jpeg()
    return {f"{prefix}/{split}/{c}/{i:04d}.jpg": blob
            for split in ("train", "test")
            for c, n in zip(ident.classes, ident.counts(split)) for i in range(n)}


@pytest.fixture(scope="module")
def scene_archive(tmp_path_factory) -> Path:
    return write_tar(tmp_path_factory.mktemp("scene") / "cifar-10-train.tar.gz", _scene_layout())


def test_15_scene_offered_as_cifar_10_is_refused(scene_archive, data_dir, monkeypatch):
    decoded = []
    monkeypatch.setattr(images, "decode_rgb", lambda f: decoded.append(f))
    with pytest.raises(data.DataError) as e:
        datasets.prepare("cifar-10", scene_archive)
    msg = str(e.value)
    assert "\n" not in msg and str(scene_archive) in msg and "is not cifar-10" in msg
    assert "found 15 classes" in msg and "expected 10 (airplane" in msg and "bedroom" in msg
    assert "itl data prepare cifar-10 --from PATH" in msg
    assert not decoded and _nothing_prepared(data_dir, "cifar-10")


def test_the_command_exits_2_with_one_line(scene_archive, data_dir, capsys):
    from itl import cli
    assert cli.main(["data", "prepare", "cifar-10", "--from", str(scene_archive)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("itl: error: ") and err.count("\n") == 1 and "is not cifar-10" in err
    assert _nothing_prepared(data_dir, "cifar-10")


def test_15_scene_shards_folder_offered_as_cifar_10_is_refused(tmp_path, data_dir):
    shards = tmp_path / "shards"
    write_shards(shards, {"cifar-10/cifar-10-train.tar.gz": _scene_layout("cifar-10")})
    with pytest.raises(data.DataError, match=r"is not cifar-10: found 15 classes"):
        datasets.prepare("cifar-10", shards)
    assert _nothing_prepared(data_dir, "cifar-10")


def test_lazebnik_class_folders_offered_as_cifar_10_are_refused(tmp_path, data_dir):
    files = {f"scene_categories/{c}/image_{i:04d}.jpg": _jpeg()
             for c in ("MITcoast", "MITforest", "bedroom") for i in range(3)}
    with pytest.raises(data.DataError, match=r"is not cifar-10: found 3 classes .*coast"):
        datasets.prepare("cifar-10", write_tar(tmp_path / "scenes.tar.gz", files))


def test_lazebnik_folder_names_become_the_shards_class_names(tmp_path, data_dir, monkeypatch):
    expect(monkeypatch, "15-scene", classes=("bedroom", "coast", "suburb"),
           per_class={"train": 2, "test": 1})
    files = {f"scene_categories/{c}/image_{i:04d}.jpg": _jpeg()
             for c in ("CALsuburb", "MITcoast", "bedroom") for i in range(3)}
    datasets.prepare("15-scene", write_tar(tmp_path / "scenes.tar.gz", files))
    assert data.load("15-scene", "train").classes == ("bedroom", "coast", "suburb")


def test_a_cifar_subset_is_refused_by_its_counts(tmp_path, data_dir, monkeypatch):
    expect(monkeypatch, "cifar-10", classes=("cat", "dog"), per_class={"train": 3, "test": 2})
    files = {f"cifar-10/{s}/{c}/{i}.jpg": _jpeg()
             for s, n in (("train", 2), ("test", 2)) for c in ("cat", "dog") for i in range(n)}
    with pytest.raises(data.DataError,
                       match=r"found 4 train images .*\(cat: 2\), expected 6 \(cat: 3\)"):
        datasets.prepare("cifar-10", write_tar(tmp_path / "c.tar.gz", files))
    assert _nothing_prepared(data_dir, "cifar-10")


def test_images_of_another_size_are_refused(tmp_path, data_dir, monkeypatch):
    expect(monkeypatch, "cifar-10", classes=("cat",), per_class={"train": 2, "test": 1})
    files = {f"cifar-10/{s}/cat/{i}.jpg": _jpeg(24)
             for s, n in (("train", 2), ("test", 1)) for i in range(n)}
    with pytest.raises(data.DataError, match=r"found train images of 24x24 px, expected 32x32"):
        datasets.prepare("cifar-10", write_tar(tmp_path / "c.tar.gz", files))
    assert _nothing_prepared(data_dir, "cifar-10")


def test_official_archive_name_with_another_md5_is_refused(tmp_path, data_dir):
    f = write_tar(tmp_path / "cifar-10-python.tar.gz", {"cifar-10-batches-py/batches.meta": b"x"})
    with pytest.raises(data.DataError, match=r"cifar-10-python.tar.gz is not cifar-10: md5 "
                                             r"[0-9a-f]{32}, expected c58f30108f718f92721af3b9"):
        datasets.prepare("cifar-10", f)
    f = tmp_path / "tiny-imagenet-200.zip"
    f.write_bytes(b"PK not the real zip")
    with pytest.raises(data.DataError, match=r"expected 90528d7ca1a48142e341f4ef8d21d0de"):
        datasets.prepare("tiny-imagenet-200", f)


def test_tiny_imagenet_with_other_wnids_is_refused(tmp_path, data_dir):
    with pytest.raises(data.DataError, match=r"is not tiny-imagenet-200: found 2 classes .*"
                                             r"expected 200 \(n01443537"):
        datasets.prepare("tiny-imagenet-200", write_tar(tmp_path / "t.tar.gz", _tiny_files()))


def test_tiny_imagenet_bad_val_annotation_line_is_named(tmp_path, data_dir):
    files = _tiny_files()
    files["tiny-imagenet-200/val/val_annotations.txt"] += b"\nval_9.JPEG n99999999\t0"
    with pytest.raises(data.DataError, match=r"val_annotations.txt line 5 is not IMAGE<TAB>"):
        datasets.prepare("tiny-imagenet-200", write_tar(tmp_path / "t.tar.gz", files))


def test_a_broken_cifar_batch_is_named(tmp_path, data_dir):
    files = {f"cifar-10-batches-py/data_batch_{i}": pickle.dumps({b"data": b"xx", b"labels": []})
             for i in range(1, 6)}
    files["cifar-10-batches-py/test_batch"] = files["cifar-10-batches-py/data_batch_1"]
    files["cifar-10-batches-py/batches.meta"] = pickle.dumps({b"label_names": [b"cat"]})
    with pytest.raises(data.DataError, match=r"data_batch_1 is not a CIFAR-10 batch"):
        datasets.prepare("cifar-10", write_tar(tmp_path / "batches.tar.gz", files))


# ---------------------------------------------------------------- BCCD (VOC)


def _voc_xml(objects, size=(640, 480)) -> bytes:
    objs = "".join(f"<object><name>{n}</name><difficult>0</difficult><bndbox><xmin>1</xmin>"
                   f"<ymin>2</ymin><xmax>30</xmax><ymax>40</ymax></bndbox></object>"
                   for n in objects)
    return (f"<annotation><size><width>{size[0]}</width><height>{size[1]}</height>"
            f"<depth>3</depth></size>{objs}</annotation>").encode()


def _bccd(names=("RBC", "WBC", "Platelets"), size=(640, 480)) -> dict[str, bytes]:
    files = {}
    for i, n in enumerate(names):
        files[f"BCCD/Annotations/img_{i}.xml"] = _voc_xml([n], size)
        files[f"BCCD/JPEGImages/img_{i}.jpg"] = _jpeg(size[1], size[0])  # as <size> says
    ids = [f"img_{i}" for i in range(len(names))]
    test = [f"test_{i}" for i in range(len(names))]  # apart from trainval, as VOC's test is
    for i in test:  # no objects: the boxes and classes are trainval's
        files[f"BCCD/Annotations/{i}.xml"] = _voc_xml([], size)
        files[f"BCCD/JPEGImages/{i}.jpg"] = _jpeg(size[1], size[0])
    for split, part in (("train", ids[:2]), ("val", ids[2:]), ("trainval", ids), ("test", test)):
        files[f"BCCD/ImageSets/Main/{split}.txt"] = "\n".join(part).encode()
    return files


@pytest.fixture
def mini_bccd(monkeypatch):
    expect(monkeypatch, "bccd", split_sizes={"train": 2, "val": 1, "trainval": 3, "test": 3})


def test_bccd_miniature_is_installed_with_its_record(tmp_path, data_dir, mini_bccd):
    root = datasets.prepare("bccd", write_tar(tmp_path / "bccd.tar.gz", _bccd()))
    rec = json.loads((root / "source.json").read_text())
    assert rec["boxes"] == {"Platelets": 1, "RBC": 1, "WBC": 1} and rec["images"]["test"] == 3


def test_bccd_with_another_class_is_refused(tmp_path, data_dir, mini_bccd):
    with pytest.raises(data.DataError, match=r"is not bccd: found 3 classes in its annotations"
                                             r".*not in bccd: Neutrophil"):
        datasets.prepare("bccd", write_tar(tmp_path / "b.tar.gz",
                                           _bccd(("RBC", "WBC", "Neutrophil"))))
    assert _nothing_prepared(data_dir, "BCCD")


def test_bccd_with_other_split_sizes_or_image_size_is_refused(tmp_path, data_dir, monkeypatch):
    with pytest.raises(data.DataError, match=r"found 2 images in ImageSets/Main/train.txt, "
                                             r"expected 205"):
        datasets.prepare("bccd", write_tar(tmp_path / "b.tar.gz", _bccd()))
    expect(monkeypatch, "bccd", split_sizes={"train": 2, "val": 1, "trainval": 3, "test": 3})
    with pytest.raises(data.DataError, match=r"found annotated image sizes of 320x240 px, "
                                             r"expected 640x480"):
        datasets.prepare("bccd", write_tar(tmp_path / "c.tar.gz", _bccd(size=(320, 240))))


def test_bccd_malformed_xml_is_one_error_naming_the_file(tmp_path, data_dir, mini_bccd):
    files = _bccd()
    files["BCCD/Annotations/img_1.xml"] = b"<annotation><object><name>RBC</name></object>"
    with pytest.raises(data.DataError, match=r"unreadable annotation .*img_1.xml"):
        datasets.prepare("bccd", write_tar(tmp_path / "b.tar.gz", files))
    assert _nothing_prepared(data_dir, "BCCD")


# ---------------------------------------------------------------- the record beside a cache


def _mini_scene(tmp_path, monkeypatch) -> Path:
    expect(monkeypatch, "15-scene", classes=("a", "b"), per_class={"train": 2, "test": 1})
    files = {f"15-scene/{s}/{c}/{i}.jpg": _jpeg()
             for s, n in (("train", 2), ("test", 1)) for c in ("a", "b") for i in range(n)}
    return write_tar(tmp_path / "s.tar.gz", files)


def test_record_says_what_the_cache_was_built_from(tmp_path, data_dir, monkeypatch):
    src = _mini_scene(tmp_path, monkeypatch)
    folder = datasets.prepare("15-scene", src)
    rec = json.loads((folder / "source.json").read_text())
    assert rec["dataset"] == "15-scene" and rec["source"]["path"] == str(src.resolve())
    assert rec["source"]["kind"] == "archive"
    assert rec["source"]["sha256"] == hashlib.sha256(src.read_bytes()).hexdigest()
    assert rec["source"]["md5"] == hashlib.md5(src.read_bytes()).hexdigest()
    assert rec["classes"] == ["a", "b"] and rec["images"] == {"train": [2, 2], "test": [1, 1]}
    assert rec["original_image_size"] == [16, 16] and set(rec["sizes"]) == {"64", "32"}
    # the fingerprint files keep their format and formula (run store keys depend on them)
    for px, fp in ((64, "fingerprint"), (32, "fingerprint-32")):
        digest = hashlib.sha256()
        for split in ("test", "train"):
            digest.update(hashlib.sha256(
                (folder / f"cache-{px}-{split}.pt").read_bytes()).hexdigest().encode())
        want = f"15-scene-{digest.hexdigest()[:16]}"
        assert (folder / fp).read_text() == want + "\n"
        assert rec["sizes"][str(px)]["fingerprint"] == want
        assert data.fingerprint("15-scene", px) == want


def test_reading_hashes_each_cache_once_per_process_and_version(tmp_path, data_dir,
                                                                monkeypatch):
    datasets.prepare("15-scene", _mini_scene(tmp_path, monkeypatch))
    hashed = []
    real = paths.sha256_file
    monkeypatch.setattr(paths, "sha256_file", lambda f: hashed.append(Path(f).name) or real(f))
    assert len(data.load("15-scene", "train", 32)) == 4
    assert len(data.load("15-scene", "train", 32)) == 4
    assert hashed.count("cache-32-train.pt") == 1  # the first read hashed it, the second not


def test_a_shards_record_lists_every_shard_sum(tmp_path, data_dir, monkeypatch):
    expect(monkeypatch, "15-scene", classes=("a",), per_class={"train": 1, "test": 1})
    shards = tmp_path / "shards"
    f = write_tar(shards / "15-scene" / "15-scene.tar.gz",
                  {f"15-scene/{s}/a/0.jpg": _jpeg() for s in ("train", "test")})
    digest = hashlib.sha256(f.read_bytes()).hexdigest()
    (shards / "SHA256SUMS").write_text(f"{digest} *15-scene/15-scene.tar.gz\n")
    rec = json.loads((datasets.prepare("15-scene", shards) / "source.json").read_text())
    assert rec["source"] == {"path": str(shards.resolve()), "kind": "shards",
                             "sha256": {"15-scene/15-scene.tar.gz": digest}}


def test_missing_record_is_refused_and_adopting_the_folder_keeps_its_fingerprint(
        tmp_path, data_dir, monkeypatch):
    folder = datasets.prepare("15-scene", _mini_scene(tmp_path, monkeypatch))
    fingerprints = {f.name: f.read_text() for f in folder.glob("fingerprint*")}
    (folder / "source.json").unlink()  # a cache built before records
    with pytest.raises(data.DataError) as e:
        data.load("15-scene", "train")
    msg = str(e.value)
    assert "source.json is missing" in msg and "itl data prepare 15-scene --from PATH" in msg
    assert "\n" not in msg
    assert datasets.prepare("15-scene", folder) == folder  # adopt in place: nothing rebuilt
    rec = json.loads((folder / "source.json").read_text())
    assert rec["source"]["kind"] == "adopted" and rec["images"]["train"] == [2, 2]
    assert {f.name: f.read_text() for f in folder.glob("fingerprint*")} == fingerprints
    assert len(data.load("15-scene", "train")) == 4


def test_a_prepared_folder_given_again_or_copied_keeps_its_record(tmp_path, data_dir,
                                                                  monkeypatch):
    folder = datasets.prepare("15-scene", _mini_scene(tmp_path, monkeypatch))
    before = json.loads((folder / "source.json").read_text())
    assert datasets.prepare("15-scene", folder) == folder
    copy = tmp_path / "elsewhere" / "15-scene"
    shutil.copytree(folder, copy)
    shutil.rmtree(folder)
    assert datasets.prepare("15-scene", copy) == folder
    after = json.loads((folder / "source.json").read_text())
    assert after["source"] == before["source"] and after["source"]["kind"] == "archive"
    assert {k: after[k] for k in ("classes", "images", "original_image_size", "sizes")} == \
        {k: before[k] for k in ("classes", "images", "original_image_size", "sizes")}


def test_adopting_a_cache_of_another_data_set_is_refused(tmp_path, data_dir, monkeypatch):
    folder = datasets.prepare("15-scene", _mini_scene(tmp_path, monkeypatch))
    other = tmp_path / "old-itl" / "cifar-10"
    shutil.copytree(folder, other)
    (other / "source.json").unlink()
    with pytest.raises(data.DataError, match=r"is not cifar-10: found 2 classes in .*"
                                             r"cache-64-test.pt \(a, b\), expected 10"):
        datasets.prepare("cifar-10", other)
    assert _nothing_prepared(data_dir, "cifar-10")


def test_adopting_caches_that_changed_after_their_fingerprint_is_refused(
        tmp_path, data_dir, monkeypatch):
    folder = datasets.prepare("15-scene", _mini_scene(tmp_path, monkeypatch))
    (folder / "source.json").unlink()
    (folder / "fingerprint-32").write_text("15-scene-0000000000000000\n")
    with pytest.raises(data.DataError, match=r"fingerprint-32 says 15-scene-0000000000000000 "
                                             r"but the caches beside it hash to"):
        datasets.prepare("15-scene", folder)


def test_a_record_of_other_classes_is_refused(tmp_path, data_dir, monkeypatch):
    datasets.prepare("15-scene", _mini_scene(tmp_path, monkeypatch))
    expect(monkeypatch, "15-scene", classes=("a", "c"))  # what itl now expects
    with pytest.raises(data.DataError, match=r"source.json records 2 classes \(a, b\) where "
                                             r"15-scene has 2 \(a, c\); run `itl data prepare"):
        data.load("15-scene", "train")


def test_a_cache_swapped_after_preparing_is_refused(tmp_path, data_dir, monkeypatch):
    folder = datasets.prepare("15-scene", _mini_scene(tmp_path, monkeypatch))
    torch.save({"x": torch.zeros(3, 3, 64, 64, dtype=torch.uint8),
                "y": torch.tensor([0, 1, 1]), "classes": ["a", "b"]}, folder / "cache-64-test.pt")
    with pytest.raises(data.DataError, match=r"cache-64-test.pt has [\d,]+ bytes where .*"
                                             r"source.json records [\d,]+: changed since"):
        data.load("15-scene", "test")
    rec = json.loads((folder / "source.json").read_text())  # a record made to match the size
    rec["sizes"]["64"]["files"]["cache-64-test.pt"] = (folder / "cache-64-test.pt").stat().st_size
    (folder / "source.json").write_text(json.dumps(rec))
    with pytest.raises(data.DataError, match=r"cache-64-test.pt changed since it was prepared: "
                                             r"its sha256 is not the [0-9a-f]{16}\.\.\. that"):
        data.load("15-scene", "test")
    sums = rec["sizes"]["64"]["sha256"]  # ... and its sha256, and the fingerprint they make
    sums["cache-64-test.pt"] = hashlib.sha256((folder / "cache-64-test.pt").read_bytes()
                                              ).hexdigest()
    rec["sizes"]["64"]["fingerprint"] = records.fingerprint_of(
        "15-scene", {s: sums[f"cache-64-{s}.pt"] for s in ("train", "test")})
    (folder / "source.json").write_text(json.dumps(rec))
    (folder / "fingerprint").write_text(rec["sizes"]["64"]["fingerprint"] + "\n")
    with pytest.raises(data.DataError, match=r"cache-64-test.pt holds 3 images where the "
                                             r"record has 2"):
        data.load("15-scene", "test")


def test_a_fingerprint_file_that_disagrees_with_the_record_is_refused(
        tmp_path, data_dir, monkeypatch):
    folder = datasets.prepare("15-scene", _mini_scene(tmp_path, monkeypatch))
    (folder / "fingerprint").write_text("15-scene-ffffffffffffffff\n")
    with pytest.raises(data.DataError, match=r"fingerprint does not hold the fingerprint "
                                             r"15-scene-[0-9a-f]{16} that .*source.json records"):
        data.load("15-scene", "train")


def test_a_torch_file_that_is_not_an_image_cache_is_named(tmp_path):
    f = tmp_path / "cache.pt"
    torch.save({"x": torch.zeros(2, 3, 8, 8), "y": torch.tensor([0, 1]), "classes": ["a"]}, f)
    with pytest.raises(data.DataError, match=r"cache.pt is not an itl image cache .*"
                                             r"torch.float32 images"):
        images.read_cache(f, "prepare it again")
    torch.save([1, 2], f)
    with pytest.raises(data.DataError, match=r"is not an itl image cache .* holds keys list"):
        images.read_cache(f, "prepare it again")


# ---------------------------------------------------------------- SHA256SUMS


def _sum(blob: bytes) -> str:
    return hashlib.sha256(blob).hexdigest()


def test_every_sha256sum_format_is_read(tmp_path):
    a, b = _sum(b"a"), _sum(b"b")
    sums = tmp_path / "SHA256SUMS"
    sums.write_bytes("\n".join([
        f"{a}  ./x/text.tar.gz",
        f"{b} *x/binary.tar.gz",
        f"\\{a}  x/back\\\\slash\\nnewline.tar.gz",
        f"SHA256 (x/tag (1).tar.gz) = {b}",
        f"\\SHA256 (x/tag\\\\escaped.tar.gz) = {a.upper()}",
        f"{a}   x/leading space.tar.gz",
        "",
        f"{b}  x/crlf.tar.gz\r",
    ]).encode() + b"\n")
    assert checksums.read_sums(sums) == [
        (a, "./x/text.tar.gz"), (b, "x/binary.tar.gz"), (a, "x/back\\slash\nnewline.tar.gz"),
        (b, "x/tag (1).tar.gz"), (a, "x/tag\\escaped.tar.gz"), (a, " x/leading space.tar.gz"),
        (b, "x/crlf.tar.gz")]


@pytest.mark.skipif(shutil.which("sha256sum") is None, reason="no sha256sum on this machine")
def test_what_sha256sum_itself_writes_is_read(tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    names = ["plain.tar.gz", "with space.tar.gz", "back\\slash.tar.gz", "new\nline.tar.gz"]
    for i, n in enumerate(names):
        (d / n).write_bytes(bytes([i]) * 10)
    want = [(_sum(bytes([i]) * 10), n) for i, n in enumerate(names)]
    for flags in ([], ["-b"], ["--tag"]):
        out = subprocess.run(["sha256sum", *flags, *names], cwd=d, capture_output=True,
                             check=True).stdout
        (tmp_path / "SHA256SUMS").write_bytes(out)
        assert checksums.read_sums(tmp_path / "SHA256SUMS") == want, flags


@pytest.mark.parametrize("line", [
    "abc  x/short.tar.gz",
    f"{'g' * 64}  x/not-hex.tar.gz",
    f"{_sum(b'a')} x/one-space.tar.gz",
    f"{_sum(b'a')}  ",
    f"MD5 (x/a.tar.gz) = {'0' * 32}",
    f"\\{_sum(b'a')}  x/bad\\qescape.tar.gz",
    "just some text",
])
def test_a_malformed_sums_line_is_named_with_its_number(tmp_path, line):
    sums = tmp_path / "SHA256SUMS"
    sums.write_text(f"{_sum(b'a')}  x/fine.tar.gz\n\n{line}\n")
    with pytest.raises(data.DataError) as e:
        checksums.read_sums(sums)
    assert f"{sums} line 3 is not a sha256sum line" in str(e.value)
    assert "\n" not in str(e.value)


def test_verified_shards_in_binary_and_tag_format(tmp_path):
    f1 = write_tar(tmp_path / "15-scene" / "a.tar.gz", {"x": b"1"})
    f2 = write_tar(tmp_path / "15-scene" / "b.tar.gz", {"y": b"2"})
    (tmp_path / "SHA256SUMS").write_text(f"{_sum(f1.read_bytes())} *15-scene/a.tar.gz\n"
                                         f"SHA256 (./15-scene/b.tar.gz) = "
                                         f"{_sum(f2.read_bytes())}\n")
    assert list(checksums.verified_shards(tmp_path, "15-scene")) == [f1, f2]


def test_a_shard_missing_from_the_sums_is_refused(tmp_path):
    f1 = write_tar(tmp_path / "15-scene" / "a.tar.gz", {"x": b"1"})
    write_tar(tmp_path / "15-scene" / "extra.tar.gz", {"y": b"2"})
    (tmp_path / "SHA256SUMS").write_text(f"{_sum(f1.read_bytes())}  15-scene/a.tar.gz\n")
    with pytest.raises(data.DataError, match=r"shard .*extra.tar.gz is not listed in"):
        checksums.verified_shards(tmp_path, "15-scene")


# ---------------------------------------------------------------- staging folders


def _staging(top: Path, name: str, owner: dict | None = None, age_s: float = 0) -> Path:
    d = top / f".staging-{name}-{len(list(top.glob('.staging-*')))}x"
    (d / "unpacked" / "deep").mkdir(parents=True)
    (d / "unpacked" / "deep" / "half.jpg").write_bytes(b"half")
    if owner is not None:
        (d / "owner.json").write_text(json.dumps(owner))
    when = time.time() - age_s
    os.utime(d, (when, when))
    return d


def _dead_pid() -> int:
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


def test_stale_staging_folders_are_removed_by_the_next_prepare(tmp_path, data_dir,
                                                              monkeypatch):
    import socket
    data_dir.mkdir()
    host, now = socket.gethostname(), time.time()
    dead = _staging(data_dir, "cifar-10", {"pid": _dead_pid(), "host": host, "started": now})
    old = _staging(data_dir, "tiny-imagenet-200", {"pid": os.getpid(), "host": "elsewhere",
                                                   "started": now - 2 * 86400})
    legacy_old = _staging(data_dir, "15-scene", age_s=2 * 86400)  # an older itl's, no owner
    alive = _staging(data_dir, "15-scene", {"pid": os.getpid(), "host": host, "started": now})
    other_host = _staging(data_dir, "cifar-10", {"pid": _dead_pid(), "host": "elsewhere",
                                                 "started": now})
    legacy_new = _staging(data_dir, "bccd")
    (legacy_new / "unpacked").chmod(0o500)  # read-only folders are removed too, when stale
    os.chmod(dead / "unpacked", 0o500)
    datasets.prepare("15-scene", _mini_scene(tmp_path, monkeypatch))
    left = set(data_dir.glob(".staging-*"))
    assert left == {alive, other_host, legacy_new}
    assert not {dead, old, legacy_old} & left
    (legacy_new / "unpacked").chmod(0o700)


def test_a_failed_prepare_leaves_no_staging_of_its_own(tmp_path, data_dir):
    f = write_tar(tmp_path / "c.tar.gz", {"cifar-10/train/cat/0.jpg": _jpeg()})
    with pytest.raises(data.DataError):
        datasets.prepare("cifar-10", f)
    assert not list(data_dir.glob(".staging-*"))


def test_images_kept_where_itl_keeps_the_prepared_set_are_never_replaced(tmp_path, data_dir):
    own = data_dir / "15-scene"
    (own / "kitchen").mkdir(parents=True)
    (own / "kitchen" / "a.jpg").write_bytes(_jpeg())
    with pytest.raises(data.DataError, match="move the original images or archive elsewhere"):
        datasets.prepare("15-scene", own)
    assert (own / "kitchen" / "a.jpg").exists()
