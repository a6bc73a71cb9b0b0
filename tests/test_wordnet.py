import re
from importlib import resources
from pathlib import Path

import pytest

from itl import labels, wordnet

H = wordnet.load()
LEAVES = labels.imagenet1k_wnids()


def test_hierarchy_file_regenerates_unchanged():
    if not (wordnet.WORDNET_DIR / "data.noun").exists():
        pytest.skip("WordNet 3.0 (Debian wordnet-base) is not installed")
    fresh = wordnet.format_hierarchy(wordnet.build_hierarchy(labels.hierarchy_wnids()))
    kept = resources.files("itl.resources").joinpath(wordnet.HIERARCHY_FILE).read_text()
    assert fresh == kept


def _published(reference: Path):
    for f in sorted((reference / "hierarchy").glob("synset_words_*.txt")):
        scheme, n = re.match(r"synset_words_(down_up|up_down)_(\d+)\.txt", f.name).groups()
        yield scheme.replace("_", "-"), int(n), {line.split()[0] for line in f.open()}


def test_all_21_published_label_sets_exactly(reference):
    sets = list(_published(reference))
    assert len(sets) == 21
    for scheme, n, wnids in sets:
        lv = wordnet.levels(H, LEAVES, scheme)
        assert n in lv, f"{scheme} gives no level of {n} classes"
        assert set(lv[n].values()) == wnids, f"{scheme} {n}"


@pytest.mark.parametrize("scheme", list(wordnet.SCHEMES))
def test_every_leaf_maps_to_an_ancestor_in_the_set(scheme):
    for n, lab in wordnet.levels(H, LEAVES, scheme).items():
        assert set(lab) == set(LEAVES)
        assert len(set(lab.values())) == n
        for leaf, merged in lab.items():
            assert H.is_under(leaf, merged)


def test_down_up_counts_are_the_papers():
    assert list(wordnet.levels(H, LEAVES, "down-up")) == [
        999, 977, 918, 877, 820, 753, 694, 596, 486, 345, 206, 79, 36, 17, 9, 5, 2, 1]
    assert list(wordnet.levels(H, LEAVES, "up-down")) == [127, 10, 2]


def test_first_hypernym_is_the_one_whose_name_sorts_first():
    dog = H.synsets["n02084071"]
    assert [H.synsets[w].name for w in dog.hypernyms] == ["canine.n.02", "domestic_animal.n.01"]
    assert H.parent("n02084071") == "n02083346"


def test_unknown_wnid_is_named():
    with pytest.raises(KeyError, match="n99999999"):
        wordnet.levels(H, ["n99999999"], "down-up")
    with pytest.raises(ValueError, match="down-up"):
        wordnet.levels(H, LEAVES, "sideways")
