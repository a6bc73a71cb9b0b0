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


def test_knn_similarities_formed_in_blocks_give_the_whole_matrix_s_neighbours(monkeypatch):
    """transfer.knn forms test x training similarities a block of rows at a time (the paper's
    ImageNet probe would need 239 GiB at once); the neighbours are those of the whole matrix."""
    g = torch.Generator().manual_seed(0)
    fte = torch.nn.functional.normalize(torch.randn(37, 8, generator=g), dim=1)
    ftr = torch.nn.functional.normalize(torch.randn(50, 8, generator=g), dim=1)
    whole = (fte @ ftr.T).topk(5, dim=1)
    for budget, blocks in ((4 * 50 * 6, 7), (1, 37), (4 * 50 * 37, 1)):
        monkeypatch.setattr(transfer, "SIMILARITY_BLOCK_BYTES", budget)
        seen = []
        monkeypatch.setattr(torch.Tensor, "topk", lambda t, *a, _f=torch.Tensor.topk, **kw:
                            seen.append(len(t)) or _f(t, *a, **kw))
        top, idx = transfer._nearest(fte, ftr, 5)
        monkeypatch.undo()
        assert len(seen) == blocks and sum(seen) == 37
        assert torch.equal(idx, whole.indices) and torch.allclose(top, whole.values)
    top, idx = transfer._nearest(fte[:0], ftr, 5)  # an empty test set: empty, as topk whole
    assert top.shape == idx.shape == (0, 5)
    # small scale's largest k-NN (Tiny ImageNet's 160 main classes: 8,000 test x 80,000
    # training images) stays one block, computed whole as before blocks existed
    assert transfer.SIMILARITY_BLOCK_BYTES >= 4 * 8_000 * 80_000
