"""Scales: one protocol per scale; ITL_DETECTION=off leaves detection targets unrun and the
claims fall back to the first classification target."""
import pytest

from itl import pipeline, scales


def test_detection_is_on_by_default_and_off_drops_the_detection_targets(monkeypatch):
    monkeypatch.delenv("ITL_DETECTION", raising=False)
    assert scales.get("small-v2").detection == ("voc-cifar", "bccd")
    assert pipeline.primary_metric(scales.get("small-v2")) == "voc-cifar/detect"
    assert pipeline.primary_metric(scales.get("small")) == "voc2007-cls/finetune"  # v3: judged
    monkeypatch.setenv("ITL_DETECTION", "off")
    small = scales.get("small-v2")
    assert small.detection == () and small.pretrain == scales.SCALES["small-v2"].pretrain
    assert pipeline.primary_metric(scales.get("small-v2")) == f"{scales.CIFAR_TARGET}/finetune"
    assert pipeline.primary_metric(scales.get("small")) == "voc2007-cls/finetune"
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


def test_the_paper_scale_is_caffes_caffenet_solver():
    """BVLC/caffe models/bvlc_reference_caffenet/solver.prototxt and train_val.prototxt."""
    from itl import train
    cfg = scales.SCALES["paper"].pretrain
    assert cfg.model == "caffenet" and scales.SCALES["paper"].size == 256
    assert (cfg.batch_size, cfg.lr, cfg.momentum, cfg.weight_decay) == (256, 0.01, 0.9, 5e-4)
    assert (cfg.crop, cfg.crop_pad, cfg.caffe_param_groups) == (227, 0, True)
    s = train.schedule(cfg, 1_281_167)  # ImageNet-1k's training images
    assert (s.steps, s.milestones) == (450_000, (100_000, 200_000, 300_000, 400_000))
