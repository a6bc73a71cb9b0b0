"""The paper scale and the imagenet64 scale list their whole grid without any data: every
claim's conditions resolve (to the paper's own label sets: both sources are ImageNet-1k's 1000
classes), and `pytest experiments --scale S --collect-only` lists every condition x seed of every
section, none replaced by an 'unavailable' placeholder."""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from itl import claims, grid, pipeline, scales

ROOT = Path(__file__).resolve().parents[1]
GRID_SCALES = ("paper", "imagenet64")


@pytest.mark.parametrize("name", GRID_SCALES)
def test_every_claim_resolves_to_the_papers_label_sets(name, tmp_path, monkeypatch):
    monkeypatch.setenv("ITL_DATA", str(tmp_path / "no-data"))  # nothing prepared
    scale = scales.get(name)
    conds = {cid: c.conditions(scale) for cid, c in claims.CLAIMS.items()}
    assert conds["section5_1"] == ("full", "labels=down-up:918", "labels=down-up:753",
                                   "labels=down-up:486", "labels=up-down:127",
                                   "labels=down-up:79", "labels=down-up:9")
    assert conds["section5_2"] == ("full", "labels=up-down:127")
    assert conds["section5_6a"] == ("full", "without=pascal-voc")
    assert conds["section6"] == ("full", "holdout=229")
    assert len(conds) == len(claims.CLAIMS) and all(conds.values())
    assert not (tmp_path / "no-data").exists()  # resolving read no data and wrote none


@pytest.mark.parametrize("name", GRID_SCALES)
def test_collection_lists_every_condition_and_seed(name, tmp_path):
    empty = tmp_path / "no-data"
    empty.mkdir()
    env = {**os.environ, "ITL_DATA": str(empty), "ITL_RUNS": str(tmp_path / "runs"),
           "ITL_REPORTS": str(tmp_path / "reports")}
    env.pop("ITL_SCALE", None)
    r = subprocess.run([sys.executable, "-m", "pytest", "experiments", "--scale", name,
                        "--collect-only", "-q", "-p", "no:cacheprovider", "-p", "no:xdist"],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0 and "Traceback" not in r.stdout + r.stderr, r.stdout + r.stderr
    listed = set(re.findall(r"^experiments/\S+$", r.stdout, flags=re.M))
    scale = scales.get(name)
    want = set()
    for cid, claim in claims.CLAIMS.items():
        [f] = (ROOT / "experiments").glob(f"test_{cid}_*.py")
        want.add(f"experiments/{f.name}::test_claim")
        for cond in claim.conditions(scale) + (pipeline.RANDOM,):
            for seed in scale.seeds:
                want.add(f"experiments/{f.name}::test_condition[{cond.replace('|', '_')}"
                         f"-seed{seed}]")
    # and the grid-as-jobs check (itl grid), which runs at smoke scale only
    want.add("experiments/test_grid_local.py::test_the_local_grid_gives_the_experiments_results")
    assert listed == want, (sorted(want - listed)[:5], sorted(listed - want)[:5])
    assert "unavailable" not in r.stdout
    assert list(empty.iterdir()) == [] and not (tmp_path / "runs").exists()


@pytest.fixture
def class_lists(tmp_path, monkeypatch):
    """Tiny ImageNet's class list where the small scales look for it (their conditions are
    drawn from its 200 wnids; no images needed); skips where ../shared is absent."""
    import tarfile
    shard = ROOT.parent / "shared" / "data" / "tiny-imagenet-200" / "val.tar.gz"
    if not shard.is_file():
        pytest.skip(f"{shard} is absent (../shared)")
    with tarfile.open(shard) as t:
        t.extract("tiny-imagenet-200/wnids.txt", tmp_path / "data", filter="data")
    monkeypatch.setenv("ITL_DATA", str(tmp_path / "data"))


@pytest.mark.parametrize("name", list(scales.SCALES))
def test_no_two_jobs_share_a_run_key(name, class_lists):
    """Each pre-training of the grid is one job: conditions that are one run (images-per-class
    =1000 is full; budget=1000x500 is images-per-class=500) are merged, every claim's
    condition is a job's name or alias, and each seed's transfers follow exactly one job."""
    scale = scales.get(name)
    found = grid.jobs(scale)
    keys = [(grid.pretraining(scale, j.condition), j.seed) for j in found]
    assert len(keys) == len(set(keys)), sorted(k for k in keys if keys.count(k) > 1)[:2]
    pretrain_keys = [json.dumps(pipeline.pretrain_key(scale, j.condition, j.seed), sort_keys=True)
                     for j in found if j.condition != pipeline.RANDOM]
    assert len(pretrain_keys) == len(set(pretrain_keys))
    named = {c for j in found for c in (j.condition,) + j.aliases}
    for claim in claims.CLAIMS.values():
        assert set(claim.conditions(scale)) <= named, claim.id
    for j in found:  # an alias has the job's run key
        assert all(grid.pretraining(scale, a) == grid.pretraining(scale, j.condition)
                   for a in j.aliases)
    by_condition: dict = {}
    for j in found:
        by_condition.setdefault(j.condition, []).extend(j.seeds)
    assert all(sorted(s) == sorted(scale.seeds) for s in by_condition.values())
    if name in ("smoke", "small", "paper"):  # the duplicates, each now one job
        assert "images-per-class=1000" in {a for j in found for a in j.aliases}


def test_the_paper_grid_is_one_pretraining_per_condition_fine_tuned_three_times(monkeypatch):
    """As the authors ran it: 18 conditions and the random init, one pre-training each (seed
    0), each followed by 3 fine-tunings per target (seeds 0, 1, 2); ITL_SEEDS=pre-training
    (itl grid --seeds pre-training) pre-trains every seed instead."""
    found = grid.jobs(scales.get("paper"))
    assert len(found) == 19 and {j.seed for j in found} == {0}
    assert all(j.seeds == (0, 1, 2) for j in found)
    w = grid.work(scales.get("paper"), found[0])
    assert [(t, n) for t, n, _ in w.finetunes + w.detects] == [
        ("sun397", 3), ("voc2012-action", 3), ("voc2007", 3)]
    monkeypatch.setenv("ITL_SEEDS", "pre-training")
    again = grid.jobs(scales.get("paper"))
    assert len(again) == 57 and all(j.seeds == (j.seed,) for j in again)
    assert {(j.condition, j.seed) for j in again} == {(j.condition, s) for j in found
                                                      for s in (0, 1, 2)}
    monkeypatch.setenv("ITL_SCHEDULE", "epochs")
    assert scales.get("paper").pretrain.budget == "epochs"
    assert scales.get("smoke").pretrain.budget == "epochs"  # an override: any scale
    monkeypatch.delenv("ITL_SCHEDULE")
    assert scales.get("paper").replicate == scales.PRETRAINING
    monkeypatch.delenv("ITL_SEEDS")
    assert scales.get("paper").replicate == scales.FINETUNING
    assert scales.get("small").replicate == scales.PRETRAINING  # its committed runs' layout
    monkeypatch.setenv("ITL_SEEDS", "both")
    with pytest.raises(ValueError, match="ITL_SEEDS='both' is not one of pre-training, "
                       "fine-tuning: set one of them, or unset ITL_SEEDS"):
        scales.get("paper")
