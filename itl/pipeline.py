"""One pre-training condition, end to end: subset manifest -> pre-trained network -> transfer
results on every target of the scale (the unit every table of the paper is made of).

Every step is a run in the run store, so a condition shared by several sections (the full-data
baseline, say) is trained once, whoever asks first: a pytest experiment, `itl pretrain`, or DVC.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict

from itl import data, datasets, detection, models, runs, scales, subsets, train, transfer
from itl.datasets.entry import TOP1

PROTOCOL = 2  # the default Scale.protocol; each scale's own is in every run key
# 2: CPU threads fixed per run (scale.cpu_threads), bf16 settable on CPU, 32-px caches
# 3: small scale v3 (VOC 2007 judged, fine-tuning recipe by the v3 pilot), scales.SCALES["small"]
METHODS = ("finetune", "linear", "knn")  # classification targets; detection targets: "detect"
RANDOM = "random"  # the pre-training of a randomly initialised network: none
FINE_TUNED = ("finetune", "detect")  # methods that train the network (a seed each); the others
# read frozen features, deterministic given the network


def source_name(scale: scales.Scale, subset: str) -> str:
    """The data set a condition draws from: the source, plus the held-out extra classes for
    the `extra` rule (Section 6)."""
    if subset.startswith("extra="):
        if scale.extra is None:
            raise subsets.SubsetError(f"scale {scale.name} has no held-out extra classes")
        if scale.extra_in_source:
            raise subsets.SubsetError(f"at the {scale.name} scale Section 6's extra classes are "
                                      "part of the full source: its smaller condition is "
                                      "holdout=K, not extra=K")
        return f"{scale.source}+{scale.extra}"
    return scale.source


def manifest(scale: scales.Scale, subset: str, seed: int, save: bool = True) -> subsets.Manifest:
    name = source_name(scale, subset)
    images = data.load(name, "train", scale.size)
    main = (len(images.classes) if name == scale.source
            else len(data.load(scale.source, "train", scale.size).classes))
    m = subsets.build(subset, images, name, seed, main=main)
    if save:  # a lookup (reports) never writes: a read-only store serves it
        subsets.save(m)
    return m


def _pilot(scale: scales.Scale) -> dict:
    """A pilot's runs say so in their keys (never shared with a claim's runs)."""
    return {"pilot": True} if scale.pilot else {}


def pretrain_key(scale: scales.Scale, subset: str, seed: int) -> dict:
    """A pre-training's config up to its manifest's digest: what exported run records (which
    hold no images to rebuild the manifest from) are matched on."""
    rule, params = subsets.parse_rule(subset)
    return {"protocol": scale.protocol, "scale": scale.key, **_pilot(scale),
            "source": data.fingerprint(source_name(scale, subset), scale.size),
            "subset": {"rule": rule, **params}, "pretrain": train.config_dict(scale.pretrain),
            "seed": seed, "cpu_threads": scale.cpu_threads}


def pretrain_config(scale: scales.Scale, m: subsets.Manifest, subset: str, seed: int) -> dict:
    cfg = {**pretrain_key(scale, subset, seed), "manifest": m.sha256}
    assert cfg["subset"] == {"rule": m.rule, **m.params}, (cfg["subset"], m.rule, m.params)
    return cfg


def pretrain(scale: scales.Scale, subset: str, seed: int, compute: bool = True) -> dict | None:
    """Metrics of the pre-training of condition (subset, seed), training it if needed (or, with
    compute=False, None when it has not been trained)."""
    m = manifest(scale, subset, seed, save=compute)
    cfg = pretrain_config(scale, m, subset, seed)

    def run(d):
        tr = data.load(m.dataset, "train", scale.size)
        te = data.load(m.dataset, "test", scale.size)
        full = len(data.load(scale.source, "train", scale.size))  # the budget is the main source's
        return train.pretrain(scale.pretrain, subsets.apply(m, tr),
                              subsets.apply(m, te, chosen_only=False), full, seed, d,
                              label=f"{subset} seed {seed}")

    return runs.get_or_run("pretrain", cfg, run if compute else None, scale.cpu_threads)


def _pretrained_net(scale: scales.Scale, run: str) -> models.Net | None:
    if run == RANDOM:
        return None
    d = runs.paths.runs_dir() / run
    n_classes = runs.verify(d)["classes"]
    runs.needs(d, train.CHECKPOINT)  # an imported record has no network to transfer
    return train.load_trained(d, scale.pretrain, n_classes)


def target_images(target: str, split: str, seed: int, size: int | None = None) -> data.ImageSet:
    """A target's images. `target` is a data set name, optionally with a subset rule drawn (with
    `seed`) from its training split: `smoke|labels=down-up:2` is the smoke source with coarse
    labels, `smoke|split=random:b` its half B, `cifar-10|images-per-class=40` CIFAR-10 with 200
    training images per class. The rule picks training images; a test split keeps every image
    of the classes the rule keeps."""
    name, _, rule = target.partition("|")
    images = data.load(name, split, size)
    if not rule:
        return images
    m = subsets.build(rule, data.load(name, "train", size), name, seed)
    return subsets.apply(m, images, chosen_only=split == "train")


def transfer_one(scale: scales.Scale, run: str, target: str, method: str, seed: int,
                 compute: bool = True, repeat: int = 0) -> dict | None:
    """Metrics of transferring pre-training `run` (or RANDOM) to `target` with `method`;
    `repeat` r > 0 is another fine-tuning of the same network, drawn with seed + 1000 r."""
    if method not in METHODS + ("detect",):
        raise ValueError(f"unknown transfer method {method!r}: choose one of {METHODS}, detect")
    settings = {"finetune": scale.finetune_config(target), "linear": scale.probe,
                "knn": scale.knn, "detect": scale.detect}[method]
    name, _, rule = target.partition("|")
    metric = target_metric(name)
    cfg = {"protocol": scale.protocol, "scale": scale.key, **_pilot(scale), "pretrain": run,
           "target": data.fingerprint(name, scale.size) + (f"|{rule}" if rule else ""),
           "method": method, "seed": seed,
           "settings": (detection.config_dict(settings) if method == "detect"
                        else transfer.finetune_dict(settings) if method == "finetune"
                        else asdict(settings)),
           "cpu_threads": scale.cpu_threads}
    if repeat:
        cfg["repeat"] = repeat
        seed = seed + 1000 * repeat

    def go(_d):
        net = _pretrained_net(scale, run)
        if method == "detect":
            if net is None:
                net = models.build(scale.pretrain.model, 2, seed)
            entry = datasets.get(target)
            return detection.finetune_detector(net, entry.root(), settings, seed, train.device(),
                                               *entry.eval_splits())
        tr = target_images(target, "train", seed, scale.size)
        te = target_images(target, "test", seed, scale.size)
        if method == "finetune":
            return transfer.finetune(net, scale.pretrain.model, tr, te, settings, seed, metric)
        if net is None:
            net = transfer.with_new_head(None, scale.pretrain.model, len(tr.classes), seed)
        if method == "linear":
            return transfer.linear_probe(net, tr, te, settings, seed, metric)
        return transfer.knn(net, tr, te, settings, metric)

    return runs.get_or_run("transfer", cfg, go if compute else None, scale.cpu_threads)


def target_metric(name: str) -> str:
    """The metric a classification target is scored with: its registry entry's (the first
    part's, for "a+b" and "name:view"); top-1 for a name the registry does not hold."""
    base = name.split("+")[0].partition(":")[0]
    return datasets.REGISTRY[base].metric if base in datasets.REGISTRY else TOP1


Lookup = Callable[[str, int], "dict | None"]  # (subset, seed) -> a pre-training's metrics


def condition(scale: scales.Scale, subset: str, seed: int, compute: bool = True,
              probes: tuple[tuple[str, str], ...] = (),
              pretrained: Lookup | None = None) -> dict | None:
    """Source top-1 and every target x method result of one condition, plus the (target,
    method) pairs in `probes`, as a flat dict (None when compute=False and some part has not
    been run). `pretrained` finds the pre-training instead of the run store (exported run
    records, which hold no images to rebuild a manifest from). Seed `seed` fine-tunes the
    pre-training of scale.pretrain_seed(seed), which is also its probes' seed: its own, or
    where a seed replicates only the fine-tunings (Scale.replicate) the first seed's."""
    pre_seed = scale.pretrain_seed(seed)
    if subset == RANDOM:
        out, run = {}, RANDOM
    else:
        pre = (pretrained(subset, pre_seed) if pretrained
               else pretrain(scale, subset, pre_seed, compute))
        if pre is None:
            return None
        out = {"source_top1": pre["source_top1"], "source_classes": pre["classes"],
               "pretrain_run": pre["run"]}
        if "source_train_top1" in pre:
            out["source_train_top1"] = pre["source_train_top1"]
        run = pre["run"]
    pairs = [(t, m) for t in scale.targets for m in METHODS] + list(probes)
    pairs += [(t, "detect") for t in scale.detection]
    for target, method in pairs:
        repeats = scale.finetune_config(target).repeats if method == "finetune" else 1
        s = seed if method in FINE_TUNED else pre_seed
        got = [transfer_one(scale, run, target, method, s, compute, r)
               for r in range(repeats)]
        if any(r is None for r in got):
            return None
        out[f"{target}/{method}"] = sum(r["top1"] for r in got) / repeats
        if repeats > 1:  # each fine-tuning, beside their mean
            out.update({f"{target}/{method}#{k}": r["top1"] for k, r in enumerate(got)})
    return out


def primary_metric(scale: scales.Scale) -> str:
    """The transfer result a claim is judged on: detection (the paper's headline PASCAL-DET)
    where the scale has a detection target, else fine-tuning on the first target."""
    if scale.judged:
        return scale.judged
    if scale.detection:
        return f"{scale.detection[0]}/detect"
    return f"{scale.targets[0]}/finetune"


def results(scale: scales.Scale, conditions: tuple[str, ...], compute: bool = True,
            probes: tuple[tuple[str, str], ...] = (), pretrained: Lookup | None = None) -> dict:
    """{condition: {seed: metrics}} for the conditions and the random-init baseline; with
    compute=False, only what the run store already holds."""
    out: dict = {}
    for cond in conditions + (RANDOM,):
        for seed in scale.seeds:
            r = condition(scale, cond, seed, compute, probes, pretrained)
            if r is not None:
                out.setdefault(cond, {})[seed] = r
    return out
