"""DVC stages and pytest experiments share one run store: what one trained, the other reuses."""
import dataclasses
import json

import pytest

from itl import claims, pipeline, stages, train


def test_a_stage_reuses_what_the_experiments_trained(tmp_path, monkeypatch):
    first = pipeline.pretrain("smoke", "images-per-class=50", 0)  # as an experiment test would

    def no_training(*a, **k):
        raise AssertionError("the DVC stage retrained a finished run")

    monkeypatch.setattr(train, "pretrain", no_training)
    claim = dataclasses.replace(claims.SECTION4, conditions=lambda s: ("images-per-class=50",))
    out = tmp_path / "pretrain"
    stages.pretrain("smoke", claim, out, seeds=(0,))
    copied = json.loads((out / "images-per-class_50-seed0" / "metrics.json").read_text())
    assert copied["run"] == first["run"] and (out / "images-per-class_50-seed0" /
                                              "checkpoint.pt").exists()


def test_params_name_only_known_claims(tmp_path):
    p = tmp_path / "params.yaml"
    p.write_text("scale: smoke\nclaims: [section4, section9]\n")
    with pytest.raises(ValueError, match="section9"):
        stages._claims(stages.params(p))
