import pytest

from itl import labels, smoke, wordnet

H = wordnet.load()
LEAVES = labels.imagenet1k_wnids()


def test_imagenet_class_list_is_the_standard_order(reference):
    assert LEAVES == (reference / "synsets.txt").read_text().split()


def test_pascal_removed_imagenet_keeps_771():
    kept = labels.without_target(H, LEAVES, "pascal-voc")
    assert len(kept) == 771 and len(set(LEAVES) - set(kept)) == 229


def test_unknown_target_lists_the_known():
    with pytest.raises(ValueError, match="pascal-voc"):
        labels.without_target(H, LEAVES, "coco")


@pytest.mark.parametrize("leaves", [LEAVES, list(smoke.SOURCE_CLASSES)], ids=["imagenet", "smoke"])
def test_splits_are_disjoint_halves_and_minimal_shares_less(leaves):
    r, m = labels.random_split(H, leaves, seed=0), labels.minimal_split(H, leaves)
    for s in (r, m):
        assert not set(s.a) & set(s.b)
        assert set(s.a) | set(s.b) == set(leaves)
        assert abs(len(s.a) - len(s.b)) <= 1
    assert m.shared_ancestors < r.shared_ancestors
    assert labels.random_split(H, leaves, seed=0) == r
