"""How pre-trained features are judged on a target task (paper Section 3: fine-tuning on PASCAL
and SUN; Section 5.3/5.4: frozen features on other label sets).

- fine-tuning, the paper's protocol: the last layer is replaced by a randomly initialised one
  for the target's classes and the whole network is trained on the target;
- linear probe: a logistic-regression head on frozen features; the backbone stays bit-identical
  (batch-norm statistics included);
- k-NN: cosine k-nearest-neighbour vote on frozen, L2-normalised features.

Each is trained and scored as the target's registry entry says (`metric`, `itl.metrics`): top-1,
mean per-class accuracy (SUN397), or mean AP over the classes of a multi-label target (VOC 2012
actions, trained with a per-class sigmoid cross-entropy). The protocols' invariants are
assertions in the code, each also a test.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import torch
import torch.nn.functional as F

from itl import data, devices, metrics, models, rng, runs, train
from itl.data import ImageSet
from itl.datasets.entry import TOP1


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
    # Added for the paper scale's CaffeNet (Caffe's fine-tuning, docs/paper-protocol.md section
    # 4); at their defaults they leave a config's run-store key as it was (finetune_dict):
    steps: int | None = None  # SGD steps (Caffe's max_iter), in place of epochs
    lr_drops: tuple[float, ...] | None = None  # fractions of the steps where lr is divided by
    # 10 (Caffe's "step" policy: stepsize / max_iter); None: at 1/2 and 3/4 as always
    crop: int | None = None  # random square crop in px for training, the central one for
    # testing (Caffe's crop_size: CaffeNet's 227 from 256 px images); None: the image's size
    caffe_param_groups: bool = False  # biases at 2 x lr without weight decay (models.param_groups)
    head_std: float | None = None  # the new last layer drawn as Caffe's gaussian filler (std,
    # bias 0); None: the model's own initialisation
    head_lr_mult: float = 1.0  # the new last layer's learning rate over the base rate (Caffe's
    # fine-tuning example gives the new fc8 lr_mult 10, its bias 20)

    def __post_init__(self):
        for name in ("steps", "crop"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"FinetuneConfig {name}={value}: give a positive number, or "
                                 "None")


FINETUNE_ADDED = ("steps", "lr_drops", "crop", "caffe_param_groups", "head_std", "head_lr_mult")


def finetune_dict(cfg: FinetuneConfig) -> dict:
    """`cfg` as plain data for the run store's key: every field, except the FINETUNE_ADDED ones
    that still hold their default, so that fine-tunings stored before those fields existed keep
    their hashes (tests/test_actsun.py pins them)."""
    return runs.key_settings(cfg, FINETUNE_ADDED)


@dataclass(frozen=True)
class ProbeConfig:
    l2: float = 1e-3  # weight decay of the logistic-regression head, per image
    iterations: int = 200  # L-BFGS iterations, full batch


@dataclass(frozen=True)
class KnnConfig:
    k: int = 10  # neighbours


# test x training cosine similarities are formed a block of test rows at a time, each block at
# most this many bytes (float32): small scale's largest (8,000 x 80,000, 2.4 GiB) is one block,
# computed whole as before; the paper's ImageNet probe (50,000 x 1,281,167) would be 239 GiB
SIMILARITY_BLOCK_BYTES = 4 * 2**30


def _nearest(fte: torch.Tensor, ftr: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The k largest similarities of each row of `fte` to the rows of `ftr`, and their indices
    (Tensor.topk of fte @ ftr.T), block by block of SIMILARITY_BLOCK_BYTES. An empty `fte` gives
    one empty block, so empty results, as the whole matrix's topk does."""
    rows = max(1, SIMILARITY_BLOCK_BYTES // (4 * max(1, len(ftr))))
    parts = [(fte[i:i + rows] @ ftr.T).topk(k, dim=1) for i in range(0, len(fte) or 1, rows)]
    return torch.cat([p.values for p in parts]), torch.cat([p.indices for p in parts])


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


def gaussian_head(net: models.Net, std: float, seed: int) -> None:
    """The new last layer as Caffe's fillers draw it (`weight_filler { type: "gaussian" std }`,
    `bias_filler { type: "constant" value: 0 }`), from a generator seeded by `seed`."""
    with torch.no_grad():
        net.head.weight.normal_(0.0, std, generator=rng.generator("head", seed))
        net.head.bias.zero_()


def finetune_schedule(cfg: FinetuneConfig, train_images: int) -> tuple[int, list[int]]:
    """Steps of a fine-tuning on `train_images` images, and the steps where lr drops."""
    steps = cfg.steps or cfg.epochs * -(-train_images // cfg.batch_size)
    if cfg.lr_drops is None:
        return steps, [steps // 2, 3 * steps // 4]
    return steps, [round(f * steps) for f in cfg.lr_drops]


def finetune_groups(net: models.Net, cfg: FinetuneConfig) -> list[dict]:
    """SGD parameter groups: the backbone at cfg.lr, the new head at head_lr_mult x cfg.lr,
    each with Caffe's bias rule when cfg.caffe_param_groups."""
    out = []
    for part, mult in ((net.backbone, 1.0), (net.head, cfg.head_lr_mult)):
        out += models.param_groups(part, cfg.lr * mult, cfg.weight_decay,
                                   cfg.caffe_param_groups)
    if sum(len(g["params"]) for g in out) != len(list(net.parameters())):
        raise ProtocolError("the network has parameters outside its backbone and head")
    return out


def finetune(pretrained: models.Net | None, model: str, target_train: ImageSet,
             target_test: ImageSet, cfg: FinetuneConfig, seed: int,
             metric: str = TOP1) -> dict:
    """The paper's fine-tuning: new last layer, every layer trained, on random crops and
    flips; scored on the test images (their central crop) with `metric` (itl.metrics.score:
    "top1" holds its number)."""
    net = with_new_head(pretrained, model, len(target_train.classes), seed)
    if cfg.head_std is not None:
        gaussian_head(net, cfg.head_std, seed)
    net = net.to(train.device())
    steps, milestones = finetune_schedule(cfg, len(target_train))
    plain = not cfg.caffe_param_groups and cfg.head_lr_mult == 1.0
    opt = torch.optim.SGD(net.parameters() if plain else finetune_groups(net, cfg), lr=cfg.lr,
                          momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones, gamma=0.1)
    torch.manual_seed(seed)
    train.train_one_epoch(net, opt, sched, target_train, 0, steps, cfg.batch_size, cfg.crop_pad,
                          seed, bf16=cfg.bf16, crop=cfg.crop,
                          loss_fn=None if metric == TOP1 else partial(metrics.loss, metric))
    if metric == TOP1:
        return {"top1": train.evaluate(net, target_test, bf16=cfg.bf16, crop=cfg.crop)}
    return metrics.score(metric, outputs(net, target_test, cfg.crop, cfg.bf16), target_test.y,
                         target_test.classes)


@torch.no_grad()
def outputs(net: torch.nn.Module, images: ImageSet, crop: int | None = None,
            bf16: bool | None = None, batch: int = 256) -> torch.Tensor:
    """The network's outputs (float, on the CPU) for the central `crop` of each image, in
    eval mode."""
    was = net.training
    net.eval()
    acc = devices.accel(bf16)
    out = []
    for i in range(0, len(images), batch):
        x = data.to_input(data.center_crop(images.x[i:i + batch], crop).to(acc.device))
        if acc.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(acc.device.type, torch.bfloat16, enabled=acc.bf16):
            out.append(net(x).float().cpu())
    net.train(was)
    return torch.cat(out)


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
                 cfg: ProbeConfig, seed: int, metric: str = TOP1) -> dict:
    """Only a linear head trains, on frozen features; the backbone must come out bit-identical.
    Trained with `metric`'s loss, scored with `metric`."""
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
        fit = (F.cross_entropy(head(ftr), target_train.y) if metric == TOP1
               else metrics.loss(metric, head(ftr), target_train.y))
        loss = fit + cfg.l2 * head.weight.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    _assert_unchanged(before, net.backbone, "linear probe")
    with torch.no_grad():
        if metric != TOP1:
            return metrics.score(metric, head(fte), target_test.y, target_test.classes)
        top1 = (head(fte).argmax(1) == target_test.y).float().mean().item() * 100
    return {"top1": top1}


def knn(net: models.Net, target_train: ImageSet, target_test: ImageSet,
        cfg: KnnConfig, metric: str = TOP1) -> dict:
    """Cosine k-NN vote on frozen features (ties go to the nearer neighbours' class); for a
    multi-label target (MEAN_AP) each class's score is its share of the weighted votes."""
    before = _state_copy(net.backbone)
    ftr = F.normalize(features(net, target_train), dim=1)
    fte = F.normalize(features(net, target_test), dim=1)
    _assert_unchanged(before, net.backbone, "k-NN")
    top, idx = _nearest(fte, ftr, min(cfg.k, len(target_train)))
    if metric in metrics.MULTI_LABEL:
        flags = metrics.positives(metric, target_train.y, len(target_train.classes))
        votes = (flags[idx] * (1 + 1e-3 * top)[..., None]).sum(1)
        return metrics.score(metric, votes, target_test.y, target_test.classes)
    votes = torch.zeros(len(fte), len(target_train.classes))
    votes.scatter_add_(1, target_train.y[idx], 1 + 1e-3 * top)
    if metric != TOP1:
        return metrics.score(metric, votes, target_test.y, target_test.classes)
    top1 = (votes.argmax(1) == target_test.y).float().mean().item() * 100
    return {"top1": top1}
