"""The networks that are pre-trained and transferred (paper: AlexNet, Section 3).

Every model is a `Net`: a `backbone` producing a feature vector and a replaceable linear `head`.
Transfer replaces the head (the paper's fine-tuning re-initialises the last layer) and reads
features from the backbone (linear probe, k-NN).

`caffenet` is the paper's own network, BVLC's CaffeNet as Caffe trains it (docs/caffe-alexnet.md);
`param_groups` gives any model Caffe's per-parameter learning-rate and weight-decay rule.
"""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

import torch
import torchvision
from torch import nn

from itl import data


class Net(nn.Module):
    def __init__(self, backbone: nn.Module, feature_dim: int, num_classes: int):
        super().__init__()
        self.backbone = backbone
        self.feature_dim = feature_dim
        self.head = nn.Linear(feature_dim, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))

    def replace_head(self, num_classes: int, generator: torch.Generator) -> None:
        """A fresh, randomly initialised last layer (drawn from `generator`)."""
        head = nn.Linear(self.feature_dim, num_classes)
        bound = 1 / self.feature_dim ** 0.5  # nn.Linear's default init, from our generator
        with torch.no_grad():
            head.weight.uniform_(-bound, bound, generator=generator)
            head.bias.uniform_(-bound, bound, generator=generator)
        self.head = head.to(next(self.backbone.parameters()).device)


def _conv_bn(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=True))


def small_cnn(num_classes: int, width: int = 24, dropout: float = 0.0) -> Net:
    """Smoke-scale CNN: three conv-BN-ReLU stages with pooling, global average pool."""
    backbone = nn.Sequential(
        _conv_bn(3, width), nn.MaxPool2d(2),
        _conv_bn(width, 2 * width), nn.MaxPool2d(2),
        _conv_bn(2 * width, 4 * width), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    return Net(backbone, 4 * width, num_classes)


def strided_cnn(num_classes: int, width: int = 32, dropout: float = 0.0) -> Net:
    """Small-scale CNN for 64 px images: a stride-2 stem (as AlexNet's strided first layer, it
    brings 64 px to 32 px where the work is cheap), then four conv-BN-ReLU stages with pooling
    between them (32, 64, 128, 256 channels at 32, 16, 8, 4 px), global average pool. Sized so
    that one small-scale pre-training runs on 2 CPU cores in minutes (itl.scales)."""
    layers: list[nn.Module] = [nn.Conv2d(3, width, 3, stride=2, padding=1, bias=False),
                               nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
    cin = width
    for stage in range(4):
        cout = width * 2 ** stage
        layers.append(_conv_bn(cin, cout))
        if stage < 3:
            layers.append(nn.MaxPool2d(2))
        cin = cout
    backbone = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
    return Net(backbone, cin, num_classes)


def alexnet(num_classes: int, dropout: float = 0.5) -> Net:
    """torchvision's AlexNet (the one-tower variant); the head is its last fc layer."""
    m = torchvision.models.alexnet(weights=None, num_classes=num_classes, dropout=dropout)
    backbone = nn.Sequential(m.features, m.avgpool, nn.Flatten(), *m.classifier[:-1])
    return Net(backbone, m.classifier[-1].in_features, num_classes)


class CaffeInput(nn.Module):
    """itl's normalised input, (x/255 - MEAN) / STD, back on the scale of Caffe's: 0-255 pixels
    minus the mean (the prototxt's transform_param has no `scale`). Caffe's std-0.01 weights were
    chosen for that input; without this the first layer would see values 255 * STD = 63.75
    times smaller. (The mean differs slightly: 0.45 * 255 for every pixel, not ImageNet's mean
    image.) No parameters."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * (255 * data.STD)


# Caffe's fillers of bvlc_reference_caffenet/train_val.prototxt: layer -> (weight std, bias)
CAFFENET_INIT = {"conv1": (0.01, 0.0), "conv2": (0.01, 1.0), "conv3": (0.01, 0.0),
                 "conv4": (0.01, 1.0), "conv5": (0.01, 1.0), "fc6": (0.005, 1.0),
                 "fc7": (0.005, 1.0), "fc8": (0.01, 0.0)}
CAFFENET_INPUT = 227  # px, the prototxt's crop_size: pool5 is then 256 x 6 x 6 = fc6's 9216 inputs


def caffenet(num_classes: int, dropout: float = 0.5) -> Net:
    """BVLC's CaffeNet (Caffe's `models/bvlc_reference_caffenet/train_val.prototxt`), AlexNet
    as Caffe trains it, the paper's network: conv1 11x11/4 96, relu, max pool 3/2, LRN; conv2
    5x5 pad 2 256 in 2 groups, relu, pool, LRN; conv3 3x3 pad 1 384; conv4 3x3 pad 1 384 in 2
    groups; conv5 3x3 pad 1 256 in 2 groups, relu, pool5; fc6 9216->4096, relu, dropout; fc7
    4096->4096, relu, dropout; fc8 (the head) 4096->num_classes. 227 px input.

    Why CaffeNet, not `bvlc_alexnet` (docs/caffe-alexnet.md): the two share one solver.prototxt
    and one data layer, and differ only in pooling before LRN (CaffeNet) or after it, and in
    the non-zero biases, 1 (CaffeNet, as Krizhevsky et al.) or 0.1. "Caffe's ImageNet training"
    is Caffe's examples/imagenet (train_caffenet.sh: 256x256 images, batch 256, 450,000
    iterations, lr 0.01 / 10 every 100,000), which trains CaffeNet; CaffeNet is also the model
    Berkeley's transfer work of the time built on (R-CNN's bvlc_reference_rcnn_ilsvrc13 in the
    same repository is a CaffeNet). Same shapes either way: 60,965,224 parameters at 1000 classes.

    Caffe's semantics, layer by layer:
    - LRN: Caffe (ACROSS_CHANNELS, k = 1) computes x / (1 + alpha/n * sum of x^2 over the n
      channels centred on x, zero-padded)^beta; nn.LocalResponseNorm(n, alpha, beta, k=1)
      computes the same (it averages the squares, so alpha is divided by n as in Caffe);
      tests/test_caffenet.py checks it against a direct implementation of Caffe's formula.
    - pooling rounds up (Caffe's default round_mode CEIL): ceil_mode=True. At 227 px every
      division is exact, so this matters only for other sizes.
    - `group: 2` is groups=2: the first half of the outputs sees the first half of the inputs.
    - fillers: gaussian weights (std 0.01, fc6/fc7 0.005), constant biases 0 or 1
      (CAFFENET_INIT), drawn from the global generator that `build` seeds.
    - input: `CaffeInput` first rescales itl's normalised images to Caffe's pixel scale.

    Pieces by name, for detection (R-CNN: conv1-conv5 as the trunk, fc6/fc7 as the box head):
    `net.backbone.features` is conv1..pool5 (CaffeInput first), `net.backbone.classifier` is
    fc6, relu6, drop6, fc7, relu7, drop7 (`net.backbone.classifier.fc6`, `.fc7`), `net.head` is
    fc8. `net.backbone` = features, flatten, classifier, so `detection.conv_trunk` finds the
    conv part as it does for the other models. Caffe's SGD rule (biases at twice the learning
    rate, no weight decay on them) is `param_groups(net, lr, wd, caffe=True)`."""
    def conv(cin: int, cout: int, k: int, stride: int = 1, pad: int = 0, groups: int = 1):
        return nn.Conv2d(cin, cout, k, stride=stride, padding=pad, groups=groups)

    def pool() -> nn.MaxPool2d:
        return nn.MaxPool2d(3, stride=2, ceil_mode=True)

    def lrn() -> nn.LocalResponseNorm:
        return nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=1.0)

    relu = lambda: nn.ReLU(inplace=True)  # noqa: E731
    features = nn.Sequential(OrderedDict([
        ("input", CaffeInput()),
        ("conv1", conv(3, 96, 11, stride=4)), ("relu1", relu()), ("pool1", pool()),
        ("norm1", lrn()),
        ("conv2", conv(96, 256, 5, pad=2, groups=2)), ("relu2", relu()), ("pool2", pool()),
        ("norm2", lrn()),
        ("conv3", conv(256, 384, 3, pad=1)), ("relu3", relu()),
        ("conv4", conv(384, 384, 3, pad=1, groups=2)), ("relu4", relu()),
        ("conv5", conv(384, 256, 3, pad=1, groups=2)), ("relu5", relu()), ("pool5", pool())]))
    classifier = nn.Sequential(OrderedDict([
        ("fc6", nn.Linear(256 * 6 * 6, 4096)), ("relu6", relu()), ("drop6", nn.Dropout(dropout)),
        ("fc7", nn.Linear(4096, 4096)), ("relu7", relu()), ("drop7", nn.Dropout(dropout))]))
    backbone = nn.Sequential(OrderedDict([("features", features), ("flatten", nn.Flatten()),
                                          ("classifier", classifier)]))
    net = Net(backbone, 4096, num_classes)
    layers = {**dict(features.named_children()), **dict(classifier.named_children()),
              "fc8": net.head}
    with torch.no_grad():
        for name, (std, bias) in CAFFENET_INIT.items():
            layers[name].weight.normal_(0.0, std)
            layers[name].bias.fill_(bias)
    return net


def strided_cnn_w64(num_classes: int, dropout: float = 0.0) -> Net:
    """The strided CNN at twice the width (64, 128, 256, 512 channels; 1.6 M parameters, 2.1 M
    with a 1000-class head; 97 MMAC per 64-px image, counted by torch's FlopCounterMode): the
    imagenet64 scale's network, sized for 1000 classes and 1.28 M images in about an hour of
    one GPU (itl.scales)."""
    return strided_cnn(num_classes, width=64, dropout=dropout)


MODELS: dict[str, Callable[..., Net]] = {"small_cnn": small_cnn, "strided_cnn": strided_cnn,
                                         "strided_cnn_w64": strided_cnn_w64,
                                         "alexnet": alexnet, "caffenet": caffenet}


def param_groups(net: nn.Module, lr: float, weight_decay: float,
                 caffe: bool = False) -> list[dict]:
    """SGD parameter groups for `net`. caffe=False: one group, every parameter at `lr` with
    `weight_decay`. caffe=True: Caffe's rule, written on every conv and fc layer of the BVLC
    prototxts as `param { lr_mult: 1 decay_mult: 1 } param { lr_mult: 2 decay_mult: 0 }`:
    weights at `lr` with `weight_decay`, biases (parameters named `*.bias`) at 2 x `lr` and no
    weight decay. The weights' group comes first (its lr is the one logs report)."""
    if not caffe:
        return [{"params": list(net.parameters()), "lr": lr, "weight_decay": weight_decay}]
    weights, biases = [], []
    for name, p in net.named_parameters():
        (biases if name.rsplit(".", 1)[-1] == "bias" else weights).append(p)
    return [{"params": weights, "lr": lr, "weight_decay": weight_decay},
            {"params": biases, "lr": 2 * lr, "weight_decay": 0.0}]


def build(name: str, num_classes: int, seed: int, dropout: float | None = None) -> Net:
    """Model `name` with weights drawn from `seed` (and nothing else); `dropout` overrides the
    model's own dropout rate (AlexNet: 0.5 before fc6 and fc7; CaffeNet: 0.5 after them; the
    small CNNs have none)."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}: choose one of {', '.join(MODELS)}")
    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        kw = {} if dropout is None else {"dropout": dropout}
        return MODELS[name](num_classes, **kw)
    finally:
        torch.random.set_rng_state(state)
