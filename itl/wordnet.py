"""The WordNet noun hierarchy behind the paper's class-count experiments (Section 5).

Huh, Agrawal & Efros merge ImageNet's 1000 classes along WordNet 3.0 (whose noun offsets are
ImageNet's wnids) to get 918, 753, 486, 127, 79 and 9 classes. Their published class sets fix the
rules this module follows (see `../shared/reference/README.md`):

- a synset's *parent* is its FIRST hypernym, where "first" means the hypernym whose synset name
  (`lemma.n.NN`) sorts first -- the order the WordNet reader of 2016 returned. WordNet's own pointer
  order gives different sets (819 instead of 820 classes, ...).
- a synset's *depth* is the length of its chain of parents to the root (`entity`).
- down-up: repeatedly replace every label at the current maximum depth by its parent, then lower
  the maximum depth by one; each step's distinct labels form one class set.
- up-down: for d = 1..3, replace every label by its parent, then merge every label that lies under
  another label (following parents) into that label.

itl needs neither network nor WordNet at run time: `build_hierarchy` turns Debian's `wordnet-base`
(WordNet 3.0) into a compact TSV kept in the package (`itl/resources/wordnet30_hierarchy.tsv`),
holding the ancestors of every class itl knows, one synset a line:
`wnid <TAB> name <TAB> hypernyms sorted by name, space-separated <TAB> first lemma`.
"""
from __future__ import annotations

import functools
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

ROOT = "n00001740"  # entity.n.01
WORDNET_DIR = Path("/usr/share/wordnet")  # Debian's wordnet-base (WordNet 3.0)
HIERARCHY_FILE = "wordnet30_hierarchy.tsv"


@dataclass(frozen=True)
class Synset:
    wnid: str  # "n" + 8-digit WordNet 3.0 noun offset, as ImageNet names classes
    name: str  # NLTK-style synset name, e.g. "canine.n.02"
    hypernyms: tuple[str, ...]  # wnids, sorted by their synset name: hypernyms[0] is the parent
    lemma: str  # first lemma, underscores as spaces, e.g. "domestic dog"


# ---------------------------------------------------------------- building from WordNet 3.0


def _parse_wordnet(wordnet_dir: Path) -> dict[str, Synset]:
    """Every noun synset of WordNet 3.0 with its NLTK-style name and sorted hypernyms."""
    data, index = wordnet_dir / "data.noun", wordnet_dir / "index.noun"
    for f in (data, index):
        if not f.is_file():
            raise FileNotFoundError(
                f"WordNet 3.0 file {f} not found: install Debian's wordnet-base "
                "(apt-get install wordnet-base) or pass the folder holding data.noun/index.noun")
    senses: dict[str, list[str]] = {}  # lowercased lemma -> offsets in sense order
    for line in index.read_text(encoding="latin-1").splitlines():
        if line.startswith(" "):
            continue  # licence header
        f = line.split()
        n_synsets, n_ptrs = int(f[2]), int(f[3])
        senses[f[0]] = f[4 + n_ptrs + 2:][:n_synsets]
    raw: dict[str, tuple[list[str], list[str]]] = {}
    for line in data.read_text(encoding="latin-1").splitlines():
        if line.startswith(" "):
            continue
        f = line.split(" | ")[0].split()
        offset, n_words = f[0], int(f[3], 16)
        words = [f[4 + 2 * i] for i in range(n_words)]
        i = 4 + 2 * n_words
        n_ptrs = int(f[i])
        ptrs = [f[i + 1 + 4 * k: i + 5 + 4 * k] for k in range(n_ptrs)]
        hyper = ["n" + p[1] for p in ptrs if p[0] == "@" and p[2] == "n"]  # not instance (@i)
        raw["n" + offset] = (words, hyper)
    names = {}
    for wnid, (words, _) in raw.items():
        lemma = words[0].lower()
        sense = senses[lemma].index(wnid[1:]) + 1
        names[wnid] = f"{lemma}.n.{sense:02d}"
    return {
        wnid: Synset(wnid, names[wnid], tuple(sorted(hyper, key=names.__getitem__)),
                     words[0].replace("_", " "))
        for wnid, (words, hyper) in raw.items()
    }


def build_hierarchy(wnids: Iterable[str], wordnet_dir: Path = WORDNET_DIR) -> list[Synset]:
    """The given synsets and all their ancestors (through every hypernym), sorted by wnid."""
    everything = _parse_wordnet(Path(wordnet_dir))
    keep: set[str] = set()
    stack = list(wnids)
    while stack:
        w = stack.pop()
        if w in keep:
            continue
        if w not in everything:
            raise KeyError(f"{w} is not a WordNet 3.0 noun synset")
        keep.add(w)
        stack.extend(everything[w].hypernyms)
    return [everything[w] for w in sorted(keep)]


def format_hierarchy(synsets: Sequence[Synset]) -> str:
    return "".join(f"{s.wnid}\t{s.name}\t{' '.join(s.hypernyms)}\t{s.lemma}\n" for s in synsets)


# ---------------------------------------------------------------- the hierarchy at run time


class Hierarchy:
    """The first-hypernym tree over the synsets in the compact file."""

    def __init__(self, synsets: Iterable[Synset]):
        self.synsets = {s.wnid: s for s in synsets}

    @classmethod
    def parse(cls, text: str) -> "Hierarchy":
        out = []
        for line in text.splitlines():
            wnid, name, hyper, lemma = line.split("\t")
            out.append(Synset(wnid, name, tuple(hyper.split()), lemma))
        return cls(out)

    def __contains__(self, wnid: str) -> bool:
        return wnid in self.synsets

    def check(self, wnids: Iterable[str]) -> None:
        missing = [w for w in wnids if w not in self.synsets]
        if missing:
            raise KeyError(f"unknown WordNet id(s) {', '.join(missing[:10])}: not in itl's "
                           f"WordNet 3.0 hierarchy ({len(self.synsets)} synsets)")

    def parent(self, wnid: str) -> str | None:
        h = self.synsets[wnid].hypernyms
        return h[0] if h else None

    def lemma(self, wnid: str) -> str:
        return self.synsets[wnid].lemma

    @functools.lru_cache(maxsize=None)
    def path(self, wnid: str) -> tuple[str, ...]:
        """wnid, its parent, ..., the root."""
        p = self.parent(wnid)
        return (wnid,) if p is None else (wnid,) + self.path(p)

    def depth(self, wnid: str) -> int:
        return len(self.path(wnid)) - 1

    def is_under(self, wnid: str, ancestor: str) -> bool:
        """True when `ancestor` is on wnid's first-hypernym path (wnid itself included)."""
        return ancestor in self.path(wnid)

    def is_under_any_hypernym(self, wnid: str, ancestor: str) -> bool:
        """True when `ancestor` is reachable through any hypernym (the full WordNet DAG)."""
        stack, seen = [wnid], set()
        while stack:
            w = stack.pop()
            if w == ancestor:
                return True
            if w not in seen:
                seen.add(w)
                stack.extend(self.synsets[w].hypernyms)
        return False


@functools.lru_cache(maxsize=1)
def load() -> Hierarchy:
    text = resources.files("itl.resources").joinpath(HIERARCHY_FILE).read_text(encoding="utf-8")
    return Hierarchy.parse(text)


# ---------------------------------------------------------------- the authors' two procedures

Labeling = dict[str, str]  # leaf wnid -> merged wnid


def down_up(h: Hierarchy, leaves: Sequence[str]) -> list[Labeling]:
    """Bottom-up merging: one labeling per distinct class count, finest first (leaves excluded)."""
    h.check(leaves)
    label = {leaf: leaf for leaf in leaves}
    levels: list[Labeling] = []
    n = len(set(label.values()))
    for d in range(max(h.depth(w) for w in leaves), 0, -1):
        label = {leaf: (h.parent(w) if h.depth(w) == d else w) for leaf, w in label.items()}
        k = len(set(label.values()))
        if k != n:
            levels.append(dict(label))
            n = k
    return levels


def up_down(h: Hierarchy, leaves: Sequence[str], steps: int = 3) -> list[Labeling]:
    """Top-down clustering at a fixed height: one labeling per step d = 1..steps."""
    h.check(leaves)
    label = {leaf: leaf for leaf in leaves}
    levels: list[Labeling] = []
    for _ in range(steps):
        label = {leaf: (h.parent(w) or w) for leaf, w in label.items()}
        distinct = set(label.values())
        # merge each label into the highest other label above it on its first-hypernym path
        top = {w: next(a for a in reversed(h.path(w)) if a in distinct) for w in distinct}
        label = {leaf: top[w] for leaf, w in label.items()}
        levels.append(dict(label))
    return levels


SCHEMES = {"down-up": down_up, "up-down": up_down}


def levels(h: Hierarchy, leaves: Sequence[str], scheme: str) -> dict[int, Labeling]:
    """Every level a scheme gives, keyed by its class count."""
    if scheme not in SCHEMES:
        raise ValueError(f"unknown scheme {scheme!r}: choose one of {', '.join(SCHEMES)}")
    return {len(set(lab.values())): lab for lab in SCHEMES[scheme](h, leaves)}


def default_wordnet_dir() -> Path:
    value = os.environ.get("ITL_WORDNET")
    if value is not None and not value.strip():
        raise ValueError("ITL_WORDNET is set but empty: set it to the folder of WordNet 3.0's "
                         f"data.noun, or unset it for {WORDNET_DIR}")
    return Path(value or WORDNET_DIR)
