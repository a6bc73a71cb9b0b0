"""VOC-CLS, small scale v3's judged target: PASCAL VOC 2007 images as 20-class multi-label
classification (train -> val), labels with the devkit's three values, the loss and the score."""
import math

import pytest
import torch
import torchvision

from itl import metrics, scales
from itl.datasets import voc2007_cls
from itl.datasets.entry import VOC07_CLS
from itl.datasets.images import DataError
from archives import write_shards

CLASSES = voc2007_cls.VOC2007_CLS.classes
DEVKIT = "VOCdevkit/VOC2007"
# image id -> objects (class, difficult); 64x48 px each
IMAGES = {"000005": [("chair", False), ("chair", True)], "000007": [("car", False)],
          "000009": [("horse", False), ("person", False)], "000012": [("car", True)],
          "000016": [("bicycle", False)], "000017": [("person", True), ("horse", False)]}
SPLITS = {"train": ["000005", "000007", "000009"], "val": ["000012", "000016", "000017"]}


@pytest.fixture(autouse=True)
def own_data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("ITL_DATA", str(tmp_path / "data"))


def _files(images=IMAGES, splits=SPLITS) -> dict[str, bytes]:
    files = {}
    for n, (image, objects) in enumerate(sorted(images.items())):
        objs = "".join(f"<object><name>{c}</name><difficult>{int(d)}</difficult><bndbox><xmin>2"
                       f"</xmin><ymin>2</ymin><xmax>30</xmax><ymax>20</ymax></bndbox></object>"
                       for c, d in objects)
        files[f"{DEVKIT}/Annotations/{image}.xml"] = (
            f"<annotation><size><width>64</width><height>48</height><depth>3</depth></size>"
            f"{objs}</annotation>").encode()
        x = torch.full((3, 48, 64), 10 * n, dtype=torch.uint8)
        files[f"{DEVKIT}/JPEGImages/{image}.jpg"] = torchvision.io.encode_jpeg(x).numpy().tobytes()
    for split, ids in {**splits, "trainval": splits["train"] + splits["val"]}.items():
        files[f"{DEVKIT}/ImageSets/Main/{split}.txt"] = "".join(f"{i}\n" for i in ids).encode()
    return files


def _shards(folder, files=None):
    return write_shards(folder, {"voc2007/voc2007-trainval-0.tar.gz": files or _files()})


def test_labels_carry_the_devkit_s_three_values():
    y = torch.tensor([voc2007_cls.voc_labels(CLASSES, [c for c, _ in o], [d for _, d in o])
                      for o in IMAGES.values()])
    gt = voc2007_cls.gt_values(y, len(CLASSES))
    k = CLASSES.index
    assert gt[0, k("chair")] == 1  # a non-difficult chair beside a difficult one: present
    assert gt[3, k("car")] == 0  # only a difficult car: ignored, as VOCevalcls.m scores it
    assert gt[5, k("person")] == 0 and gt[5, k("horse")] == 1
    assert gt[1, k("dog")] == -1 and (gt[1] == 1).sum() == 1


def test_prepare_from_the_shards_folder_or_its_own_subfolder_then_load(tmp_path):
    shards = _shards(tmp_path / "shared")
    root = voc2007_cls.VOC2007_CLS.prepare(shards / "voc2007")  # SHA256SUMS in the parent
    assert root.is_dir() and voc2007_cls.VOC2007_CLS.verify() is None
    train = voc2007_cls.VOC2007_CLS.load("train", 32)
    test = voc2007_cls.VOC2007_CLS.load("test", 32)
    assert tuple(train.x.shape) == (3, 3, 32, 32) and len(test) == 3  # warped whole, val = test
    assert train.classes == CLASSES
    gt = voc2007_cls.gt_values(test.y, 20)
    assert gt[0, CLASSES.index("car")] == 0 and gt[1, CLASSES.index("bicycle")] == 1


def test_a_byte_flipped_shard_is_one_error_naming_it(tmp_path):
    shards = _shards(tmp_path / "shared")
    f = shards / "voc2007" / "voc2007-trainval-0.tar.gz"
    data = bytearray(f.read_bytes())
    data[100] ^= 0xFF
    f.write_bytes(bytes(data))
    with pytest.raises(DataError) as e:
        voc2007_cls.VOC2007_CLS.prepare(shards)
    assert "voc2007-trainval-0.tar.gz" in str(e.value) and "\n" not in str(e.value)


def test_an_unknown_object_name_is_refused(tmp_path):
    files = _files({**IMAGES, "000016": [("unicorn", False)]})
    with pytest.raises(DataError, match="unicorn"):
        voc2007_cls.VOC2007_CLS.prepare(_shards(tmp_path / "shared", files))


def test_the_loss_leaves_out_ignored_classes_and_the_score_is_the_devkit_s_map():
    y = torch.tensor([voc2007_cls.voc_labels(CLASSES, ["car"], [True]),
                      voc2007_cls.voc_labels(CLASSES, ["car"], [False]),
                      voc2007_cls.voc_labels(CLASSES, ["dog"], [False])])
    out = torch.zeros(3, 20)
    base = metrics.loss(VOC07_CLS, out, y)
    out[0, CLASSES.index("car")] = 50.0  # any score on the ignored entry: no change
    assert math.isclose(metrics.loss(VOC07_CLS, out, y).item(), base.item(), rel_tol=1e-6)
    out[2, CLASSES.index("car")] = 50.0  # a confident negative: the loss rises
    assert metrics.loss(VOC07_CLS, out, y).item() > base.item()
    scores = torch.zeros(3, 20)
    scores[:, CLASSES.index("car")] = torch.tensor([9.0, 1.0, 0.0])  # the ignored image first
    scores[:, CLASSES.index("dog")] = torch.tensor([0.0, 0.0, 1.0])
    r = metrics.score(VOC07_CLS, scores, y, CLASSES)
    assert r["AP"]["car"] == pytest.approx(100.0) and r["AP"]["dog"] == pytest.approx(100.0)
    assert r["top1"] == pytest.approx(100.0) and math.isnan(r["AP"]["cat"])


def test_small_v3_judges_voc_cls_fine_tuning_and_keeps_v2_as_published():
    small, v2 = scales.get("small"), scales.get("small-v2")
    assert small.protocol == 3 and small.claims == 3 and small.key == "small"
    assert v2.protocol == 2 and v2.claims == 2 and v2.key == "small"
    assert small.data_sets() == ("tiny-imagenet-200", "voc2007-cls", "cifar-10", "15-scene")
    assert small.judged == "voc2007-cls/finetune" and small.overlap == "pascal-voc"
    assert small.source == "tiny-imagenet-200:main-v3" and v2.source == "tiny-imagenet-200:main"
    assert small.finetune_config("voc2007-cls").repeats >= 3  # issue 21: 3 repeats at least
    assert small.pretrain.bf16 is False and v2.pretrain.bf16 is True
