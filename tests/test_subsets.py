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


@pytest.mark.parametrize("bad", ["images-per-class=0", "images-per-class=x", "classes=3", ""])
def test_bad_rules_are_named(bad, source):
    with pytest.raises(subsets.SubsetError, match="bad subset"):
        subsets.build(bad, source, "smoke", 0)


def test_save_writes_json_once(source, tmp_path):
    m = subsets.build("full", source, "smoke", 0)
    p = subsets.save(m, tmp_path)
    assert json.loads(p.read_text())["sha256"] == m.sha256
