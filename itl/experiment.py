"""The shape every experiment test takes (one file per section of the paper): one test per
(condition, seed) that trains and transfers it, and one test that judges the claim.

At every scale the tests assert pipeline sanity: every run finished, accuracies above chance,
pre-training beats random initialisation on the target. At smoke scale the verdict is reported
only (generated data is no evidence about the paper); at small and paper scale it is asserted.
"""
from __future__ import annotations

import json
import statistics

from itl import claims, data, paths, pipeline, scales


def _chance(target: str) -> float:
    return 100.0 / len(data.load(target.partition("|")[0], "test").classes)


def check_condition(claim: claims.Claim, scale: scales.Scale, condition: str, seed: int) -> dict:
    r = pipeline.condition(scale, condition, seed, probes=claim.probes(scale))
    if condition != pipeline.RANDOM:  # the run condition() just trained or read
        pre = json.loads((paths.runs_dir() / r["pretrain_run"] / "metrics.json").read_text())
        assert pre["steps"] > 0 and pre["classes"] >= 2
        assert r["source_top1"] > 100.0 / pre["classes"], "pre-training learned nothing"
    for key, value in r.items():
        if "/" in key:
            assert 0.0 <= value <= 100.0, f"{key} = {value}"
    return r


def check_claim(claim: claims.Claim, scale: scales.Scale) -> tuple[claims.Estimate, str]:
    conds = claim.conditions(scale)
    res = pipeline.results(scale, conds, probes=claim.probes(scale))  # trains what's missing
    assert all(len(res[c]) == len(scale.seeds) for c in conds + (pipeline.RANDOM,))
    metric = pipeline.primary_metric(scale)
    chance = 0.0 if metric.endswith("/detect") else _chance(scale.targets[0])
    mean = {c: statistics.fmean(res[c][s][metric] for s in scale.seeds) for c in res}
    assert all(m > chance for c, m in mean.items() if c != pipeline.RANDOM), (mean, chance)
    best = max(mean[c] for c in conds)
    assert best > mean[pipeline.RANDOM], (
        f"no pre-training beats random init on {metric}: {mean}")
    est, verdict = claim.verdict(res, scale)
    at = ", ".join(f"{f:g}x margin: {v}" for f, v in claim.verdicts(res, scale).items())
    print(f"{claim.id} at {scale.name}: {est} vs margin {claim.margin:g} ({claim.direction}) "
          f"-> {verdict} ({at})")
    if scale.name != "smoke":
        assert verdict == claims.REPRODUCED, f"{claim.id}: {verdict}, {est}"
    return est, verdict


def make_tests(claim_id: str):
    """(test_condition, test_claim) of one section, for its experiment file."""
    claim = claims.CLAIMS[claim_id]

    def test_condition(scale: scales.Scale, condition: str, seed: int) -> None:
        check_condition(claim, scale, condition, seed)

    def test_claim(scale: scales.Scale) -> None:
        check_claim(claim, scale)

    test_condition.claim = claim
    return test_condition, test_claim
