"""PASCAL VOC 2007 detection (the paper's PASCAL-DET) on fabricated miniature copies of the two
official tars and of ../shared/data's trainval-only shards: prepare -> read -> the Faster R-CNN
whose box head is the pre-trained fc6/fc7 -> one SGD step -> VOC 2007 mAP; wrong md5, a
truncated tar, a missing image list, a byte-flipped or missing shard, split lists and boxes that
are not VOC's; the splits each release is trained and scored on; the paper scale's detection
settings, and detection run keys unchanged by the settings added for it."""
import shutil
import tarfile
from dataclasses import asdict, replace
from pathlib import Path

import pytest
import torch
import torchvision

from itl import detection as det
from itl import models, runs, scales
from itl.datasets import entry, records, staging, voc, voc2007
from itl.datasets.images import DataError
from archives import write_shards, write_tar

CLASSES = ("cat", "dog", "person")  # 3 of VOC's 20
# image id -> (height, width), [(class, box, difficult)]
TRAINVAL = {
    "000005": ((200, 240), [("cat", (20, 30, 120, 150), False), ("dog", (130, 40, 220, 180),
                                                                  False)]),
    "000007": ((227, 227), [("person", (50, 20, 150, 210), False)]),
    "000009": ((180, 260), [("dog", (10, 10, 100, 120), False),
                            ("person", (140, 30, 250, 170), True)]),
    "000012": ((227, 200), [("cat", (40, 60, 180, 200), True), ("cat", (5, 5, 60, 50), False)]),
}
TEST = {
    "000001": ((210, 230), [("cat", (30, 30, 140, 160), False)]),
    "000002": ((227, 227), [("person", (60, 10, 170, 220), False),
                            ("dog", (1, 100, 60, 200), True)]),
    "000004": ((190, 250), [("dog", (100, 40, 240, 180), False)]),
}
MINI = replace(voc2007.VOC2007, classes=CLASSES,
               split_sizes={"trainval": len(TRAINVAL), "test": len(TEST)},
               archives=(entry.Archive("mini-trainval.tar"), entry.Archive("mini-test.tar")))
DEVKIT = "VOCdevkit/VOC2007"
IDS = sorted(TRAINVAL)
TRAINVAL_ONLY = {"train": IDS[:2], "val": IDS[2:], "trainval": IDS}  # the shards' lists
# the miniature with both releases: the official one and the shards' (trainval only, no test)
MINI_SHARDS = replace(MINI, other_releases=({"train": 2, "val": 2, "trainval": 4},))


@pytest.fixture(autouse=True)
def own_data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("ITL_DATA", str(tmp_path / "data"))


def _xml(image: str, size, objects) -> str:
    objs = "".join(
        f"<object><name>{c}</name><pose>Unspecified</pose><truncated>0</truncated>"
        f"<difficult>{int(d)}</difficult><bndbox><xmin>{b[0]}</xmin><ymin>{b[1]}</ymin>"
        f"<xmax>{b[2]}</xmax><ymax>{b[3]}</ymax></bndbox></object>" for c, b, d in objects)
    return (f"<annotation><folder>VOC2007</folder><filename>{image}.jpg</filename><size>"
            f"<width>{size[1]}</width><height>{size[0]}</height><depth>3</depth></size>"
            f"<segmented>0</segmented>{objs}</annotation>\n")


def _jpeg(size, objects, seed: int) -> bytes:
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 80, (3, *size), dtype=torch.uint8, generator=g)
    for k, (c, b, _) in enumerate(objects):
        x[CLASSES.index(c) if c in CLASSES else 0, b[1]:b[3] + 1, b[0]:b[2] + 1] = 220
    return torchvision.io.encode_jpeg(x, quality=90).numpy().tobytes()


def _files(images: dict, lists: dict[str, list[str]]) -> dict[str, bytes]:
    """The official layout: VOCdevkit/VOC2007/{Annotations, JPEGImages,
    ImageSets/Main/<split>.txt} (`lists`: split -> image ids; a split left out is absent)."""
    files = {}
    for n, (image, (size, objects)) in enumerate(sorted(images.items())):
        files[f"{DEVKIT}/Annotations/{image}.xml"] = _xml(image, size, objects).encode()
        files[f"{DEVKIT}/JPEGImages/{image}.jpg"] = _jpeg(size, objects, n)
    for split, ids in lists.items():
        files[f"{DEVKIT}/ImageSets/Main/{split}.txt"] = "".join(f"{i}\n" for i in ids).encode()
    return files


def _tar(path: Path, images: dict, lists: dict[str, list[str]]) -> Path:
    """A tar of `_files(images, lists)`."""
    return write_tar(path, _files(images, lists))


def _shards(folder: Path, files: dict[str, bytes] | None = None) -> Path:
    """../shared/data's layout: folder/SHA256SUMS and folder/voc2007/ with the two shards, the
    trainval-only release (or `files`) split between them, half the files in each."""
    files = _files(TRAINVAL, TRAINVAL_ONLY) if files is None else files
    names = sorted(files)
    halves = names[:len(names) // 2], names[len(names) // 2:]
    return write_shards(folder, {f"voc2007/{shard}": {n: files[n] for n in half}
                                 for shard, half in zip(voc2007.VOC2007.shard_files, halves)})


def _mini(folder: Path, names=("mini-trainval.tar", "mini-test.tar"), test_list=True) -> Path:
    """Both miniature tars in `folder`, under `names`: trainval's tar lists train, val and
    trainval; test's lists test (unless test_list is False)."""
    folder.mkdir(parents=True, exist_ok=True)
    ids = sorted(TRAINVAL)
    _tar(folder / names[0], TRAINVAL, {"train": ids[:2], "val": ids[2:], "trainval": ids})
    _tar(folder / names[1], TEST, {"test": sorted(TEST)} if test_list else {})
    return folder


def _nothing_prepared(tmp_path: Path) -> None:
    data = tmp_path / "data"
    left = sorted(p.name for p in data.iterdir()) if data.exists() else []
    assert not [p for p in left if p == "VOC2007" or p.startswith(staging.STAGING)], left


def _one_line_error(call, *fragments: str) -> str:
    with pytest.raises(DataError) as e:
        call()
    message = str(e.value)
    assert "\n" not in message, message
    for f in fragments:
        assert f in message, message
    return message


# ---------------------------------------------------------------- preparing


def test_both_tars_prepare_into_one_voc2007_folder_with_trainval_test_and_difficult_flags(
        tmp_path):
    root = MINI.prepare(_mini(tmp_path / "dl"))
    assert root == tmp_path / "data" / "VOC2007" and MINI.root() == root
    trainval, test = voc.read_voc(root, "trainval"), voc.read_voc(root, "test")
    assert [a.image for a in trainval] == sorted(TRAINVAL) and len(test) == len(TEST)
    by_id = {a.image: a for a in trainval + test}
    assert by_id["000009"].labels == ["dog", "person"]
    assert by_id["000009"].difficult == [False, True]
    assert by_id["000012"].difficult == [True, False]
    assert by_id["000005"].boxes[1].tolist() == [130, 40, 220, 180]
    assert (root / "JPEGImages" / "000004.jpg").is_file()
    assert MINI.verify() is None and MINI.status().state == entry.VERIFIED
    rec = __import__("json").loads((root / records.RECORD).read_text())
    assert rec["source"]["kind"] == "archives"
    assert set(rec["source"]["files"]) == {"mini-trainval.tar", "mini-test.tar"}
    assert rec["images"] == {"trainval": 4, "test": 3} and rec["classes"] == list(CLASSES)
    assert rec["boxes"] == {"cat": 4, "dog": 4, "person": 3}
    _nothing_left = [p for p in (tmp_path / "data").iterdir() if p.name.startswith(".staging")]
    assert not _nothing_left


def test_either_tar_or_the_unpacked_devkit_folder_prepares_the_same(tmp_path):
    dl = _mini(tmp_path / "dl")
    a = MINI.prepare(dl / "mini-test.tar")
    assert len(voc.read_voc(a, "trainval")) == 4  # its sibling came with it
    unpacked = tmp_path / "unpacked"
    for t in ("mini-trainval.tar", "mini-test.tar"):
        with tarfile.open(dl / t) as f:
            f.extractall(unpacked, filter="data")
    b = MINI.prepare(unpacked / "VOCdevkit")
    assert [x.image for x in voc.read_voc(b, "test")] == sorted(TEST)
    assert (unpacked / DEVKIT / "JPEGImages" / "000001.jpg").is_file()  # copied, not moved


def test_the_official_names_keep_their_published_md5(tmp_path):
    dl = _mini(tmp_path / "dl", names=(voc2007.TRAINVAL.name, voc2007.TEST.name))
    _one_line_error(lambda: voc2007.VOC2007.prepare(dl), "VOCtrainval_06-Nov-2007.tar",
                    "md5", "expected c52e279531787c972589f7e41ab4ae64")
    _nothing_prepared(tmp_path)
    # the same bytes as a declared miniature are accepted: only the names carry the md5s
    shutil.copy(dl / voc2007.TRAINVAL.name, dl / "mini-trainval.tar")
    shutil.copy(dl / voc2007.TEST.name, dl / "mini-test.tar")
    assert MINI.prepare(dl / "mini-trainval.tar").is_dir()


def test_a_truncated_tar_is_one_error_and_nothing_is_installed(tmp_path):
    dl = _mini(tmp_path / "dl")
    f = dl / "mini-trainval.tar"
    f.write_bytes(f.read_bytes()[:f.stat().st_size // 2])
    _one_line_error(lambda: MINI.prepare(dl), "cannot unpack", "mini-trainval.tar", "truncated")
    _nothing_prepared(tmp_path)


def test_a_missing_image_list_is_one_error_and_nothing_is_installed(tmp_path):
    dl = _mini(tmp_path / "dl", test_list=False)
    _one_line_error(lambda: MINI.prepare(dl), "ImageSets/Main/test.txt is missing",
                    "itl data prepare voc2007")
    _nothing_prepared(tmp_path)


def test_one_tar_without_the_other_is_one_error(tmp_path):
    dl = _mini(tmp_path / "dl", names=(voc2007.TRAINVAL.name, "elsewhere.tar"))
    _one_line_error(lambda: voc2007.VOC2007.prepare(dl), "holds VOCtrainval_06-Nov-2007.tar",
                    "but not VOCtest_06-Nov-2007.tar")
    _one_line_error(lambda: voc2007.VOC2007.prepare(dl / "elsewhere.tar"),
                    "is none of VOCtrainval_06-Nov-2007.tar, VOCtest_06-Nov-2007.tar")
    _nothing_prepared(tmp_path)


def test_the_miniature_is_not_voc2007_itself(tmp_path):
    """The real entry checks the official image counts and the 20 classes."""
    unpacked = tmp_path / "unpacked"
    for t in ("mini-trainval.tar", "mini-test.tar"):
        with tarfile.open(_mini(tmp_path / "dl") / t) as f:
            f.extractall(unpacked, filter="data")
    _one_line_error(lambda: voc2007.VOC2007.prepare(unpacked), "is not voc2007",
                    "expected 5011")
    _nothing_prepared(tmp_path)


def test_the_shards_folder_prepares_the_trainval_only_release(tmp_path):
    shards = _shards(tmp_path / "shared")
    root = MINI_SHARDS.prepare(shards)
    assert root == tmp_path / "data" / "VOC2007" == MINI_SHARDS.root()
    assert not (root / "ImageSets" / "Main" / "test.txt").exists()
    rec = __import__("json").loads((root / records.RECORD).read_text())
    assert rec["images"] == {"train": 2, "val": 2, "trainval": 4}  # the splits it has
    assert rec["source"]["kind"] == "shards" and set(rec["source"]["sha256"]) == {
        "voc2007/voc2007-trainval-0.tar.gz", "voc2007/voc2007-trainval-1.tar.gz"}
    assert MINI_SHARDS.present() and MINI_SHARDS.verify() is None
    status = MINI_SHARDS.status()
    assert status.state == entry.VERIFIED and (": images 2 train, 2 val, 4 trainval (fine-tuned "
                                               "on train, scored on val); 7 boxes") in \
        status.detail
    assert MINI_SHARDS.eval_splits() == ("train", "val")
    assert [a.image for a in voc.read_voc(root, "val")] == IDS[2:]
    # a record naming a content that is neither release fails verification
    (root / "ImageSets" / "Main" / "val.txt").write_text(f"{IDS[2]}\n")
    assert "val.txt lists 1 images where" in MINI_SHARDS.verify()
    _one_line_error(MINI_SHARDS.eval_splits, "val.txt lists 1 images where",
                    "itl data prepare voc2007")


def test_the_shards_own_folder_finds_sha256sums_in_its_parent_and_the_cli_prints_its_splits(
        tmp_path, monkeypatch, capsys):
    from itl import cli, datasets
    shards = _shards(tmp_path / "shared")
    monkeypatch.setitem(datasets.REGISTRY, "voc2007", MINI_SHARDS)
    assert cli.main(["data", "prepare", "voc2007", "--from", str(shards / "voc2007")]) == 0
    out = capsys.readouterr().out
    assert "voc2007 train (fine-tuned on): 2 images, 3 boxes" in out
    assert "voc2007 val (scored on): 2 images, 4 boxes" in out
    rec = __import__("json").loads((MINI_SHARDS.root() / records.RECORD).read_text())
    assert rec["source"]["path"] == str((shards / "voc2007").resolve())
    assert set(rec["source"]["sha256"]) == {"voc2007/voc2007-trainval-0.tar.gz",
                                            "voc2007/voc2007-trainval-1.tar.gz"}
    assert rec["images"] == {"train": 2, "val": 2, "trainval": 4}


@pytest.mark.parametrize("given", ["shards folder", "shards' own folder"])
def test_a_byte_flipped_or_missing_shard_is_one_error_naming_it(tmp_path, given):
    shards = _shards(tmp_path / "shared")
    source = shards if given == "shards folder" else shards / "voc2007"
    second = shards / "voc2007" / "voc2007-trainval-1.tar.gz"
    blob = bytearray(second.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    second.write_bytes(bytes(blob))
    _one_line_error(lambda: MINI_SHARDS.prepare(source), "wrong checksum for",
                    "voc2007-trainval-1.tar.gz", "SHA256SUMS", "copy that shard again")
    _nothing_prepared(tmp_path)
    (shards / "voc2007" / "voc2007-trainval-0.tar.gz").unlink()
    _one_line_error(lambda: MINI_SHARDS.prepare(source), "shard ",
                    "voc2007-trainval-0.tar.gz listed in", "SHA256SUMS is missing", "copy it back")
    _nothing_prepared(tmp_path)


def test_an_unpacked_trainval_only_folder_is_accepted_and_verified(tmp_path):
    unpacked = tmp_path / "unpacked"
    for shard in sorted((_shards(tmp_path / "shared") / "voc2007").glob("*.tar.gz")):
        with tarfile.open(shard) as f:
            f.extractall(unpacked, filter="data")
    # an entry without the shards' release refuses it; with two, the error names both
    _one_line_error(lambda: MINI.prepare(unpacked / DEVKIT), "is not voc2007",
                    "ImageSets/Main/test.txt is missing")
    _one_line_error(lambda: voc2007.VOC2007.prepare(unpacked / DEVKIT),
                    "is not voc2007: found 4 images in ImageSets/Main/trainval.txt, expected "
                    "5011; or, as the release of 2500 train, 2508 val, 5008 trainval images: "
                    "found 2 images in ImageSets/Main/train.txt, expected 2500")
    _nothing_prepared(tmp_path)
    root = MINI_SHARDS.prepare(unpacked / DEVKIT)
    assert MINI_SHARDS.verify() is None and MINI_SHARDS.eval_splits() == ("train", "val")
    rec = __import__("json").loads((root / records.RECORD).read_text())
    assert rec["source"]["kind"] == "folder" and rec["images"]["trainval"] == 4
    assert (unpacked / DEVKIT / "JPEGImages" / "000005.jpg").is_file()  # copied, not moved


def test_eval_splits_are_trainval_test_with_a_test_half_else_train_val(tmp_path):
    MINI_SHARDS.prepare(_mini(tmp_path / "dl"))  # the official release: it has test
    assert MINI_SHARDS.eval_splits() == ("trainval", "test")
    MINI_SHARDS.prepare(_shards(tmp_path / "shared"))  # replaces it with the shards' release
    assert MINI_SHARDS.eval_splits() == ("train", "val")
    staging.rmtree(tmp_path / "data" / "VOC2007")
    _one_line_error(MINI_SHARDS.eval_splits, "VOC2007 is not prepared",
                    "itl data prepare voc2007 --from PATH")


def _broken(change: str) -> dict[str, bytes]:
    """The shards' files with one thing that VOC's devkit does not allow."""
    lists = {k: list(v) for k, v in TRAINVAL_ONLY.items()}
    images = dict(TRAINVAL)
    if change == "an id twice":
        lists["train"] = [IDS[0], IDS[0]]
    elif change == "train and val overlap":
        lists["val"] = [IDS[1], IDS[3]]
    elif change == "trainval is not train and val":
        lists["trainval"] = IDS[:3] + ["000099"]
    elif change == "a box outside its image":  # 000005 is 240 wide
        images["000005"] = ((200, 240), [("cat", (20, 30, 120, 150), False),
                                         ("dog", (130, 40, 241, 180), False)])
    elif change == "a box at 0":  # the devkit's pixels start at 1
        images["000007"] = ((227, 227), [("person", (0, 20, 150, 210), False)])
    elif change == "a zero-area box":
        images["000007"] = ((227, 227), [("person", (50, 20, 50, 210), False)])
    elif change == "another class":
        images["000009"] = ((180, 260), [("kitten", (10, 10, 100, 120), False)])
    files = _files(images, lists)
    if change == "a missing image":
        del files[f"{DEVKIT}/JPEGImages/000012.jpg"]
    elif change == "a missing annotation":
        del files[f"{DEVKIT}/Annotations/000012.xml"]
    return files


@pytest.mark.parametrize("change, fragments", [
    ("an id twice", ("ImageSets/Main/train.txt lists 000005 twice",)),
    ("train and val overlap", ("ImageSets/Main/val.txt lists 000007, which train.txt lists too",
                               "train and val are disjoint")),
    ("trainval is not train and val", ("trainval.txt is not train.txt and val.txt together",
                                       "000012 is in train.txt or val.txt but not in")),
    ("a box outside its image", ("Annotations/000005.xml: object 2 (dog) has the box "
                                 "[130, 40, 241, 180] outside its 240x200 image",)),
    ("a box at 0", ("Annotations/000007.xml: object 1 (person)", "outside its 227x227 image",
                    "1 <= xmin")),
    ("a zero-area box", ("Annotations/000007.xml: object 1 (person) has the zero-area box "
                         "[50, 20, 50, 210]",)),
    ("another class", ("is not voc2007", "'kitten' first in", "Annotations/000009.xml")),
    ("a missing image", ("JPEGImages/000012.jpg is missing",
                         "listed in ImageSets/Main/trainval.txt")),
    ("a missing annotation", ("Annotations/000012.xml is missing",)),
])
def test_split_lists_and_boxes_that_are_not_vocs_are_refused(tmp_path, change, fragments):
    shards = _shards(tmp_path / "shared", _broken(change))
    _one_line_error(lambda: MINI_SHARDS.prepare(shards), *fragments,
                    "itl data prepare voc2007 --from PATH")
    _nothing_prepared(tmp_path)


def test_trainval_and_test_overlapping_is_refused(tmp_path):
    dl = tmp_path / "dl"
    _tar(dl / "mini-trainval.tar", TRAINVAL, {"trainval": IDS})
    _tar(dl / "mini-test.tar", TEST, {"test": sorted(TEST) + [IDS[0]]})
    _one_line_error(lambda: MINI.prepare(dl), "ImageSets/Main/test.txt lists 000005, which "
                    "trainval.txt lists too", "trainval and test are disjoint")
    _nothing_prepared(tmp_path)


def test_the_registry_entry_is_voc2007_detection_scored_by_voc07_map():
    from itl import datasets
    e = datasets.get("voc2007")
    assert e is voc2007.VOC2007 and e.origin == entry.PREPARED
    assert (e.kind, e.metric, e.train_split) == (entry.DETECTION, entry.VOC07_MAP, "trainval")
    assert len(e.classes) == 20 and e.split_sizes == {"trainval": 5011, "test": 4952}
    assert e.releases() == ({"trainval": 5011, "test": 4952},  # official; ../shared/data's:
                            {"train": 2500, "val": 2508, "trainval": 5008})
    assert (e.shards, e.shard_files) == ("voc2007", ("voc2007-trainval-0.tar.gz",
                                                     "voc2007-trainval-1.tar.gz"))
    assert {a.name: a.md5 for a in e.archives} == {  # torchvision's VOCDetection
        "VOCtrainval_06-Nov-2007.tar": "c52e279531787c972589f7e41ab4ae64",
        "VOCtest_06-Nov-2007.tar": "b6e924de25625d8de591ea690078ad9f"}
    assert "voc2007" not in [x.name for x in datasets.planned.ENTRIES]


# ---------------------------------------------------------------- detecting with fc6/fc7


def test_the_box_head_is_the_pretrained_fc6_fc7_on_roi_pooled_conv5():
    net = models.build("caffenet", 5, seed=0)
    fc6, fc7 = (net.backbone.classifier.fc6.weight.clone(),
                net.backbone.classifier.fc7.weight.clone())
    model = det.detector(net, list(CLASSES), 227, det.DetectConfig(),
                         torch.Generator().manual_seed(0))
    head = model.roi_heads.box_head
    assert torch.equal(head.fc6.weight, fc6) and torch.equal(head.fc7.weight, fc7)
    assert head.fc6 is net.backbone.classifier.fc6  # the pre-trained layer itself, trained on
    assert isinstance(head.drop6, torch.nn.Dropout) and head.drop6.p == 0.5  # as in training
    pool = model.roi_heads.box_roi_pool
    assert isinstance(pool, det.RoIPool5)
    assert (pool.pool.output_size, pool.pool.spatial_scale) == (6, 1 / 16)
    trunk = model.backbone
    assert list(trunk.named_children())[-1][0] == "relu5" and trunk.out_channels == 256
    conv5 = trunk(torch.zeros(1, 3, 320, 320))
    assert conv5.shape[-2:] == (19, 19) and 320 // 19 == 16  # stride 16, as anchors see it
    rois = pool({"0": conv5}, [torch.tensor([[0.0, 0.0, 100.0, 60.0]])], [(320, 320)])
    assert rois.shape == (1, 256, 6, 6) and head(rois).shape == (1, 4096)  # fc6's 9216 inputs
    p = model.roi_heads.box_predictor
    assert p.cls_score.out_features == 4 and p.bbox_pred.out_features == 16
    assert p.cls_score.in_features == 4096
    assert abs(p.cls_score.weight.std().item() - 0.01) < 0.001
    assert abs(p.bbox_pred.weight.std().item() - 0.001) < 0.0001
    assert not p.cls_score.bias.any() and not p.bbox_pred.bias.any()


def test_networks_without_fc6_fc7_detect_as_before():
    net = models.build("strided_cnn", 10, 0)
    assert det.fc_box_head(net) is None
    model = det.detector(net, ["cat"], 64, det.DetectConfig())
    from torchvision.models.detection.faster_rcnn import TwoMLPHead
    from torchvision.ops import MultiScaleRoIAlign
    assert isinstance(model.roi_heads.box_roi_pool, MultiScaleRoIAlign)
    assert isinstance(model.roi_heads.box_head, TwoMLPHead)
    assert model.roi_heads.nms_thresh == 0.5 and model.transform.min_size == (64,)


def test_prepare_read_one_sgd_step_with_fc6_fc7_and_voc07_map(tmp_path):
    root = MINI.prepare(_mini(tmp_path / "dl"))
    net = models.build("caffenet", 5, seed=0)
    fc6 = net.backbone.classifier.fc6.weight.clone()
    conv1 = net.backbone.features.conv1.weight.clone()
    cfg = det.DetectConfig(steps=1, lr_step=1, batch_size=2, lr=0.001, min_size=227,
                           max_size=260, anchor_sizes=(64, 128), roi_samples=32,
                           pre_nms=(200, 100), post_nms=(50, 20), box_nms=0.3,
                           caffe_param_groups=True, train_difficult=False)
    r = det.finetune_detector(net, root, cfg, seed=0, device=torch.device("cpu"),
                              train_split=MINI.train_split)
    assert r["steps"] == 1 and set(r["AP"]) == set(CLASSES)
    assert 0.0 <= r["mAP"] <= 100.0
    # the step trained the pre-trained fc6 as the box head, and the trunk
    assert not torch.equal(net.backbone.classifier.fc6.weight, fc6)
    assert not torch.equal(net.backbone.features.conv1.weight, conv1)


# ---------------------------------------------------------------- settings


def test_the_paper_scale_detects_voc2007_with_py_faster_rcnns_recipe():
    paper = scales.SCALES["paper"]
    assert paper.detection == ("voc2007",) and "voc2007" not in paper.targets
    d = paper.detect
    assert det.schedule(d, 5011) == (70_000, (50_000,))  # detection.SCHEDULES
    assert (d.lr, d.momentum, d.weight_decay, d.batch_size) == (0.001, 0.9, 5e-4, 2)
    assert (d.min_size, d.max_size, d.roi_samples) == (600, 1000, 128)
    assert d.caffe_param_groups and d.bias_decay_mult == 1.0 and not d.train_difficult
    assert (d.ap_rule, d.box_rule) == ("devkit", "py-faster-rcnn")
    assert paper.pretrain.model == "caffenet"  # whose fc6/fc7 become the box head


def test_epoch_schedules_are_as_before():
    assert det.schedule(det.DetectConfig(epochs=8, batch_size=8), 205) == (208, (156,))
    assert det.schedule(det.DetectConfig(steps=10, lr_step=4), 3) == (10, (4, 8))
    with pytest.raises(ValueError, match="DetectConfig steps=0: give a positive number"):
        det.DetectConfig(steps=0)


def test_settings_added_for_the_paper_leave_detection_run_keys_as_they_were():
    """Keys computed on `merge` at 271bc92, before DetectConfig had the paper's fields."""
    small = scales.SCALES["small"].detect
    assert runs.config_hash({"settings": det.config_dict(small)}) == "03bc65d5d6dfd1df3e16"
    plain = det.config_dict(det.DetectConfig())
    assert runs.config_hash({"settings": plain}) == "a515902570019fca919f"
    assert set(asdict(det.DetectConfig())) - set(plain) == set(det.ADDED)
    for change in ({"steps": 10}, {"lr_step": 5}, {"min_size": 600}, {"box_nms": 0.3},
                   {"train_difficult": False}, {"post_nms": (2000, 300)}):
        assert det.config_dict(det.DetectConfig(**change)) == {**plain, **change}


def test_the_paper_scale_fine_tunes_voc2007_on_trainval_through_the_pipeline(tmp_path,
                                                                             monkeypatch):
    """transfer_one hands the prepared folder, the paper's settings and VOC 2007's trainval to
    the detector (the detector itself replaced: its work is tested above)."""
    from itl import pipeline
    root = MINI.prepare(_mini(tmp_path / "dl"))
    seen = {}

    def fake(net, at, cfg, seed, device, train_split="train", test_split="test"):
        seen.update(root=at, cfg=cfg, split=train_split, fc6=det.fc_box_head(net) is not None)
        assert test_split == "test"
        return {"top1": 1.0, "mAP": 1.0, "AP": {}, "steps": 0}

    monkeypatch.setattr(pipeline.detection, "finetune_detector", fake)
    real = pipeline.datasets.get
    monkeypatch.setattr(pipeline.datasets, "get",
                        lambda name: MINI if name == "voc2007" else real(name))
    r = pipeline.transfer_one(scales.get("paper"), pipeline.RANDOM, "voc2007", "detect", 0)
    assert r["mAP"] == 1.0
    assert seen == {"root": root, "cfg": scales.SCALES["paper"].detect, "split": "trainval",
                    "fc6": True}
