"""The paper's network, BVLC's CaffeNet, against Caffe's own model definition
(BVLC/caffe models/bvlc_reference_caffenet/train_val.prototxt), and Caffe's SGD rule."""
import math

import pytest
import torch
import torch.nn.functional as F

from itl import data, models

# train_val.prototxt, transcribed: layer -> (inputs, num_output, kernel_size, stride, pad, group,
# weight_filler std, bias_filler value); fc layers have kernel 0
PROTOTXT = {
    "conv1": (3, 96, 11, 4, 0, 1, 0.01, 0.0),
    "conv2": (96, 256, 5, 1, 2, 2, 0.01, 1.0),
    "conv3": (256, 384, 3, 1, 1, 1, 0.01, 0.0),
    "conv4": (384, 384, 3, 1, 1, 2, 0.01, 1.0),
    "conv5": (384, 256, 3, 1, 1, 2, 0.01, 1.0),
    "fc6": (256 * 6 * 6, 4096, 0, 1, 0, 1, 0.005, 1.0),
    "fc7": (4096, 4096, 0, 1, 0, 1, 0.005, 1.0),
    "fc8": (4096, 1000, 0, 1, 0, 1, 0.01, 0.0),
}
# the prototxt's layers in order, data and loss layers left out (pooling before LRN: CaffeNet)
ORDER = ["conv1", "relu1", "pool1", "norm1", "conv2", "relu2", "pool2", "norm2", "conv3",
         "relu3", "conv4", "relu4", "conv5", "relu5", "pool5"]


def _shapes(layer: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
    cin, cout, k, _, _, group, _, _ = PROTOTXT[layer]
    return ((cout, cin // group, k, k) if k else (cout, cin)), (cout,)


@pytest.fixture(scope="module")
def net():
    return models.build("caffenet", 1000, seed=0)


def _layers(net: models.Net) -> dict:
    return {**dict(net.backbone.features.named_children()),
            **dict(net.backbone.classifier.named_children()), "fc8": net.head}


def test_parameter_count_is_caffes(net):
    expected = sum(math.prod(w) + math.prod(b) for w, b in map(_shapes, PROTOTXT))
    assert expected == 60_965_224
    assert sum(p.numel() for p in net.parameters()) == expected


def test_every_layer_has_the_prototxts_shape_and_place(net):
    layers = _layers(net)
    for name, (cin, cout, k, stride, pad, group, _, _) in PROTOTXT.items():
        weight, bias = _shapes(name)
        assert tuple(layers[name].weight.shape) == weight, name
        assert tuple(layers[name].bias.shape) == bias, name
        if k:
            conv = layers[name]
            assert (conv.kernel_size, conv.stride, conv.padding, conv.groups) == \
                ((k, k), (stride, stride), (pad, pad), group), name
    assert [n for n in net.backbone.features._modules if n != "input"] == ORDER
    assert list(net.backbone.classifier._modules) == ["fc6", "relu6", "drop6", "fc7", "relu7",
                                                      "drop7"]
    for name in ("pool1", "pool2", "pool5"):
        pool = layers[name]
        assert (pool.kernel_size, pool.stride, pool.ceil_mode) == (3, 2, True)  # Caffe: CEIL
    assert all(layers[d].p == 0.5 for d in ("drop6", "drop7"))
    assert models.build("caffenet", 5, 0, dropout=0.2).backbone.classifier.drop6.p == 0.2


def test_227_px_gives_caffes_blob_sizes_and_a_256x6x6_pool5(net):
    sizes = {}
    hooks = [m.register_forward_hook(lambda m, i, o, n=n: sizes.__setitem__(n, tuple(o.shape[1:])))
             for n, m in net.backbone.features.named_children()]
    try:
        with torch.no_grad():
            out = net.eval()(torch.zeros(1, 3, 227, 227))
    finally:
        for h in hooks:
            h.remove()
    assert sizes["conv1"] == (96, 55, 55) and sizes["pool1"] == (96, 27, 27)
    assert sizes["conv2"] == (256, 27, 27) and sizes["pool2"] == (256, 13, 13)
    assert sizes["conv5"] == (256, 13, 13) and sizes["pool5"] == (256, 6, 6)
    assert out.shape == (1, 1000)
    # detection's trunk: conv1..pool5, 256 channels
    from itl import detection
    trunk, channels = detection.conv_trunk(net)
    assert channels == 256 and list(trunk) == [net.backbone.features]


def test_initial_weights_follow_caffes_fillers(net):
    layers = _layers(net)
    for name, (*_, std, bias) in PROTOTXT.items():
        w = layers[name].weight.detach()
        assert abs(w.std().item() - std) < 0.03 * std, name  # >= 34,848 draws per layer
        assert abs(w.mean().item()) < 0.05 * std, name
        assert torch.equal(layers[name].bias.detach(), torch.full_like(layers[name].bias, bias))


def test_weights_come_from_the_seed_only():
    torch.manual_seed(123)  # whatever the global generator holds
    a = models.build("caffenet", 10, seed=3)
    state = torch.random.get_rng_state()
    b = models.build("caffenet", 10, seed=3)
    assert torch.equal(state, torch.random.get_rng_state())  # build leaves it as it was
    c = models.build("caffenet", 10, seed=4)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not torch.equal(sa["backbone.features.conv1.weight"],
                           sc["backbone.features.conv1.weight"])


def _caffe_lrn(x: torch.Tensor, size: int, alpha: float, beta: float, k: float = 1.0):
    """Caffe's LRNLayer::CrossChannelForward_cpu: scale = k + alpha / size * (sum of squares
    over the `size` channels centred on each, zero-padded), top = bottom * scale^-beta."""
    pre = (size - 1) // 2
    padded = F.pad(x.pow(2), (0, 0, 0, 0, pre, size - 1 - pre))  # channels
    scale = k + alpha / size * sum(padded[:, i:i + x.shape[1]] for i in range(size))
    return x * scale.pow(-beta)


def test_lrn_is_caffes(net):
    g = torch.Generator().manual_seed(0)
    x = 40 * torch.randn(2, 96, 7, 7, generator=g, dtype=torch.float64)  # conv1's scale
    want = _caffe_lrn(x, 5, 1e-4, 0.75)
    assert not torch.allclose(want, x, rtol=1e-2)  # the normalisation does something here
    for name in ("norm1", "norm2"):
        got = getattr(net.backbone.features, name)(x)
        assert torch.allclose(got, want, rtol=1e-10, atol=0), name


def test_two_groups_split_channels_as_caffe_does(net):
    conv2 = net.backbone.features.conv2
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 96, 9, 9, generator=g)
    y = x.clone()
    y[:, 48:] += 1  # the second group's inputs
    with torch.no_grad():
        a, b = conv2(x), conv2(y)
    assert torch.equal(a[:, :128], b[:, :128]) and not torch.equal(a[:, 128:], b[:, 128:])


def test_the_input_is_put_back_on_caffes_pixel_scale(net):
    x = torch.full((1, 3, 227, 227), 1.0)  # one STD above itl's mean
    with torch.no_grad():
        assert torch.equal(net.backbone.features.input(x), torch.full_like(x, 255 * data.STD))


def test_caffe_param_groups_double_the_biases_rate_without_decay(net):
    plain = models.param_groups(net, 0.01, 5e-4, caffe=False)
    assert len(plain) == 1 and len(plain[0]["params"]) == 16
    weights, biases = models.param_groups(net, 0.01, 5e-4, caffe=True)
    assert (weights["lr"], weights["weight_decay"]) == (0.01, 5e-4)
    assert (biases["lr"], biases["weight_decay"]) == (0.02, 0.0)
    named = dict(net.named_parameters())
    assert {id(p) for p in biases["params"]} == {id(p) for n, p in named.items()
                                                  if n.endswith(".bias")}
    assert len(weights["params"]) == len(biases["params"]) == 8


def test_caffe_param_groups_in_sgd_do_what_caffes_solver_does():
    lin = torch.nn.Linear(3, 2)
    with torch.no_grad():
        lin.weight.fill_(1.0)
        lin.bias.fill_(1.0)
    opt = torch.optim.SGD(models.param_groups(lin, 0.1, 0.5, caffe=True), lr=0.1)
    lin.weight.grad = torch.zeros_like(lin.weight)
    lin.bias.grad = torch.ones_like(lin.bias)
    opt.step()
    assert torch.allclose(lin.weight, torch.full_like(lin.weight, 1 - 0.1 * 0.5))  # decay only
    assert torch.allclose(lin.bias, torch.full_like(lin.bias, 1 - 2 * 0.1))  # 2 lr, no decay


def test_one_sgd_step_on_two_227_px_images_trains_every_layer():
    net = models.build("caffenet", 10, seed=0)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    opt = torch.optim.SGD(models.param_groups(net, 0.01, 5e-4, caffe=True), lr=0.01,
                          momentum=0.9)
    g = torch.Generator().manual_seed(0)
    x = data.to_input(torch.randint(0, 256, (2, 3, 227, 227), dtype=torch.uint8, generator=g))
    torch.manual_seed(0)  # dropout
    loss = F.cross_entropy(net(x), torch.tensor([1, 7]))
    loss.backward()
    opt.step()
    assert math.isfinite(loss.item())
    after = net.state_dict()
    assert all(not torch.equal(before[k], after[k]) for k in before if k.endswith("weight"))
    assert not torch.equal(before["head.bias"], after["head.bias"])
