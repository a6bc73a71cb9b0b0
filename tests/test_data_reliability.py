"""Issue 23, nothing silently wrong: the hostile-user trial's data cases, each fabricated here and
each refused with one line naming the thing and the fix. A VOC folder with an id twice, a test
list of training images, a box far outside its image, a JPEG of random bytes (N1); a cache with
its labels permuted in place, same byte size and counts (N2); a corrupted or missing shard, a
shards folder without SHA256SUMS (N5); the split a prepared VOC set is fine-tuned on (N10); and
the same checks for the other kinds of data set (classification folders, VOC-CLS lists, shards
that stream)."""
import hashlib
import json
import os
import shutil

import pytest
import torch

from itl import cli, data, datasets
from itl.datasets import content, entry, records, shards, status
from itl.datasets.images import DataError
from archives import write_shards, write_tar
from test_data_identity import _jpeg, _mini_scene, expect
import test_voc2007 as voc07

MAIN = f"{voc07.DEVKIT}/ImageSets/Main"


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    d = tmp_path / "data"
    monkeypatch.setenv("ITL_DATA", str(d))
    return d


@pytest.fixture
def mini_voc(data_dir, monkeypatch):
    """The registry's voc2007 as the miniature with both releases (test_voc2007.MINI_SHARDS)."""
    monkeypatch.setitem(datasets.REGISTRY, "voc2007", voc07.MINI_SHARDS)
    return voc07.MINI_SHARDS


def _one_line(call, *fragments: str) -> str:
    with pytest.raises(DataError) as e:
        call()
    message = str(e.value)
    assert "\n" not in message, message
    for f in fragments:
        assert f in message, message
    return message


def _status(name: str) -> entry.Status:
    return status.status(datasets.get(name))


def _installed(data_dir) -> list[str]:
    return sorted(p.name for p in data_dir.iterdir()) if data_dir.exists() else []


# ---------------------------------------------------------------- N1: a bad VOC folder


def _voc_files(change: str) -> dict[str, bytes]:
    """The shards' trainval-only miniature with one of the trial's changes."""
    images = dict(voc07.TRAINVAL)
    lists = {k: list(v) for k, v in voc07.TRAINVAL_ONLY.items()}
    if change == "box far outside a 160x107 image":  # the trial's (50,31)-(5000,9000)
        images["000007"] = ((107, 160), [("person", (50, 31, 5000, 9000), False)])
    elif change == "an id twice in trainval.txt":
        lists["trainval"] = lists["trainval"] + [voc07.IDS[1]]
    files = voc07._files(images, lists)
    if change == "test.txt of trainval images":
        files[f"{MAIN}/test.txt"] = "".join(f"{i}\n" for i in voc07.IDS).encode()
    elif change == "a JPEG of random bytes":
        files[f"{voc07.DEVKIT}/JPEGImages/000012.jpg"] = os.urandom(4096)
    elif change == "a JPEG cut short":
        jpeg = files[f"{voc07.DEVKIT}/JPEGImages/000012.jpg"]
        files[f"{voc07.DEVKIT}/JPEGImages/000012.jpg"] = jpeg[:len(jpeg) // 3]
    elif change == "a JPEG of another size than its <size>":
        files[f"{voc07.DEVKIT}/JPEGImages/000012.jpg"] = voc07._jpeg((100, 100), [], 0)
    return files


@pytest.mark.parametrize("change, fragments", [
    ("an id twice in trainval.txt", ("ImageSets/Main/trainval.txt lists 000007 twice",)),
    ("test.txt of trainval images", ("ImageSets/Main/test.txt lists 000005, which trainval.txt "
                                     "lists too (4 shared)", "trainval and test are disjoint")),
    ("box far outside a 160x107 image", ("Annotations/000007.xml: object 1 (person) has the "
                                         "box [50, 31, 5000, 9000] outside its 160x107 image",)),
    ("a JPEG of random bytes", ("unreadable image", "JPEGImages/000012.jpg",
                                "it is listed in ImageSets/Main/")),
    ("a JPEG cut short", ("unreadable image", "JPEGImages/000012.jpg")),
    ("a JPEG of another size than its <size>", ("JPEGImages/000012.jpg is 100x100 px where "
                                                "000012.xml gives 200x227",)),
])
def test_each_bad_voc_folder_of_the_trial_is_refused_and_never_verified(
        tmp_path, data_dir, mini_voc, change, fragments):
    shards = voc07._shards(tmp_path / "shared", _voc_files(change))
    _one_line(lambda: datasets.prepare("voc2007", shards), *fragments,
              "itl data prepare voc2007 --from PATH")
    assert "VOC2007" not in _installed(data_dir)
    assert _status("voc2007").state == entry.MISSING
    assert cli.main(["data", "prepare", "voc2007", "--from", str(shards)]) == 2


def test_a_voc_folder_edited_after_preparing_fails_verification_naming_the_file(
        tmp_path, data_dir, mini_voc):
    root = datasets.prepare("voc2007", voc07._shards(tmp_path / "shared"))
    assert _status("voc2007").state == entry.VERIFIED
    assert mini_voc.eval_splits() == ("train", "val")
    jpeg = root / "JPEGImages" / "000012.jpg"
    kept = jpeg.read_bytes()
    jpeg.write_bytes(os.urandom(len(kept)))  # same size, other bytes
    st = _status("voc2007")
    assert st.state == entry.FAILING and f"{jpeg} changed since VOC2007 was prepared" in st.detail
    _one_line(mini_voc.eval_splits, str(jpeg), "itl data prepare voc2007 --from PATH")
    jpeg.write_bytes(kept)
    assert _status("voc2007").state == entry.VERIFIED
    val = root / "ImageSets" / "Main" / "val.txt"  # the same count, another image
    val.write_text(val.read_text().replace(voc07.IDS[3], voc07.IDS[0]))
    assert f"{val} changed since" in _status("voc2007").detail


def test_a_voc_folder_prepared_before_file_checksums_is_to_be_prepared_again(
        tmp_path, data_dir, mini_voc):
    root = datasets.prepare("voc2007", voc07._shards(tmp_path / "shared"))
    rec = json.loads((root / records.RECORD).read_text())
    del rec["files_sha256"]  # as itl wrote it before issue 23
    (root / records.RECORD).write_text(json.dumps(rec))
    st = _status("voc2007")
    assert st.state == entry.FAILING and "recorded no checksums of its files" in st.detail
    assert "itl data prepare voc2007 --from PATH" in st.detail


def test_the_trainval_only_release_says_what_it_is_fine_tuned_and_scored_on(
        tmp_path, data_dir, mini_voc, capsys):
    """N10: the training split of the shards' release is train (2,500 of the real set), and
    both `itl data prepare` and `itl data status` say so."""
    shards = voc07._shards(tmp_path / "shared")
    assert cli.main(["data", "prepare", "voc2007", "--from", str(shards)]) == 0
    out = capsys.readouterr().out
    assert "voc2007 train (fine-tuned on): 2 images" in out
    assert "voc2007 val (scored on): 2 images" in out and "voc2007 trainval" not in out
    assert "(fine-tuned on train, scored on val)" in _status("voc2007").detail


# ---------------------------------------------------------------- N2: a cache edited in place


def _permute_labels(f) -> None:
    """The labels of a cache reversed in place: the same byte size, the same counts per class."""
    blob = torch.load(f, weights_only=True)
    size, counts = f.stat().st_size, torch.bincount(blob["y"]).tolist()
    blob["y"] = blob["y"].flip(0)
    torch.save(blob, f)
    assert f.stat().st_size == size and torch.bincount(blob["y"]).tolist() == counts


def test_a_cache_with_its_labels_permuted_is_refused_and_never_verified(
        tmp_path, data_dir, monkeypatch):
    src = _mini_scene(tmp_path, monkeypatch)
    folder = datasets.prepare("15-scene", src)
    clean = data.fingerprint("15-scene")
    assert _status("15-scene").state == entry.VERIFIED
    f = folder / "cache-64-train.pt"
    _permute_labels(f)
    _one_line(lambda: data.load("15-scene", "train"), f"data cache {f} changed since it was "
              "prepared", "labels permuted", "itl data prepare 15-scene --from PATH")
    st = _status("15-scene")
    assert st.state == entry.FAILING and str(f) in st.detail
    # the fingerprint file still says the clean digest, but no run can read under it: every
    # read (a run, a subset, a manifest) is refused above
    assert data.fingerprint("15-scene") == clean
    assert len(data.load("15-scene", "test")) == 2  # the other split is untouched
    datasets.prepare("15-scene", src)  # the fix the error names
    assert len(data.load("15-scene", "train")) == 4 and data.fingerprint("15-scene") == clean


def test_a_record_without_cache_sums_is_checked_against_its_fingerprint(
        tmp_path, data_dir, monkeypatch):
    """Folders prepared before issue 23 record no sha256 per cache; their fingerprint is the
    digest of those sha256s, so it checks them (and preparing the folder again records them)."""
    folder = datasets.prepare("15-scene", _mini_scene(tmp_path, monkeypatch))
    rec = json.loads((folder / records.RECORD).read_text())
    for of_size in rec["sizes"].values():
        del of_size["sha256"]
    (folder / records.RECORD).write_text(json.dumps(rec))
    assert len(data.load("15-scene", "train", 32)) == 4
    assert _status("15-scene").state == entry.VERIFIED
    f = folder / "cache-32-train.pt"
    _permute_labels(f)
    _one_line(lambda: data.load("15-scene", "train", 32), f"the 32-px caches in {folder} hash "
              "to 15-scene-", "where", "records the fingerprint 15-scene-",
              "itl data prepare 15-scene --from PATH")
    _one_line(lambda: data.load("15-scene", "test", 32), "the 32-px caches")  # bound together
    assert "hash to" in _status("15-scene").detail
    # adopting the folder again hashes it against its fingerprint files: refused too
    _one_line(lambda: datasets.prepare("15-scene", folder), "fingerprint-32 says 15-scene-",
              "but the caches beside it hash to")


def test_adopting_a_folder_records_the_sums_and_keeps_the_fingerprints(
        tmp_path, data_dir, monkeypatch):
    folder = datasets.prepare("15-scene", _mini_scene(tmp_path, monkeypatch))
    before = json.loads((folder / records.RECORD).read_text())["sizes"]
    rec = json.loads((folder / records.RECORD).read_text())
    for of_size in rec["sizes"].values():
        del of_size["sha256"]
    (folder / records.RECORD).write_text(json.dumps(rec))
    assert datasets.prepare("15-scene", folder) == folder
    assert json.loads((folder / records.RECORD).read_text())["sizes"] == before
    for px, of_size in before.items():
        for name, digest in of_size["sha256"].items():
            assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == digest


def test_a_record_whose_sums_do_not_make_its_fingerprint_is_refused(
        tmp_path, data_dir, monkeypatch):
    folder = datasets.prepare("15-scene", _mini_scene(tmp_path, monkeypatch))
    f = folder / "cache-64-train.pt"
    _permute_labels(f)
    rec = json.loads((folder / records.RECORD).read_text())  # sums edited to the new bytes
    rec["sizes"]["64"]["sha256"][f.name] = hashlib.sha256(f.read_bytes()).hexdigest()
    (folder / records.RECORD).write_text(json.dumps(rec))
    _one_line(lambda: data.load("15-scene", "train"), "records sha256s of the 64-px caches that "
              "do not make its fingerprint 15-scene-")


def test_labels_of_streamed_shards_permuted_in_place_are_refused(tmp_path):
    folder = tmp_path / "imagenet-1k"
    folder.mkdir()
    w = shards.Writer(folder, "train", (3, 4, 4))
    for k in range(4):
        w.add(torch.full((3, 4, 4), k, dtype=torch.uint8), k % 2, f"{k}.JPEG")
    rec = {"train": w.close(2)}
    shards.write_record(folder, "imagenet-1k", {}, ("a", "b"), rec, "fingerprint-256")
    rec = shards.read_record(folder, "imagenet-1k", ("a", "b"), {"train": None},
                             "fingerprint-256")
    assert shards.open_split(folder, "imagenet-1k", rec, "train").y.tolist() == [0, 1, 0, 1]
    labels = folder / "train-labels.pt"
    torch.save(torch.tensor([1, 0, 1, 0]), labels)
    assert labels.stat().st_size == rec["splits"]["train"]["labels"]["bytes"]
    _one_line(lambda: shards.open_split(folder, "imagenet-1k", rec, "train"),
              f"labels {labels} changed since they were prepared",
              "itl data prepare imagenet-1k --from PATH")


# ---------------------------------------------------------------- classification sources


def test_a_test_split_of_training_images_is_refused(tmp_path, data_dir, monkeypatch):
    expect(monkeypatch, "15-scene", classes=("a", "b"), per_class={"train": 2, "test": 1},
           test_in_train=0)
    train = {f"15-scene/train/{c}/{i}.jpg": _jpeg() for c in ("a", "b") for i in range(2)}
    test = {f"15-scene/test/{c}/t.jpg": train[f"15-scene/train/{c}/1.jpg"] for c in ("a", "b")}
    src = write_tar(tmp_path / "s.tar.gz", {**train, **test})
    _one_line(lambda: datasets.prepare("15-scene", src), "2 of the 15-scene test images are "
              "byte-identical to training images (the published data has 0), first",
              "15-scene/test/a/t.jpg = ", "15-scene/train/a/1.jpg",
              "itl data prepare 15-scene --from PATH")
    assert "15-scene" not in _installed(data_dir)
    expect(monkeypatch, "15-scene", test_in_train=2)  # as many as the published data holds
    folder = datasets.prepare("15-scene", src)
    assert json.loads((folder / records.RECORD).read_text())["checks"] == {"test_in_train": 2}


def test_cifar_batches_compare_pixels_across_splits():
    from itl.datasets.layouts import Split
    x = torch.randint(0, 256, (4, 3, 8, 8), dtype=torch.uint8, generator=torch.Generator())
    train = Split(("a",), torch.zeros(3, dtype=torch.int64), x=x[:3])
    test = Split(("a",), torch.zeros(2, dtype=torch.int64), x=torch.stack([x[3], x[1]]))
    assert content.leaks(train, test) == [("image 1", "image 1")]


def test_a_classification_image_of_random_bytes_is_refused_naming_it(tmp_path, data_dir,
                                                                     monkeypatch):
    expect(monkeypatch, "15-scene", classes=("a", "b"), per_class={"train": 2, "test": 1})
    files = {f"15-scene/{s}/{c}/{i}.jpg": _jpeg()
             for s, n in (("train", 2), ("test", 1)) for c in ("a", "b") for i in range(n)}
    files["15-scene/train/b/1.jpg"] = os.urandom(2048)
    _one_line(lambda: datasets.prepare("15-scene", write_tar(tmp_path / "s.tar.gz", files)),
              "unreadable image", "15-scene/train/b/1.jpg")
    assert "15-scene" not in _installed(data_dir)


@pytest.mark.parametrize("change, fragment", [
    ("train.txt lists an id twice", "ImageSets/Main/train.txt lists 000005 twice"),
    ("val.txt lists a train image", "ImageSets/Main/val.txt lists 000007, which train.txt lists "
                                    "too"),
])
def test_voc_cls_lists_are_checked_as_the_detection_set_s(tmp_path, data_dir, change, fragment):
    import test_voc_cls
    from itl.datasets import voc2007_cls
    splits = {k: list(v) for k, v in test_voc_cls.SPLITS.items()}
    if change == "train.txt lists an id twice":
        splits["train"] = splits["train"] + ["000005"]
    else:
        splits["val"] = splits["val"][:2] + ["000007"]
    files = test_voc_cls._files(splits=splits)
    trainval = dict.fromkeys(splits["train"] + splits["val"])  # each once: the pair is named
    files[f"{test_voc_cls.DEVKIT}/ImageSets/Main/trainval.txt"] = "".join(
        f"{i}\n" for i in trainval).encode()
    _one_line(lambda: voc2007_cls.VOC2007_CLS.prepare(test_voc_cls._shards(tmp_path / "shared",
                                                                           files)),
              fragment, "itl data prepare voc2007-cls --from PATH")
    assert "voc2007-cls" not in _installed(data_dir)


# ---------------------------------------------------------------- N5: shards and SHA256SUMS


def _cifar_shards(folder, monkeypatch):
    """../shared/data's layout for a 2-class CIFAR-10 miniature: cifar-10/ with its two shards,
    and SHA256SUMS."""
    expect(monkeypatch, "cifar-10", classes=("cat", "dog"), per_class={"train": 2, "test": 1},
           image_size=(16, 16))
    part = lambda split, n: {f"cifar-10/{split}/{c}/{i}.jpg": _jpeg()  # noqa: E731
                             for c in ("cat", "dog") for i in range(n)}
    return write_shards(folder, {"cifar-10/cifar-10-train.tar.gz": part("train", 2),
                                 "cifar-10/cifar-10-test.tar.gz": part("test", 1)})


@pytest.mark.parametrize("given", ["shards folder", "its cifar-10 folder"])
def test_a_corrupted_or_missing_shard_is_one_line_naming_it(tmp_path, data_dir, monkeypatch,
                                                           given):
    shared = _cifar_shards(tmp_path / "shared", monkeypatch)
    source = shared if given == "shards folder" else shared / "cifar-10"
    assert datasets.prepare("cifar-10", source).is_dir()
    shutil.rmtree(data_dir / "cifar-10")
    shard = shared / "cifar-10" / "cifar-10-test.tar.gz"
    blob = bytearray(shard.read_bytes())
    blob[len(blob) // 2] ^= 0x01
    shard.write_bytes(bytes(blob))
    _one_line(lambda: datasets.prepare("cifar-10", source), f"wrong checksum for {shard}",
              f"from {shared / 'SHA256SUMS'}", "copy that shard again")
    shard.unlink()
    _one_line(lambda: datasets.prepare("cifar-10", source), f"shard {shard} listed in",
              "is missing", "copy it back")
    assert "cifar-10" not in _installed(data_dir)


@pytest.mark.parametrize("given", ["shards folder", "its cifar-10 folder"])
def test_shards_without_sha256sums_are_refused_saying_so(tmp_path, data_dir, monkeypatch,
                                                         given):
    shared = _cifar_shards(tmp_path / "shared", monkeypatch)
    (shared / "SHA256SUMS").unlink()
    source = shared if given == "shards folder" else shared / "cifar-10"
    message = _one_line(lambda: datasets.prepare("cifar-10", source),
                        f"{source} holds cifar-10 shards (cifar-10-test.tar.gz, "
                        "cifar-10-train.tar.gz) but no SHA256SUMS", "sha256sum cifar-10/*.tar.gz")
    assert "no known layout" not in message
    assert "cifar-10" not in _installed(data_dir)


def test_voc2007_shards_without_sha256sums_are_refused_saying_so(tmp_path, data_dir, mini_voc):
    shared = voc07._shards(tmp_path / "shared")
    (shared / "SHA256SUMS").unlink()
    for source in (shared, shared / "voc2007"):
        _one_line(lambda: datasets.prepare("voc2007", source), "holds voc2007 shards "
                  "(voc2007-trainval-0.tar.gz, voc2007-trainval-1.tar.gz) but no SHA256SUMS")


def test_every_entry_with_shard_files_names_its_shards_folder():
    """N5: `SHA256SUMS lists no shard of None` came from an entry without `shards`."""
    for e in datasets.REGISTRY.values():
        assert not e.shard_files or e.shards, e.name


# ---------------------------------------------------------------- the checks themselves


def test_split_lists_pairs_and_trainval(tmp_path):
    main = tmp_path / "Main"
    main.mkdir()
    (main / "train.txt").write_text("a\nb\n")
    (main / "val.txt").write_text("c\n")
    (main / "test.txt").write_text("d\n")
    assert content.split_lists(main, ("train", "val", "trainval", "test"), "fix") == {
        "train": ["a", "b"], "val": ["c"], "test": ["d"]}
    (main / "test.txt").write_text("d\nb\n")  # no trainval.txt: train and test still disjoint
    _one_line(lambda: content.split_lists(main, ("train", "val", "test"), "fix"),
              "test.txt lists b, which train.txt lists too", "; fix")
    (main / "test.txt").write_text("d\n")
    (main / "trainval.txt").write_text("a\nb\n")
    _one_line(lambda: content.split_lists(main, ("train", "val", "trainval"), "fix"),
              "trainval.txt is not train.txt and val.txt together: c is in train.txt or "
              "val.txt but not in trainval.txt")


@pytest.mark.parametrize("box, ok, problem", [
    ((1, 1, 160, 107), False, None),
    ((50, 31, 5000, 9000), False, "outside its 160x107 image"),
    ((0, 5, 10, 10), False, "outside"),
    ((5, 5, 5, 10), False, "zero-area box [5, 5, 5, 10]"),
    ((5, 5, 5, 10), True, None),
    ((10, 5, 5, 10), False, "outside"),
])
def test_box_problem(box, ok, problem):
    found = content.box_problem(box, 160, 107, ok)
    assert found == problem if problem is None else problem in found


def test_file_digests_are_memoized_by_version(tmp_path):
    f = tmp_path / "f"
    f.write_bytes(b"one")
    assert content.sha256_of(f) == hashlib.sha256(b"one").hexdigest()
    f.write_bytes(b"two!")  # another size (and mtime): hashed again
    assert content.sha256_of(f) == hashlib.sha256(b"two!").hexdigest()


def test_an_edited_generated_voc_cifar_folder_is_refused(data_dir):
    from itl.datasets import voc_cifar
    from itl.datasets.images import ImageSet
    g = torch.Generator().manual_seed(0)
    objects = ImageSet(torch.randint(0, 256, (6, 3, 32, 32), dtype=torch.uint8, generator=g),
                       torch.arange(6) % 2, ("cat", "ship"))
    backgrounds = ImageSet(torch.zeros(2, 3, 64, 64, dtype=torch.uint8), torch.zeros(2),
                           ("scene",))
    root = voc_cifar.make_voc(objects, backgrounds, voc_cifar.VocSpec(n_train=3, n_test=2),
                              data_dir / "voc-cifar")
    e = datasets.get("voc-cifar")
    assert e.root() == root and _status("voc-cifar").state == entry.GENERATED_ON_USE
    jpeg = root / "JPEGImages" / "train_00001.jpg"
    jpeg.write_bytes(jpeg.read_bytes()[::-1])
    _one_line(e.root, f"{jpeg} changed since voc-cifar was prepared",
              f"delete {root} to generate it again")
    assert _status("voc-cifar").state == entry.FAILING
    (root / content.MANIFEST).unlink()  # as generated before files.sha256: recorded on use
    assert e.root() == root and (root / content.MANIFEST).is_file()
