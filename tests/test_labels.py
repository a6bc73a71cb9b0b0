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


def test_chosen_levels_are_the_closest_shares():
    got = labels.chosen_levels(H, list(smoke.SOURCE_CLASSES))
    assert got == {("down-up", 918): ("down-up", 15), ("down-up", 753): ("down-up", 12),
                   ("down-up", 486): ("down-up", 9), ("up-down", 127): ("down-up", 2),
                   ("down-up", 79): ("down-up", 2), ("down-up", 9): ("down-up", 2)}
    assert labels.chosen_levels(H, LEAVES)[("up-down", 127)] == ("up-down", 127)


def test_no_analogue_is_coarser_than_a_tenth_unless_the_papers_is():
    leaves = [f"x{i}" for i in range(160)]
    levels = {"down-up": {159: {}, 87: {}, 34: {}, 16: {}, 8: {}, 2: {}},
              "up-down": {82: {}, 6: {}}}
    import itl.wordnet as wn
    real = wn.levels
    try:
        wn.levels = lambda h, lv, scheme: levels[scheme]
        got = labels.chosen_levels(None, leaves)
    finally:
        wn.levels = real
    # 127 of 1000 (12.7%): up-down offers 82 (51%) or 6 (3.7%): the closest level of any
    # scheme holding at least a tenth is taken instead
    assert got[("up-down", 127)] == ("down-up", 16)
    assert got[("down-up", 79)] == ("down-up", 16) and got[("down-up", 9)] == ("down-up", 2)


@pytest.fixture
def tiny(reference, tmp_path, monkeypatch):
    import tarfile
    shard = reference.parents[1] / "data" / "tiny-imagenet-200" / "val.tar.gz"
    with tarfile.open(shard) as t:
        t.extract("tiny-imagenet-200/wnids.txt", tmp_path, filter="data")
    monkeypatch.setenv("ITL_DATA", str(tmp_path))
    return labels.dataset_leaves("tiny-imagenet-200")


def test_tiny_imagenet_levels_splits_and_cifar_removal(tiny):
    assert len(tiny) == 200 and set(tiny) <= set(LEAVES)
    assert list(wordnet.levels(H, tiny, "down-up")) == [
        199, 192, 188, 185, 177, 159, 134, 107, 73, 37, 18, 8, 4, 2, 1]
    assert list(wordnet.levels(H, tiny, "up-down")) == [88, 6, 1]
    assert len(labels.without_target(H, tiny, "cifar-10")) == 178
    got = labels.chosen_levels(H, tiny)
    assert got[("down-up", 918)] == ("down-up", 185) and got[("down-up", 9)] == ("down-up", 2)
    r, m = labels.random_split(H, tiny, 0), labels.minimal_split(H, tiny)
    assert (len(r.a), len(m.a)) == (100, 100) and m.shared_ancestors < r.shared_ancestors


def test_tiny_imagenet_holds_out_40_classes_unrelated_to_cifar(tiny):
    main = labels.dataset_leaves("tiny-imagenet-200:main")
    extra = labels.dataset_leaves("tiny-imagenet-200:extra")
    assert (len(main), len(extra)) == (160, 40) and set(main) | set(extra) == set(tiny)
    assert not set(main) & set(extra)
    assert labels.without_target(H, extra, "cifar-10") == extra


def test_every_claim_resolves_its_conditions_at_small_scale(tiny):
    from itl import claims, scales
    small = scales.get("small-v2")
    for c in claims.CLAIMS_V2.values():
        conds = c.conditions(small)
        assert conds and len(set(conds)) == len(conds), c.id
    assert claims.level(small, "up-down", 127) == "labels=down-up:16"  # 10% of 160 classes
    v3 = scales.get("small")
    for c in claims.CLAIMS.values():
        conds = c.conditions(v3)
        assert conds and len(set(conds)) == len(conds), c.id


def test_own_label_rows_give_the_papers_counts_for_its_own_sets():
    """Over ImageNet-1k's leaves each of the paper's sets is its own analogue, and PASCAL's
    classes keeping a label of their own are those issue 21 counted: 486 keeps 13 of 19,
    127 keeps 8, 79 keeps 3 (CIFAR-10's counted beside)."""
    h = wordnet.load()
    rows = labels.own_label_rows(h, labels.imagenet1k_wnids(),
                                 [("down-up", 486), ("up-down", 127), ("down-up", 79),
                                  ("down-up", 877)])
    assert [r[2] for r in rows] == ["13 of 19", "8 of 19", "3 of 19", "19 of 19"]
    assert [r[4] for r in rows] == ["down-up 486: 13 of 19", "up-down 127: 8 of 19",
                                    "down-up 79: 3 of 19", "none"]
    assert rows[0][1] == "0.486" and rows[0][3].endswith("of 9")
    assert len(rows[0]) == len(labels.OWN_LABEL_HEADERS)
