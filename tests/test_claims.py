import math

import pytest

from itl import claims, report, scales

SMOKE = scales.get("smoke")


def test_t_interval_by_hand():
    e = claims.estimate([1.0, 3.0])
    assert e.mean == 2.0 and math.isclose(e.hi - e.mean, 12.706 * math.sqrt(2) / math.sqrt(2))
    assert math.isnan(claims.estimate([1.0]).lo)


def _results(src, tgt):
    """src/tgt: {ipc: [per-seed values]}"""
    out = {}
    for ipc in src:
        for s, (a, b) in enumerate(zip(src[ipc], tgt[ipc])):
            out.setdefault(f"images-per-class={ipc}", {})[s] = {"source_top1": a, "smoke-target/finetune": b}
    return out


@pytest.mark.parametrize("src_half,tgt_half,verdict", [
    ([40, 41, 39], [49, 50, 49.5], claims.REPRODUCED),  # source -50%, transfer -1%
    ([79, 79.5, 78.5], [40, 41, 39], claims.NOT_REPRODUCED),  # source -1%, transfer -20%
    ([70, 72, 68], [44, 43, 45], claims.INCONCLUSIVE),  # both about -12%
])
def test_section4_verdict_rule(src_half, tgt_half, verdict):
    res = _results({1000: [80, 80, 80], 500: src_half}, {1000: [50, 50, 50], 500: tgt_half})
    est, v = claims.SECTION4.verdict(res, SMOKE)
    assert v == verdict and est.n == 3


def test_one_seed_is_inconclusive():
    res = _results({1000: [80], 500: [40]}, {1000: [50], 500: [50]})
    assert claims.SECTION4.verdict(res, SMOKE)[1] == claims.INCONCLUSIVE


def test_paper_values_have_sources():
    pv = report.paper_values()
    for section in pv.values():
        for v in section["values"]:
            assert v["source"] and isinstance(v["value"], float)
    assert {v["value"] for v in pv["section4"]["values"]} == {58.3, 57.0, 54.6}


def test_direction_below_and_not_reproduced():
    res = {"full": {0: {"smoke-target/finetune": 60}, 1: {"smoke-target/finetune": 61}},
           "without=pascal-voc": {0: {"smoke-target/finetune": 59.5},
                                  1: {"smoke-target/finetune": 60.5}}}
    est, v = claims.SECTION5_6A.verdict(res, SMOKE)  # drop about 0.8% < 5%: 'nearly as well'
    assert v == claims.REPRODUCED and est.hi < claims.NEAR
    res["without=pascal-voc"] = {0: {"smoke-target/finetune": 30}, 1: {"smoke-target/finetune": 31}}
    assert claims.SECTION5_6A.verdict(res, SMOKE)[1] == claims.NOT_REPRODUCED


def test_every_claim_has_conditions_at_smoke_and_a_unique_id():
    assert len(claims.CLAIMS) == 9
    for c in claims.CLAIMS.values():
        conds = c.conditions(SMOKE)
        assert conds and len(set(conds)) == len(conds)
        assert c.direction in ("above", "below")
    assert claims.level(SMOKE, "up-down", 127) == "labels=up-down:7"
