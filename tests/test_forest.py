"""The forest plot's table: one row per claim and protocol, margins per protocol, missing
results shown as "not run", and a figure written."""
import csv
import io
import math
from types import SimpleNamespace

from itl import claims, forest


def _section(cid: str, margin: float, mean: float, n: int = 5, verdict: str = "reproduced"):
    claim = SimpleNamespace(id=cid, margin=margin, direction="below")
    est = claims.Estimate(mean, mean - 1, mean + 1, n) if n else claims.estimate([])
    return {"claim": claim, "estimate": est, "verdict": verdict}


def test_rows_keep_each_protocols_margin_and_mark_missing_results(tmp_path):
    old = [_section("section5_2", 10, 57.3, verdict="not reproduced"), _section("section6", 10, -4.7)]
    new = [_section("section6", 20, 3.0), _section("section5_2", 20, math.nan, n=0)]
    table = forest.rows({"small-v2": old, "small": new})
    assert [(r["claim"], r["protocol"]) for r in table] == [
        ("section6", "small-v2"), ("section6", "small"),
        ("section5_2", "small-v2"), ("section5_2", "small")]
    by = {(r["claim"], r["protocol"]): r for r in table}
    assert by["section6", "small-v2"]["margin"] == 10 and by["section6", "small"]["margin"] == 20
    assert by["section5_2", "small"]["verdict"] == "not run"
    assert by["section5_2", "small-v2"]["verdict"] == "not reproduced"
    back = list(csv.DictReader(io.StringIO(forest.to_csv(table))))
    assert len(back) == 4 and back[0]["mean"] == "-4.7000" and back[3]["mean"] == "nan"
    forest.plot(table, tmp_path / "f.png", "t")
    assert (tmp_path / "f.png").stat().st_size > 1000


def test_an_incomplete_section_is_not_run_whatever_its_partial_interval_says():
    """A grid in progress: two seeds can give an interval and even a verdict; until every
    condition has every seed (`complete`), the claim is shown "not run"."""
    partial = _section("section5_3", 50, 68.2, n=2, verdict="reproduced")
    done = _section("section6", 20, 3.0)
    table = forest.rows({"small": [partial, done]}, complete=lambda s: s is done)
    assert {r["claim"]: r["verdict"] for r in table} == {"section5_3": "not run",
                                                          "section6": "reproduced"}
    assert math.isnan(table[0]["mean"])
