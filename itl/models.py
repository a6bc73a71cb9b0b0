"""The networks that are pre-trained and transferred (paper: AlexNet, Section 3).

Every model is a `Net`: a `backbone` producing a feature vector and a replaceable linear `head`.
Transfer replaces the head (the paper's fine-tuning re-initialises the last layer) and reads
features from the backbone (linear probe, k-NN).
"""
from __future__ import annotations

from collections.abc import Callable

import torch
import torchvision
from torch import nn


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


MODELS: dict[str, Callable[..., Net]] = {"small_cnn": small_cnn, "strided_cnn": strided_cnn,
                                         "alexnet": alexnet}


def build(name: str, num_classes: int, seed: int, dropout: float | None = None) -> Net:
    """Model `name` with weights drawn from `seed` (and nothing else); `dropout` overrides the
    model's own dropout rate (AlexNet: 0.5 before its fc layers; the small CNNs have none)."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}: choose one of {', '.join(MODELS)}")
    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        kw = {} if dropout is None else {"dropout": dropout}
        return MODELS[name](num_classes, **kw)
    finally:
        torch.random.set_rng_state(state)
