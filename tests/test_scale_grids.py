"""The paper scale and the imagenet64 scale list their whole grid without any data: every
claim's conditions resolve (to the paper's own label sets: both sources are ImageNet-1k's 1000
classes), and `pytest experiments --scale S --collect-only` lists every condition x seed of every
section, none replaced by an 'unavailable' placeholder."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from itl import claims, pipeline, scales

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
