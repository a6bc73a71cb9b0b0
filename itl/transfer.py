"""How pre-trained features are judged on a target task (paper Section 3: fine-tuning on PASCAL
and SUN; Section 5.3/5.4: frozen features on other label sets).

- fine-tuning, the paper's protocol: the last layer is replaced by a randomly initialised one
  for the target's classes and the whole network is trained on the target;
- linear probe: a logistic-regression head on frozen features; the backbone stays bit-identical
  (batch-norm statistics included);
- k-NN: cosine k-nearest-neighbour vote on frozen, L2-normalised features.

The protocols' invariants are assertions in the code, each also a test.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from itl import data, models, rng, train
from itl.data import ImageSet


class ProtocolError(AssertionError):
    """A transfer protocol broke its own invariant."""


@dataclass(frozen=True)
class FinetuneConfig:
    epochs: int = 15  # over the target's training images
    batch_size: int = 32  # images per step
    lr: float = 0.01  # per step; the paper fine-tunes at a tenth of pre-training's rate
    momentum: float = 0.9
    weight_decay: float = 5e-4
    crop_pad: int = 4  # pixels
    bf16: bool | None = None  # as PretrainConfig.bf16
    repeats: int = 1  # fine-tunings per pre-trained network, each its own seed, averaged: the
    # fine-tuning's own noise is cut cheaply (it costs seconds, a pre-training minutes)


@dataclass(frozen=True)
class ProbeConfig:
    l2: float = 1e-3  # weight decay of the logistic-regression head, per image
    iterations: int = 200  # L-BFGS iterations, full batch


@dataclass(frozen=True)
class KnnConfig:
    k: int = 10  # neighbours


def with_new_head(pretrained: models.Net | None, model: str, num_classes: int,
                  seed: int) -> models.Net:
    """A network for `num_classes` whose backbone is `pretrained`'s (or random when None) and
    whose head is freshly initialised from `seed`. Loading must leave only the head missing."""
    net = models.build(model, num_classes, seed)
    if pretrained is None:
        return net
    state = {k: v for k, v in pretrained.state_dict().items() if not k.startswith("head.")}
    try:
        missing, unexpected = net.load_state_dict(state, strict=False)
    except RuntimeError as e:  # shapes differ: not the same architecture
        raise ProtocolError(f"pre-trained weights do not fit {model}; only the head may be "
                            f"missing or differ: {e}") from e
    if sorted(missing) != ["head.bias", "head.weight"] or unexpected:
        raise ProtocolError(f"loading pre-trained weights left missing={missing}, "
                            f"unexpected={unexpected}; only the head may be missing")
    return net


def finetune(pretrained: models.Net | None, model: str, target_train: ImageSet,
             target_test: ImageSet, cfg: FinetuneConfig, seed: int) -> dict:
    """The paper's fine-tuning: new last layer, every layer trained. Returns test top-1 (%)."""
    net = with_new_head(pretrained, model, len(target_train.classes), seed).to(train.device())
    steps_per_epoch = -(-len(target_train) // cfg.batch_size)
    steps = cfg.epochs * steps_per_epoch
    opt = torch.optim.SGD(net.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                          weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, [steps // 2, 3 * steps // 4], gamma=0.1)
    torch.manual_seed(seed)
    train.train_one_epoch(net, opt, sched, target_train, 0, steps, cfg.batch_size, cfg.crop_pad,
                          seed, bf16=cfg.bf16)
    return {"top1": train.evaluate(net, target_test, bf16=cfg.bf16)}


@torch.no_grad()
def features(net: models.Net, images: ImageSet, batch: int = 256) -> torch.Tensor:
    """Backbone features of centre images, in eval mode (batch-norm statistics frozen)."""
    was = net.training
    net.eval()
    dev = next(net.parameters()).device
    out = [net.features(data.to_input(images.x[i:i + batch].to(dev))).float().cpu()
           for i in range(0, len(images), batch)]
    net.train(was)
    return torch.cat(out)


def _state_copy(net: torch.nn.Module) -> dict:
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


def _assert_unchanged(before: dict, net: torch.nn.Module, what: str) -> None:
    after = net.state_dict()
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    if changed:
        raise ProtocolError(f"{what} changed the frozen backbone: {changed[:5]}")


def linear_probe(net: models.Net, target_train: ImageSet, target_test: ImageSet,
                 cfg: ProbeConfig, seed: int) -> dict:
    """Only a linear head trains, on frozen features; the backbone must come out bit-identical."""
    before = _state_copy(net.backbone)
    ftr, fte = features(net, target_train), features(net, target_test)
    mu, sd = ftr.mean(0), ftr.std(0) + 1e-6  # standardise with training statistics only
    ftr, fte = (ftr - mu) / sd, (fte - mu) / sd
    g = rng.generator("probe", seed)
    head = torch.nn.Linear(ftr.shape[1], len(target_train.classes))
    with torch.no_grad():
        head.weight.normal_(0, 0.01, generator=g)
        head.bias.zero_()
    opt = torch.optim.LBFGS(head.parameters(), lr=1, max_iter=cfg.iterations,
                            history_size=20, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(head(ftr), target_train.y) + cfg.l2 * head.weight.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    _assert_unchanged(before, net.backbone, "linear probe")
    with torch.no_grad():
        top1 = (head(fte).argmax(1) == target_test.y).float().mean().item() * 100
    return {"top1": top1}


def knn(net: models.Net, target_train: ImageSet, target_test: ImageSet,
        cfg: KnnConfig) -> dict:
    """Cosine k-NN vote on frozen features (ties go to the nearer neighbours' class)."""
    before = _state_copy(net.backbone)
    ftr = F.normalize(features(net, target_train), dim=1)
    fte = F.normalize(features(net, target_test), dim=1)
    _assert_unchanged(before, net.backbone, "k-NN")
    sim = fte @ ftr.T
    k = min(cfg.k, len(target_train))
    top, idx = sim.topk(k, dim=1)
    votes = torch.zeros(len(fte), len(target_train.classes))
    votes.scatter_add_(1, target_train.y[idx], 1 + 1e-3 * top)
    top1 = (votes.argmax(1) == target_test.y).float().mean().item() * 100
    return {"top1": top1}
