import hashlib

import pytest
import torch

from itl import data, labels, smoke, wordnet

H = wordnet.load()


def _digest(t: torch.Tensor) -> str:
    return hashlib.sha256(t.numpy().tobytes()).hexdigest()


def test_generation_is_deterministic():
    a = smoke.generate(smoke.SOURCE, "test", H, labels.imagenet1k_wnids())
    b = smoke.generate(smoke.SOURCE, "test", H, labels.imagenet1k_wnids())
    assert _digest(a[0]) == _digest(b[0]) and torch.equal(a[1], b[1])
    assert a[0].dtype == torch.uint8 and a[0].shape[1:] == (3, 32, 32)


def test_classes_are_imagenet_leaves_in_a_three_level_subtree():
    leaves = set(labels.imagenet1k_wnids())
    assert set(smoke.SOURCE_CLASSES) <= leaves
    assert len(wordnet.levels(H, smoke.SOURCE_CLASSES, "down-up")) >= 3
    assert not set(smoke.TARGET_CLASSES) & set(smoke.SOURCE_CLASSES)


def test_siblings_share_more_appearance_than_cousins():
    code = lambda w: smoke.class_code(H, w)  # noqa: E731
    terrier, beagle, tabby = "n02094433", "n02088364", "n02123045"  # dog, dog, cat
    tench, goldfish, shark = "n01440764", "n01443537", "n01484850"  # cyprinid x2, shark
    assert (code(tench) - code(goldfish)).norm() < (code(tench) - code(shark)).norm()
    assert (code(terrier) - code(beagle)).norm() < (code(terrier) - code(tabby)).norm()


def test_load_caches_and_reports_corrupt_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ITL_DATA", str(tmp_path))
    first = data.load("smoke-target", "train")
    cache = next((tmp_path / "smoke").glob("smoke-target-*-train.pt"))
    assert torch.equal(data.load("smoke-target", "train").x, first.x)
    cache.write_bytes(b"not a tensor file")
    with pytest.raises(data.DataError, match="corrupt data cache"):
        data.load("smoke-target", "train")


def test_unknown_and_unprepared_data_are_named():
    with pytest.raises(data.DataError, match="unknown data set 'nope'"):
        data.load("nope", "train")
    with pytest.raises(data.DataError, match="tiny-imagenet-200.*not prepared"):
        data.load("tiny-imagenet-200", "train")


def test_augment_keeps_shape_and_pixels():
    x = torch.randint(0, 256, (8, 3, 32, 32), dtype=torch.uint8)
    y = data.augment(x, 4, torch.Generator().manual_seed(0))
    assert y.shape == x.shape and y.dtype == torch.uint8
    y0 = data.augment(x, 0, torch.Generator().manual_seed(0))  # flip only
    for a, b in zip(x, y0):
        assert torch.equal(a, b) or torch.equal(a.flip(2), b)
