"""Scales: one protocol per scale; ITL_DETECTION=off leaves detection targets unrun and the
claims fall back to the first classification target."""
import pytest

from itl import pipeline, scales


def test_detection_is_on_by_default_and_off_drops_the_detection_targets(monkeypatch):
    monkeypatch.delenv("ITL_DETECTION", raising=False)
    assert scales.get("small").detection == ("voc-cifar", "bccd")
    assert pipeline.primary_metric("small") == "voc-cifar/detect"
    monkeypatch.setenv("ITL_DETECTION", "off")
    small = scales.get("small")
    assert small.detection == () and small.pretrain == scales.SCALES["small"].pretrain
    assert pipeline.primary_metric("small") == f"{scales.CIFAR_TARGET}/finetune"  # PASCAL's role
    assert scales.get("smoke") == scales.SCALES["smoke"]


def test_a_bad_detection_setting_is_named(monkeypatch):
    monkeypatch.setenv("ITL_DETECTION", "maybe")
    with pytest.raises(ValueError, match="ITL_DETECTION='maybe'"):
        scales.get("small")


def test_every_scale_model_and_target_is_known():
    from itl import models
    for scale in scales.SCALES.values():
        assert scale.pretrain.model in models.MODELS
        assert set(scale.targets) | set(scale.detection) <= set(scale.paper_task)
