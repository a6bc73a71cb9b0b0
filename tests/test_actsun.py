"""PASCAL VOC 2012 action classification and SUN397 (paper Section 3's ACT-CLS and SUN-CLS at
paper scale): fabricated miniature archives in the official layouts, prepared, loaded, fine-tuned
for a step and scored with each entry's metric; bad input gives one clear error and leaves
nothing prepared; the metrics against hand-computed examples."""
import dataclasses
import hashlib
import tarfile
import zipfile
from pathlib import Path

import pytest
import torch
import torchvision

from itl import data, datasets, metrics, models, pipeline, runs, scales, transfer
from itl.datasets import sun397, voc2012_action
from itl.datasets.entry import MEAN_AP, MEAN_PER_CLASS, TOP1, Archive
from itl.datasets.images import DataError
from itl.datasets.voc2012_action import ACTIONS
from archives import write_tar

G = torch.Generator().manual_seed(0)


def _jpeg(h: int = 40, w: int = 30) -> bytes:
    x = torch.randint(0, 256, (3, h, w), dtype=torch.uint8, generator=G)
    return torchvision.io.encode_jpeg(x).numpy().tobytes()


def _nothing_prepared(root: Path, name: str) -> bool:
    return not (root / name).exists() and not list(root.glob(".staging-*"))


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    d = tmp_path / "data"
    monkeypatch.setenv("ITL_DATA", str(d))
    return d


# ---------------------------------------------------------------- VOC 2012 action

def _person(flags: dict[str, int], box=(3, 4, 20, 30)) -> str:
    acts = "".join(f"<{a}>{flags.get(a, 0)}</{a}>" for a in ACTIONS + ("other",))
    return (f"<object><name>person</name><actions>{acts}</actions><bndbox><xmin>{box[0]}</xmin>"
            f"<ymin>{box[1]}</ymin><xmax>{box[2]}</xmax><ymax>{box[3]}</ymax></bndbox>"
            f"<point><x>10</x><y>10</y></point></object>")


# image id -> its persons' flags; 2011_000003 has a person doing two actions and one 'other'
VOC_TRAIN = {"2011_000001": [{"jumping": 1}, {"walking": 1}],
             "2011_000002": [{"reading": 1, "phoning": 1}],
             "2011_000003": [{"other": 1}, {"ridinghorse": 1}]}
VOC_VAL = {"2011_000004": [{"jumping": 1}, {"running": 1}],
           "2011_000005": [{"walking": 1}, {"jumping": 1, "takingphoto": 1}]}


def _voc_files(drop: str | None = None) -> dict[str, bytes]:
    base = "VOCdevkit/VOC2012"
    files = {}
    for split, images in (("train", VOC_TRAIN), ("val", VOC_VAL)):
        files[f"{base}/ImageSets/Action/{split}.txt"] = "\n".join(images).encode() + b"\n"
        for a in ACTIONS:  # the devkit's per-action lists: <image> <object> <+1|-1>
            files[f"{base}/ImageSets/Action/{a}_{split}.txt"] = "".join(
                f"{i} {n} {1 if p.get(a) else -1}\n" for i, ps in images.items()
                for n, p in enumerate(ps, 1)).encode()
        for i, persons in images.items():
            objs = "".join(_person(p, (3 + 2 * n, 4, 20 + n, 30)) for n, p in enumerate(persons))
            files[f"{base}/Annotations/{i}.xml"] = (
                f"<annotation><filename>{i}.jpg</filename><size><width>30</width><height>40"
                f"</height><depth>3</depth></size>{objs}</annotation>").encode()
            files[f"{base}/JPEGImages/{i}.jpg"] = _jpeg()
    # a detection-only image (its person has no actions): not an action example
    files[f"{base}/Annotations/2008_000001.xml"] = (
        b"<annotation><object><name>person</name><bndbox><xmin>1</xmin><ymin>1</ymin>"
        b"<xmax>5</xmax><ymax>5</ymax></bndbox></object></annotation>")
    files[f"{base}/ImageSets/Main/train.txt"] = b"2008_000001\n"
    return {k: v for k, v in files.items() if k != drop}


def _voc_tar(tmp_path: Path, name: str = "VOCtrainval_11-May-2012.tar", **kw) -> Path:
    return write_tar(tmp_path / name, _voc_files(**kw))


def _expect_voc(monkeypatch, tar: Path | None = None) -> None:
    changes = {}
    if tar is not None:  # the miniature's own md5 under the official name
        changes["archives"] = (Archive(tar.name, md5=hashlib.md5(tar.read_bytes()).hexdigest()),)
    monkeypatch.setitem(datasets.REGISTRY, "voc2012-action",
                        dataclasses.replace(voc2012_action.VOC2012_ACTION, **changes))


# ---------------------------------------------------------------- SUN397

SUN_LINES = ("/a/abbey", "/a/apartment_building/outdoor", "/b/beach")
SUN_CLASSES = tuple(sun397.class_name(c) for c in SUN_LINES)


def _sun_archives(tmp_path: Path, per_class: int = 2, drop: str | None = None
                  ) -> tuple[Path, Path]:
    images, train, test = {"SUN397/ClassName.txt": "\n".join(SUN_LINES).encode() + b"\n"}, [], []
    for c in SUN_LINES:
        for i in range(2 * per_class + 1):  # one image in no partition
            rel = f"{c}/sun_{c.replace('/', '')}{i:03d}.jpg"
            images[f"SUN397{rel}"] = _jpeg(24 + i, 32)
            (train if i < per_class else test if i < 2 * per_class else []).append(rel)
    tar = write_tar(tmp_path / "src" / sun397.IMAGES, images)
    z = tmp_path / "src" / sun397.PARTITIONS
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("ClassName.txt", "\n".join(SUN_LINES) + "\n")
        for name, lines in (("Training_01.txt", train), ("Testing_01.txt", test),
                            ("Training_02.txt", test), ("Testing_02.txt", train)):
            if name != drop:
                zf.writestr(name, "\n".join(lines) + "\n")
    return tar, z


def _expect_sun(monkeypatch, tar: Path, z: Path, per_class: int = 2) -> None:
    monkeypatch.setitem(datasets.REGISTRY, "sun397", dataclasses.replace(
        sun397.SUN397, classes=SUN_CLASSES, per_class={"train": per_class, "test": per_class},
        archives=(Archive(tar.name, md5=hashlib.md5(tar.read_bytes()).hexdigest()),
                  Archive(z.name, sha256=hashlib.sha256(z.read_bytes()).hexdigest()))))


# ---------------------------------------------------------------- metrics

def test_average_precision_is_the_devkits_all_point_ap_not_the_11_point_one():
    from itl.detection import voc_ap
    scores = torch.tensor([0.9, 0.8, 0.7, 0.6, 0.5])
    positive = torch.tensor([1, 0, 1, 0, 0])
    # by hand: recall 1/2 at precision 1, recall 1 at precision 2/3 -> 1/2 + 1/2 * 2/3
    assert metrics.average_precision(scores, positive) == pytest.approx(5 / 6)
    # the VOC 2007 11-point rule gives (6 * 1 + 5 * 2/3) / 11 on the same ranking
    assert voc_ap(torch.tensor([0.5, 0.5, 1.0, 1.0, 1.0]),
                  torch.tensor([1.0, 0.5, 2 / 3, 0.5, 0.4])) == pytest.approx((6 + 10 / 3) / 11)
    # the precision envelope: negatives first; recall 1/2 at 1/2 and 1 at 1/2 -> 1/2
    assert metrics.average_precision(torch.tensor([4.0, 3, 2, 1]),
                                     torch.tensor([0, 1, 0, 1])) == pytest.approx(0.5)
    # ties keep their order (MATLAB's sort): the positive listed second ranks second
    assert metrics.average_precision(torch.tensor([1.0, 1.0]), torch.tensor([0, 1])) == 0.5
    assert metrics.average_precision(scores, torch.zeros(5)) != \
        metrics.average_precision(scores, torch.zeros(5))  # NaN: no positive


def test_mean_ap_reads_bit_masks_and_skips_a_class_without_positives():
    y = torch.tensor([0b01, 0b11, 0b00])  # class 0: items 0, 1; class 1: item 1; class 2: none
    assert metrics.multi_hot(y, 3).tolist() == [[1, 0, 0], [1, 1, 0], [0, 0, 0]]
    scores = torch.tensor([[0.9, 0.1, 0.0], [0.8, 0.2, 0.0], [0.1, 0.9, 0.0]])
    r = metrics.mean_ap(scores, y, ("a", "b", "c"))
    assert r["AP"]["a"] == pytest.approx(100.0) and r["AP"]["b"] == pytest.approx(50.0)
    assert r["mAP"] == pytest.approx(75.0)  # the mean over a and b
    assert metrics.loss(MEAN_AP, torch.zeros(3, 3), y).item() == pytest.approx(0.6931, 1e-3)


def test_mean_per_class_accuracy_differs_from_overall_accuracy_on_an_imbalanced_test_set():
    y = torch.tensor([0] * 8 + [1] * 2)  # 8 of class 0, 2 of class 1
    pred = torch.zeros(10, dtype=torch.int64)  # always class 0
    assert metrics.top1(pred, y) == pytest.approx(80.0)
    assert metrics.mean_per_class_accuracy(pred, y, 2) == pytest.approx(50.0)  # (100 + 0) / 2
    balanced = torch.tensor([0, 0, 1, 1])
    assert metrics.mean_per_class_accuracy(torch.tensor([0, 1, 1, 1]), balanced, 2) == \
        pytest.approx(metrics.top1(torch.tensor([0, 1, 1, 1]), balanced))
    out = torch.nn.functional.one_hot(pred, 2).float()
    r = metrics.score(MEAN_PER_CLASS, out, y, ("a", "b"))
    assert r["top1"] == pytest.approx(50.0) and r["accuracy"] == pytest.approx(80.0)
    assert metrics.score(TOP1, out, y, ("a", "b")) == {"top1": pytest.approx(80.0)}
    with pytest.raises(ValueError, match="unknown classification metric"):
        metrics.score("f1", out, y, ("a", "b"))


# ---------------------------------------------------------------- VOC 2012 action

def test_voc2012_action_from_the_official_tar_prepare_load_finetune_score(tmp_path, data_dir,
                                                                          monkeypatch):
    tar = _voc_tar(tmp_path)
    _expect_voc(monkeypatch, tar)
    datasets.prepare("voc2012-action", tar, size=64)
    tr, te = data.load("voc2012-action", "train", 64), data.load("voc2012-action", "test", 64)
    bit = {a: 1 << k for k, a in enumerate(ACTIONS)}
    # every person with <actions>, in listing order; the 'other' person is 0 (no action), the
    # two-action person both bits; the detection-only image is no example
    assert tr.y.tolist() == [bit["jumping"], bit["walking"], bit["reading"] | bit["phoning"], 0,
                             bit["ridinghorse"]]
    assert te.y.tolist() == [bit["jumping"], bit["running"], bit["walking"],
                             bit["jumping"] | bit["takingphoto"]]  # test = VOC's val
    assert tr.classes == ACTIONS and tr.x.shape == (5, 3, 64, 64) and tr.x.dtype == torch.uint8
    assert datasets.get("voc2012-action").status().state == "present, verified"
    assert pipeline.target_metric("voc2012-action") == MEAN_AP
    cfg = transfer.FinetuneConfig(steps=1, batch_size=4, lr=0.001, crop_pad=0, crop=56,
                                  lr_drops=(0.75,), caffe_param_groups=True, head_std=0.01)
    r = transfer.finetune(None, "small_cnn", tr, te, cfg, seed=0, metric=MEAN_AP)
    assert r["metric"] == MEAN_AP and set(r["AP"]) == set(ACTIONS)
    scored = [a for a in ACTIONS if r["AP"][a] == r["AP"][a]]
    assert sorted(scored) == ["jumping", "running", "takingphoto", "walking"]  # positives in val
    assert r["top1"] == pytest.approx(sum(r["AP"][a] for a in scored) / 4)


def test_a_person_box_is_cut_with_context_and_grey_beyond_the_image():
    img = torch.full((3, 40, 30), 200, dtype=torch.uint8)
    out = voc2012_action.region(img, [1, 1, 30, 40], 64)  # the whole image as the box
    assert out.shape == (3, 64, 64)
    assert out[:, 32, 32].tolist() == [200] * 3  # the box itself
    assert out[:, 0, 0].tolist() == [voc2012_action.FILL] * 3  # context beyond the image
    inner = round(64 / voc2012_action.CONTEXT)  # the box's side in the warped region
    assert inner == round(64 * 195 / 256)


def test_voc2012_action_wrong_md5_under_the_official_name_is_one_line_nothing_half_written(
        tmp_path, data_dir):
    tar = _voc_tar(tmp_path)  # the real entry: torchvision's md5 for VOCtrainval_11-May-2012.tar
    with pytest.raises(DataError, match="6cd6e144f989b92b3379bac3b3de84fd") as e:
        datasets.prepare("voc2012-action", tar, size=64)
    assert "\n" not in str(e.value) and "is not voc2012-action" in str(e.value)
    assert _nothing_prepared(data_dir, "voc2012-action")


def test_voc2012_action_truncated_tar_or_missing_action_lists_is_one_line(tmp_path, data_dir,
                                                                          monkeypatch):
    _expect_voc(monkeypatch)
    whole = _voc_tar(tmp_path, name="copy.tar").read_bytes()
    cut = tmp_path / "cut.tar"
    cut.write_bytes(whole[:len(whole) // 2])
    with pytest.raises(DataError, match="cannot unpack") as e:
        datasets.prepare("voc2012-action", cut, size=64)
    assert "\n" not in str(e.value) and _nothing_prepared(data_dir, "voc2012-action")
    no_val = _voc_tar(tmp_path, name="noval.tar", drop="VOCdevkit/VOC2012/ImageSets/Action/val.txt")
    with pytest.raises(DataError, match="val.txt is missing") as e:
        datasets.prepare("voc2012-action", no_val, size=64)
    assert "\n" not in str(e.value) and _nothing_prepared(data_dir, "voc2012-action")


# ---------------------------------------------------------------- SUN397

def test_sun397_from_its_two_archives_prepare_load_finetune_score(tmp_path, data_dir,
                                                                  monkeypatch):
    tar, z = _sun_archives(tmp_path)
    _expect_sun(monkeypatch, tar, z)
    datasets.prepare("sun397", tar.parent, size=64)  # the folder holding both archives
    tr, te = data.load("sun397", "train", 64), data.load("sun397", "test", 64)
    assert tr.classes == ("abbey", "apartment_building_outdoor", "beach")  # torchvision's names
    assert tr.y.tolist() == [0, 0, 1, 1, 2, 2] and te.y.tolist() == [0, 0, 1, 1, 2, 2]
    assert not torch.equal(tr.x, te.x)  # Training_01 and Testing_01, not partition 2
    assert pipeline.target_metric("sun397") == MEAN_PER_CLASS
    assert pipeline.target_metric("no-such-set") == TOP1
    cfg = transfer.FinetuneConfig(steps=1, batch_size=6, crop_pad=0, crop=56, head_lr_mult=10.0)
    r = transfer.finetune(None, "small_cnn", tr, te, cfg, seed=0, metric=MEAN_PER_CLASS)
    assert r["metric"] == MEAN_PER_CLASS and 0 <= r["top1"] <= 100 and "accuracy" in r


def test_sun397_from_an_unpacked_folder(tmp_path, data_dir, monkeypatch):
    tar, z = _sun_archives(tmp_path)
    _expect_sun(monkeypatch, tar, z)
    folder = tmp_path / "unpacked"
    with tarfile.open(tar) as t:
        t.extractall(folder, filter="data")
    with zipfile.ZipFile(z) as zf:
        zf.extractall(folder / "Partitions")
    datasets.prepare("sun397", folder, size=32)
    assert data.load("sun397", "test", 32).y.tolist() == [0, 0, 1, 1, 2, 2]


def test_sun397_wrong_checksum_truncated_archive_missing_partition_each_one_line(
        tmp_path, data_dir, monkeypatch):
    tar, z = _sun_archives(tmp_path)  # the real entry's md5 for SUN397.tar.gz
    with pytest.raises(DataError, match="8ca2778205c41d23104230ba66911c7a") as e:
        datasets.prepare("sun397", tar.parent, size=64)
    assert "\n" not in str(e.value) and _nothing_prepared(data_dir, "sun397")
    _expect_sun(monkeypatch, tar, z)
    cut = tmp_path / "cut" / "SUN397-copy.tar.gz"
    cut.parent.mkdir()
    cut.write_bytes(tar.read_bytes()[: tar.stat().st_size // 2])
    with pytest.raises(DataError, match="cannot unpack") as e:
        datasets.prepare("sun397", cut, size=64)
    assert "\n" not in str(e.value) and _nothing_prepared(data_dir, "sun397")
    tar2, z2 = _sun_archives(tmp_path / "b", drop="Testing_01.txt")
    _expect_sun(monkeypatch, tar2, z2)
    with pytest.raises(DataError, match="no Testing_01.txt") as e:
        datasets.prepare("sun397", tar2.parent, size=64)
    assert "\n" not in str(e.value) and "Partitions.zip" in str(e.value)
    assert _nothing_prepared(data_dir, "sun397")
    z2.unlink()  # the images without their partitions
    with pytest.raises(DataError, match="no Training_01.txt"):
        datasets.prepare("sun397", tar2.parent, size=64)
    assert _nothing_prepared(data_dir, "sun397")


def test_a_partition_line_outside_the_classes_is_one_line(tmp_path, data_dir, monkeypatch):
    tar, z = _sun_archives(tmp_path)
    with zipfile.ZipFile(z, "a") as zf:
        zf.writestr("extra/Training_01.txt", "/z/zoo/sun_x.jpg\n")  # deeper: not the one read
    _expect_sun(monkeypatch, tar, z)
    datasets.prepare("sun397", tar.parent, size=32)  # the shallowest Training_01.txt is read
    folder = tmp_path / "bad"
    with tarfile.open(tar) as t:
        t.extractall(folder, filter="data")
    (folder / "Training_01.txt").write_text("/z/zoo/sun_x.jpg\n")
    (folder / "Testing_01.txt").write_text("")
    with pytest.raises(DataError, match="is not under a class") as e:
        datasets.prepare("sun397", folder, size=32)
    assert "\n" not in str(e.value)


# ---------------------------------------------------------------- fine-tuning settings

def test_finetune_settings_added_later_leave_every_stored_runs_hash_as_it_was():
    """The `settings` part of transfer keys on merge at 271bc92, before FinetuneConfig had the
    Caffe settings: at their defaults the new fields are left out of the key."""
    key = lambda cfg: runs.config_hash({"settings": transfer.finetune_dict(cfg)})  # noqa: E731
    assert key(transfer.FinetuneConfig()) == "6ed948359aeb4197d1f9"
    # smoke's fine-tuning as it was then (15 epochs; halved since for the 5-minute first run)
    assert key(transfer.FinetuneConfig(epochs=15, batch_size=32, lr=0.01)) == "6ed948359aeb4197d1f9"
    assert key(scales.get("small-v2").finetune) == "a17f1bc8110f046b78ec"
    plain = transfer.finetune_dict(transfer.FinetuneConfig())
    for change in ({"steps": 10}, {"lr_drops": (0.5,)}, {"crop": 28},
                   {"caffe_param_groups": True}, {"head_std": 0.01}, {"head_lr_mult": 10.0}):
        assert transfer.finetune_dict(transfer.FinetuneConfig(**change)) == {**plain, **change}
    with pytest.raises(ValueError, match="steps=0"):
        transfer.FinetuneConfig(steps=0)


def test_caffes_fine_tuning_rates_and_head_init():
    cfg = transfer.FinetuneConfig(lr=0.001, weight_decay=5e-4, caffe_param_groups=True,
                                  head_lr_mult=10.0)
    net = models.build("caffenet", 5, 0)
    groups = transfer.finetune_groups(net, cfg)
    got = [(len(g["params"]), g["lr"], g["weight_decay"]) for g in groups]
    # conv1-5, fc6, fc7 at the base rate (biases 2x, no decay); fc8 at 10x (its bias 20x)
    assert got == [(7, 0.001, 5e-4), (7, 0.002, 0.0), (1, 0.01, 5e-4), (1, 0.02, 0.0)]
    head = models.build("small_cnn", 397, 0)
    transfer.gaussian_head(head, 0.01, seed=3)
    w = head.head.weight
    assert abs(w.std().item() - 0.01) < 0.001 and abs(w.mean().item()) < 0.001
    assert not head.head.bias.any()
    again = models.build("small_cnn", 397, 0)
    transfer.gaussian_head(again, 0.01, seed=3)
    assert torch.equal(again.head.weight, w)  # drawn from the seed alone
    assert transfer.finetune_schedule(scales.SUN_FINETUNE, 19_850) == (50_000, [20_000, 40_000])
    assert transfer.finetune_schedule(scales.ACT_FINETUNE, 3_000) == (40_000, [30_000])
    assert transfer.finetune_schedule(transfer.FinetuneConfig(epochs=2, batch_size=10), 95) == \
        (20, [10, 15])  # the old rule, unchanged


def test_the_paper_scale_fine_tunes_each_target_with_its_own_recipe_and_metric():
    paper = scales.get("paper")
    assert paper.targets == ("sun397", "voc2012-action")
    assert paper.finetune_config("sun397") == scales.SUN_FINETUNE
    assert paper.finetune_config("voc2012-action") == scales.ACT_FINETUNE
    assert {t: pipeline.target_metric(t) for t in paper.targets} == {
        "sun397": MEAN_PER_CLASS, "voc2012-action": MEAN_AP}
    for cfg in (scales.SUN_FINETUNE, scales.ACT_FINETUNE):
        assert cfg.crop == models.CAFFENET_INPUT and cfg.caffe_param_groups
        assert cfg.head_std == 0.01 and cfg.lr == 0.001 and cfg.crop_pad == 0
    assert (scales.SUN_FINETUNE.batch_size, scales.ACT_FINETUNE.batch_size) == (50, 60)


def test_one_caffenet_fine_tuning_step_on_227_px_crops_of_action_boxes(tmp_path, data_dir,
                                                                       monkeypatch):
    tar = _voc_tar(tmp_path)
    _expect_voc(monkeypatch, tar)
    datasets.prepare("voc2012-action", tar, size=256)
    tr, te = data.load("voc2012-action", "train", 256), data.load("voc2012-action", "test", 256)
    cfg = dataclasses.replace(scales.ACT_FINETUNE, steps=1, batch_size=2)
    r = transfer.finetune(None, "caffenet", tr, te, cfg, seed=0, metric=MEAN_AP)
    assert r["metric"] == MEAN_AP and r["top1"] == r["top1"]  # a number, not NaN


def test_linear_probe_and_knn_score_a_multi_label_target_by_mean_ap(tmp_path, data_dir,
                                                                    monkeypatch):
    tar = _voc_tar(tmp_path)
    _expect_voc(monkeypatch, tar)
    datasets.prepare("voc2012-action", tar, size=32)
    tr, te = data.load("voc2012-action", "train", 32), data.load("voc2012-action", "test", 32)
    net = transfer.with_new_head(None, "small_cnn", len(ACTIONS), 0)
    probe = transfer.linear_probe(net, tr, te, transfer.ProbeConfig(iterations=5), 0, MEAN_AP)
    near = transfer.knn(net, tr, te, transfer.KnnConfig(k=3), MEAN_AP)
    for r in (probe, near):
        assert r["metric"] == MEAN_AP and set(r["AP"]) == set(ACTIONS)
        assert r["top1"] == pytest.approx(r["mAP"]) and 0 <= r["mAP"] <= 100
    # k-NN's score of an action is its share of the (weighted) neighbours' votes: 'running' has
    # no positive among the training boxes, so every val box scores 0 and its AP is its
    # positives' share (1 of 4 boxes, ties in listed order: the second box) -> 1/2
    assert near["AP"]["running"] == pytest.approx(50.0)
