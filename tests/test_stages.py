"""DVC stages and pytest experiments share one run store: what one trained, the other reuses."""
import dataclasses
import json
from pathlib import Path

import pytest
import yaml

from itl import claims, pipeline, report, scales, stages, train


def test_a_stage_reuses_what_the_experiments_trained(tmp_path, monkeypatch):
    smoke = scales.get("smoke")
    first = pipeline.pretrain(smoke, "images-per-class=50", 0)  # as an experiment test would

    def no_training(*a, **k):
        raise AssertionError("the DVC stage retrained a finished run")

    monkeypatch.setattr(train, "pretrain", no_training)
    claim = dataclasses.replace(claims.SECTION4, conditions=lambda s: ("images-per-class=50",))
    out = tmp_path / "pretrain"
    stages.pretrain(smoke, claim, out, seeds=(0,))
    copied = json.loads((out / "images-per-class_50-seed0" / "metrics.json").read_text())
    assert copied["run"] == first["run"] and (out / "images-per-class_50-seed0" /
                                              "checkpoint.pt").exists()


def test_params_name_only_known_claims(tmp_path):
    p = tmp_path / "params.yaml"
    p.write_text("scale: smoke\nclaims: [section4, section9]\n")
    with pytest.raises(ValueError, match="section9"):
        stages._claims(stages.params(p))


def test_dvc_metrics_are_one_record_per_claim_and_plots_read_the_figure_data():
    spec = yaml.safe_load((Path(__file__).resolve().parents[1] / "dvc.yaml").read_text())
    assert spec["stages"]["report"]["metrics"] == [{"reports/${scale}/metrics": {"cache": False}}]
    assert spec["metrics"] == ["reports/small-v2/metrics"]  # the committed small v2 verdicts
    assert report.section_files("section6")[2] == "metrics/section6.json"
    figures = {name: x for name, x in (("figure1_images_per_class", "images_per_class"),
                                       ("figure2_number_of_classes", "classes"))}
    assert {name for name, _ in report.FIGURES.values()} == set(figures)
    data = [next(iter(p.values())) for p in spec["plots"] if isinstance(p, dict)]
    assert len(data) == 2
    for d in data:
        (path, ys), = d["y"].items()
        name = Path(path).stem
        assert path == f"reports/${{scale}}/{name}.csv" and d["x"] == figures[name]
        assert set(ys) <= {"source", "transfer", "random_init"}
