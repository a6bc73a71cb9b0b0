import pytest
import torch

from itl import data, models, transfer


@pytest.fixture(scope="module")
def target():
    return data.load("smoke-target", "train"), data.load("smoke-target", "test")


def _pretrained():
    net = models.build("small_cnn", 16, seed=0)
    with torch.no_grad():  # make batch-norm statistics non-trivial, as after training
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-1, 1)
                m.running_var.uniform_(0.5, 2)
    return net


def test_probe_trains_only_the_head_and_backbone_stays_bit_identical(target):
    net = _pretrained()
    net.train()  # even in train mode, features are read with frozen statistics
    before = {k: v.clone() for k, v in net.state_dict().items()}
    r = transfer.linear_probe(net, *target, transfer.ProbeConfig(iterations=20), seed=0)
    after = net.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert 100 / 6 < r["top1"] <= 100  # the probe learned: better than chance on 6 classes


def test_knn_leaves_backbone_unchanged(target):
    net = _pretrained()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    r = transfer.knn(net, *target, transfer.KnnConfig(k=5))
    assert all(torch.equal(before[k], net.state_dict()[k]) for k in before)
    assert r["top1"] > 100 / 6 - 10


def test_loading_pretrained_weights_leaves_only_the_head_missing():
    pre = _pretrained()
    net = transfer.with_new_head(pre, "small_cnn", 6, seed=1)
    assert net.head.out_features == 6
    for k, v in pre.backbone.state_dict().items():
        assert torch.equal(net.backbone.state_dict()[k], v)
    with pytest.raises(transfer.ProtocolError, match="only the head"):
        transfer.with_new_head(models.build("alexnet", 10, 0), "small_cnn", 6, seed=1)


@pytest.mark.parametrize("name", list(models.MODELS))
def test_models_have_a_replaceable_head(name):
    net = models.build(name, 7, seed=0)
    size = {"small_cnn": 32, "caffenet": models.CAFFENET_INPUT}.get(name, 64)  # caffenet's fc6
    x = torch.zeros(2, 3, size, size)  # takes pool5 at 227 px only, as Caffe's
    assert net(x).shape == (2, 7) and net.features(x).shape == (2, net.feature_dim)
    assert torch.equal(models.build(name, 7, 0).head.weight, net.head.weight)


def test_finetune_runs_and_training_moves_the_result(target):
    from itl import train
    untrained = train.evaluate(transfer.with_new_head(_pretrained(), "small_cnn", 6, 0),
                               target[1])
    r = transfer.finetune(_pretrained(), "small_cnn", *target,
                          transfer.FinetuneConfig(epochs=10, batch_size=32, lr=0.05), seed=0)
    assert r["top1"] > max(100 / 6, untrained) + 10 and r["top1"] <= 100  # ~58% on 1 or 2 threads


@pytest.mark.needs_cuda
def test_finetune_on_cuda(target):
    r = transfer.finetune(_pretrained(), "small_cnn", *target,
                          transfer.FinetuneConfig(epochs=10, batch_size=32, lr=0.05), seed=0)
    assert 100 / 6 + 10 < r["top1"] <= 100
