import json

import pytest

from itl import data, subsets


@pytest.fixture(scope="module")
def source():
    return data.load("smoke", "train")


def test_per_class_count_is_the_papers_fraction():
    assert [subsets.per_class_count(n, 80) for n in (1000, 500, 250, 125, 50)] == [80, 40, 20, 10, 4]
    assert subsets.per_class_count(1, 80) == 1


def test_manifest_is_deterministic_and_hashed(source):
    a = subsets.build("images-per-class=250", source, "smoke", seed=3)
    b = subsets.build("images-per-class=250", source, "smoke", seed=3)
    c = subsets.build("images-per-class=250", source, "smoke", seed=4)
    assert a.to_json() == b.to_json() and a.sha256 != c.sha256
    assert json.loads(a.to_json())["sha256"] == a.sha256
    assert len(a.indices) == 16 * 20


def test_smaller_subsets_are_nested(source):
    small = subsets.build("images-per-class=50", source, "smoke", 0)
    big = subsets.build("images-per-class=500", source, "smoke", 0)
    assert set(small.indices) < set(big.indices)


def test_apply_gives_labels_zero_to_c_minus_one(source):
    m = subsets.build("images-per-class=125", source, "smoke", 0)
    s = subsets.apply(m, source)
    assert len(s) == 160 and sorted(set(s.y.tolist())) == list(range(16))


@pytest.mark.parametrize("bad", ["images-per-class=0", "images-per-class=x", "colours=3", "classes=1",
                                 "labels=sideways:3", "split=random:c", "budget=10", ""])
def test_bad_rules_are_named(bad, source):
    with pytest.raises(subsets.SubsetError, match="bad subset"):
        subsets.build(bad, source, "smoke", 0)


def test_save_writes_json_once(source, tmp_path):
    m = subsets.build("full", source, "smoke", 0)
    p = subsets.save(m, tmp_path)
    assert json.loads(p.read_text())["sha256"] == m.sha256


@pytest.mark.parametrize("rule,classes,images", [
    ("classes=500", 8, 640), ("labels=down-up:9", 9, 1280), ("labels=up-down:7", 7, 1280),
    ("without=pascal-voc", 12, 960), ("split=minimal:a", 8, 640), ("split=random:b", 8, 640),
    ("budget=500x500", 8, 320), ("budget=1000x250", 16, 320),
])
def test_every_rule_gives_labels_zero_to_c_minus_one(rule, classes, images, source):
    m = subsets.build(rule, source, "smoke", 0)
    s = subsets.apply(m, source)
    assert (len(m.classes), len(s)) == (classes, images)
    assert sorted(set(s.y.tolist())) == list(range(classes))
    assert subsets.build(rule, source, "smoke", 0).sha256 == m.sha256


def test_split_halves_are_disjoint_and_cover(source):
    for kind in ("random", "minimal"):
        a = subsets.build(f"split={kind}:a", source, "smoke", 0)
        b = subsets.build(f"split={kind}:b", source, "smoke", 0)
        assert not set(a.label_of) & set(b.label_of)
        assert set(a.label_of) | set(b.label_of) == set(source.classes)


def test_coarse_labels_map_every_leaf_to_its_ancestor(source):
    from itl import wordnet
    m = subsets.build("labels=down-up:5", source, "smoke", 0)
    h = wordnet.load()
    assert all(h.is_under(leaf, merged) for leaf, merged in m.label_of.items())
    assert set(m.label_of) == set(source.classes)


def test_a_level_that_does_not_exist_lists_the_available(source):
    with pytest.raises(subsets.SubsetError, match="available: 15, 14"):
        subsets.build("labels=down-up:10", source, "smoke", 0)


@pytest.mark.parametrize("a,b", [("images-per-class=1000", "full"), ("budget=1000x500", "images-per-class=500"),
                                 ("budget=500x1000", "classes=500"), ("classes=1000", "full")])
def test_the_same_data_under_another_name_is_the_same_manifest(a, b, source):
    assert subsets.build(a, source, "smoke", 0).sha256 == subsets.build(b, source, "smoke", 0).sha256


def test_a_target_rule_picks_training_images_and_keeps_every_test_image_of_its_classes():
    from itl import pipeline
    train, test = data.load("smoke-target", "train"), data.load("smoke-target", "test")
    fewer = pipeline.target_images("smoke-target|images-per-class=500", "train", 0)
    assert len(fewer) == len(train) // 2 and fewer.classes == train.classes
    assert len(pipeline.target_images("smoke-target|images-per-class=500", "test", 0)) == len(test)
    half = pipeline.target_images("smoke|split=random:b", "train", 0)
    source = data.load("smoke", "train")
    assert len(half.classes) == 8 and len(half) == len(source) // 2  # every image of half B
    assert len(pipeline.target_images("smoke|split=random:b", "test", 0)) == len(
        data.load("smoke", "test")) // 2
    coarse = pipeline.target_images("smoke|labels=down-up:2", "train", 0)
    assert len(coarse) == len(source) and len(coarse.classes) == 2
