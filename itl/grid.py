"""The paper's whole grid -- every pre-training that Sections 4 to 6 compare, each followed by
its transfers -- as jobs handed to submitit: on this machine (`--launcher local`) or on a Slurm
cluster as job arrays (`--launcher slurm`).

    itl grid --scale paper --launcher slurm --partition P --gpus-per-job 8 --dry-run
    itl grid --scale paper --launcher slurm --partition P --gpus-per-job 8     # submit
    itl grid --scale paper --status                                          # what ran, what failed
    itl grid --scale smoke --launcher local --jobs 2                         # run here

**A job** is one pre-training: a condition and its pre-training seed, then
`pipeline.condition(..., compute=True)` for every seed whose transfers start from it (the seed
itself where each seed has a pre-training of its own; seeds 0, 1, 2 at paper scale, where they
replicate only the fine-tunings: `Scale.replicate`), with the union of the probes of every claim
that uses the condition. A condition shared by several claims (the full source, the random init)
is one job, and so are two names of one run (`images-per-class=1000` is `full`,
`budget=1000x500` is `images-per-class=500`: `Job.aliases`; the reports show each name). Every
step is a run of the run store, the same runs `pytest experiments` computes, so the two fill one
store with the same numbers, and a job whose results are all in the store is never submitted.

**The dry run** states per job its subset's images and epochs (under the scale's schedule,
`PretrainConfig.budget`), its fine-tunings, its probes' images and its GPU-hours, with whether
each part's rate was measured (reports/benchmarks: `itl.bench` on a GPU) or assumed; and the
grid's detection and probe work in total.

**Requeue.** The job callable is a `submitit.helpers.Checkpointable`: on Slurm's preemption or
time-limit signal (USR2, `signal_delay_s` before the end) submitit calls its `checkpoint()`,
which resubmits the same job, and requeues it. Nothing else needs saving: pre-training writes a
checkpoint (model, optimiser, scheduler, RNG, step) every epoch and a run resumes exactly from it
(`train.pretrain`, `runs.get_or_run`); finished transfers are runs in the store. At most one
epoch's work is lost per interruption.

**Several GPUs per job** (`--gpus-per-job N`): N tasks, one per GPU; each exports torchrun's
variables (`submitit.helpers.TorchDistributedEnvironment`) and the pre-training runs under DDP
(`itl.devices`); then rank 0 alone runs the transfers on its GPU (fine-tunings run on one GPU),
while the other N-1 GPUs of the job wait.

**The run store on a shared file system** (`ITL_RUNS` on NFS, Lustre, GPFS): runs are written as
temporary files renamed into place within their folder (`paths.atomic_write_bytes`; a rename in
one directory is atomic on these file systems too), and two jobs asking for one run train it once
thanks to a `filelock` lock beside it, an `flock()` lock. That lock must be coherent across
nodes: NFSv4, or NFSv3 with the lock manager (lockd) running -- not mounted `nolock`, which makes
locks local to a node; Lustre mounted with `-o flock` (not `localflock`, node-local, nor
`noflock`); GPFS and local disks work as they are. Where no such lock works, `ITL_LOCK=soft`
takes filelock's `SoftFileLock` (a lock file created exclusively, which any file system gets
right), with its caveat: a process killed while it holds the lock (SIGKILL, a node lost) leaves
the lock file behind, and every later attempt at that run waits on it until it is deleted by
hand (`ITL_RUNS/<kind>/<hash>.lock`, once no job is running it). Submitit's own folder
(`ITL_RUNS/grid/<scale>/`) must be on the shared file system too, and so must the Python that
submitted (the jobs run `sys.executable`).
"""
from __future__ import annotations

import functools
import json
import os
import pickle
import shlex
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import submitit
from submitit.core.utils import JobPaths
from tabulate import tabulate

from itl import (claims, data, datasets, detection, labels, paths, pipeline, scales, subsets,
                 train, transfer)

LAUNCHERS = ("local", "slurm")
DONE, TO_SUBMIT, IN_FLIGHT = "done", "to submit", "submitted"
# what looking up a condition raises where its data is not on this machine
UNAVAILABLE = (data.DataError, subsets.SubsetError, ValueError, KeyError, OSError)
# the variables a job needs to find the same data and run store as the command that submitted it
CARRIED = ("ITL_RUNS", "ITL_DATA", "ITL_DETECTION", "ITL_LOCK", scales.SEEDS_VARIABLE,
           scales.SCHEDULE_VARIABLE)


# ---------------------------------------------------------------- the jobs of a scale


@dataclass(frozen=True)
class Job:
    scale: str  # the scale's name, not the Scale: a job is a dict key here (a Scale holds
    # dicts, so it has no hash) and crosses into another process (submitit's pickles, jobs.json,
    # a requeue), where Task resolves it once, under the ITL_* variables the job carries
    condition: str  # a subset rule, or pipeline.RANDOM
    seed: int  # its pre-training's seed
    probes: tuple[tuple[str, str], ...] = ()  # (target, method) of every claim using it
    claims: tuple[str, ...] = ()  # the claims that use it
    replicates: tuple[int, ...] = ()  # the seeds whose transfers it runs, where they are not
    # just `seed` (Scale.replicate FINETUNING: every seed fine-tunes this one pre-training)
    aliases: tuple[str, ...] = ()  # the other names of this pre-training (the same run key:
    # images-per-class=1000 is full); the reports show each, the job runs it once

    @property
    def seeds(self) -> tuple[int, ...]:
        """The seeds of the scale whose results it computes."""
        return self.replicates or (self.seed,)

    def __str__(self) -> str:
        more = (f", fine-tuning seeds {', '.join(map(str, self.seeds))}"
                if self.seeds != (self.seed,) else "")
        return f"{self.condition} seed {self.seed}{more}"


def select(pattern: str | None) -> tuple[str, ...]:
    """The claim ids `pattern` selects (comma-separated parts of ids, like `pytest -k
    section5`); every claim when empty."""
    if not pattern:
        return tuple(claims.CLAIMS)
    words = [w.strip() for w in pattern.split(",") if w.strip()]
    out = tuple(c for c in claims.CLAIMS if any(w in c for w in words))
    if not out:
        raise ValueError(f"-k {pattern!r} selects no claim: the claims are "
                         f"{', '.join(claims.CLAIMS)} (e.g. -k section4,section6)")
    return out


def pretraining(scale: scales.Scale, condition: str) -> str:
    """What identifies a condition's pre-training: its run key less the seed (and the
    manifest's digest, which the key's subset rule and source decide); RANDOM for none."""
    if condition == pipeline.RANDOM:
        return pipeline.RANDOM
    key = pipeline.pretrain_key(scale, condition, 0)
    return json.dumps({k: v for k, v in key.items() if k != "seed"}, sort_keys=True)


def _canonical(condition: str) -> bool:
    """Whether the rule is named as its runs name it (`full`, not `images-per-class=1000`)."""
    if condition == pipeline.RANDOM:
        return True
    return subsets.parse_rule(condition)[0] == condition.partition("=")[0]


def jobs(scale: scales.Scale, claim_ids: Sequence[str] | None = None) -> list[Job]:
    """Every pre-training the claims (all by default) need, each once -- conditions with the
    same run key merged (`aliases`) -- for each pre-training seed, with the probes of all the
    claims that use it and the seeds whose fine-tunings follow it; the random-init baseline
    (every claim's floor) last."""
    names: dict[str, list[str]] = {}
    probes: dict[str, list] = {}
    users: dict[str, list] = {}
    for cid in claim_ids or claims.CLAIMS:
        claim = claims.CLAIMS[cid]
        for cond in claim.conditions(scale) + (pipeline.RANDOM,):
            key = pretraining(scale, cond)
            if cond not in names.setdefault(key, []):
                names[key].append(cond)
            have = probes.setdefault(key, [])
            have += [p for p in claim.probes(scale) if p not in have]
            if cid not in users.setdefault(key, []):
                users[key].append(cid)
    order = [k for k in names if k != pipeline.RANDOM] + [pipeline.RANDOM]
    out = []
    for k in order:
        name = next((c for c in names[k] if _canonical(c)), names[k][0])
        aliases = tuple(c for c in names[k] if c != name)
        for p in scale.pretrain_seeds:
            seeds = tuple(s for s in scale.seeds if scale.pretrain_seed(s) == p)
            out.append(Job(scale.name, name, p, tuple(probes[k]), tuple(users[k]),
                           seeds if seeds != (p,) else (), aliases))
    return out


def _store_empty() -> bool:
    """No transfer has finished in the run store, so no job is done (and nothing need be read:
    the paper scale's conditions are listed without its data)."""
    d = paths.runs_dir() / "transfer"
    return not d.is_dir() or not any(d.glob("*/metrics.json"))


def done(scale: scales.Scale, job: Job) -> bool:
    """Whether every result of `job`, a job of `scale`, is in the run store
    (pipeline.condition of each of its seeds, looking up only); raises what a lookup raises
    where the data its run keys are made from is not here."""
    return all(pipeline.condition(scale, job.condition, s, compute=False,
                                  probes=job.probes) is not None for s in job.seeds)


def states(scale: scales.Scale, found: list[Job]) -> tuple[dict[Job, bool | None], str]:
    """done() of every job (None where it cannot be checked here), and a note saying why."""
    if _store_empty():
        return {j: False for j in found}, ""
    out, why = {}, ""
    for j in found:
        try:
            out[j] = done(scale, j)
        except UNAVAILABLE as e:
            out[j], why = None, why or (str(e).splitlines() or [type(e).__name__])[0]
    if why:
        why = (f"the run store could not be checked for some jobs without their data ({why}): "
               "they count as not done")
    return out, why


# ---------------------------------------------------------------- one job, as submitit runs it


class Task(submitit.helpers.Checkpointable):
    """One job: the pre-training of (condition, seed) and the transfers that follow it, with the
    submitting command's `ITL_*` variables. Requeued on preemption or time-out by submitit, it
    resumes from the run store (see checkpoint)."""

    def __init__(self, job: Job, env: dict[str, str], gpus: int = 1):
        self.job, self.env, self.gpus = job, env, gpus

    def __call__(self) -> dict[int, dict] | None:
        """{seed: pipeline.condition's results} of each of the job's seeds (the first trains
        the pre-training, the others find it in the run store)."""
        os.environ.update(self.env)
        j = self.job
        scale = scales.get(j.scale)  # in the job's process, under the variables it carries
        if self.gpus > 1:
            if not self._pretrain_distributed(scale):
                return None  # ranks above 0: their part was the pre-training
        return {s: pipeline.condition(scale, j.condition, s, compute=True, probes=j.probes)
                for s in j.seeds}

    def _pretrain_distributed(self, scale: scales.Scale) -> bool:
        """Pre-train under DDP on the job's GPUs, one task each; True on rank 0, which then
        runs the transfers alone."""
        import torch.distributed as dist
        env = submitit.helpers.TorchDistributedEnvironment().export(overwrite=True)
        if self.job.condition != pipeline.RANDOM:
            pipeline.pretrain(scale, self.job.condition, self.job.seed)
        if dist.is_initialized():
            dist.destroy_process_group()
        os.environ.update(WORLD_SIZE="1", RANK="0", LOCAL_RANK="0", LOCAL_WORLD_SIZE="1")
        return env.rank == 0

    def checkpoint(self, *args, **kwargs) -> submitit.helpers.DelayedSubmission:
        """The same job again: its progress is in the run store (the pre-training's last epoch
        checkpoint, the finished transfers), not in this object."""
        return submitit.helpers.DelayedSubmission(Task(self.job, self.env, self.gpus))


def carried_env() -> dict[str, str]:
    """The ITL_* variables a job must see, folders made absolute (a job starts elsewhere)."""
    env = {k: os.environ[k] for k in CARRIED if k in os.environ}
    env["ITL_RUNS"] = str(paths.runs_dir().resolve())
    env["ITL_DATA"] = str(paths.data_dir().resolve())
    env["ITL_DETECTION"] = scales.detection_setting()
    return env


# ---------------------------------------------------------------- what a job costs


TARGET_RATE = 10_000.0  # images/s: the target for one GPU; used only when nothing is measured
SIZES = {  # (training images, test images, classes, the smallest class's training images) of
    # the data sets a scale reads, where they are not here, by their published counts
    "imagenet-1k": (1_281_167, 50_000, 1000, 732),  # ILSVRC-2012: 732 to 1,300 training
    # images per class, 50 validation images each (itl.datasets.imagenet1k)
    "imagenet64": (1_281_167, 50_000, 1000, 732),  # the same images, downsampled
    "sun397": (19_850, 19_850, 397, 50),  # partition 1: 50 + 50 per class (paper-protocol §3)
    "voc2007": (5_011, 4_952, 20, None),  # trainval, test (paper-protocol §8)
}
LBFGS_EVALS = 5 / 4  # torch.optim.LBFGS's max_eval per max_iter: the probe's evaluations, at most


@dataclass(frozen=True)
class Rate:
    images_per_s: float
    source: str  # where the figure comes from, as printed
    measured: bool


def rate(scale: scales.Scale, given: float | None = None) -> Rate:
    """Pre-training images per second on one GPU: the benchmark record of the scale on CUDA
    (`python -m itl.bench`, reports/benchmarks/throughput-<scale>[-synthetic]-cuda.json; real
    images first), else `given` (--images-per-second), else the issue's target, marked assumed."""
    model = scale.pretrain.model
    for tag in ("", "-synthetic"):
        f = paths.reports_dir() / "benchmarks" / f"throughput-{scale.name}{tag}-cuda.json"
        try:
            rec = json.loads(f.read_text())
        except (OSError, ValueError):
            continue
        if rec.get("model") == model and float(rec.get("images_per_s", 0)) > 0:
            return Rate(float(rec["images_per_s"]),
                        f"measured: {rec['images_per_s']:.0f} img/s on {rec.get('device', 'a GPU')}"
                        f"{' (synthetic images)' if tag else ''}, {f.name}", True)
    if given is not None:
        return Rate(given, f"given: {given:g} img/s (--images-per-second)", False)
    return Rate(TARGET_RATE, f"assumed (not measured on a GPU yet): {TARGET_RATE:.0f} img/s, "
                "the issue's target", False)


@dataclass(frozen=True)
class Size:
    """Images of a data set, or of a subset rule of one: counted, or from SIZES."""
    train: int | None
    test: int | None
    classes: int | None
    exact: bool  # counted, or exact arithmetic (N images of classes that all have N); else
    # the kept classes' share of the images

    def __str__(self) -> str:
        return "?" if self.train is None else f"{'' if self.exact else '≈'}{self.train:,}"


UNKNOWN = Size(None, None, None, False)


def size(scale: scales.Scale, name: str, seed: int) -> Size:
    """The training and test images (and classes) of data set `name`, with an optional `|rule`
    drawn with `seed`, at the scale's image size: counted where its data is here, else from
    SIZES and the classes the rule keeps (exact for N images per class where every class has
    N; else the kept classes' share of the images)."""
    return _size(scale.name, scale.size, name, seed, str(paths.data_dir()))


@functools.lru_cache(maxsize=None)
def _size(scale_name: str, px: int | None, name: str, seed: int, _data: str) -> Size:
    try:
        tr = pipeline.target_images(name, "train", seed, px)
        te = pipeline.target_images(name, "test", seed, px)
        return Size(len(tr), len(te), len(tr.classes), True)
    except UNAVAILABLE:
        pass
    base, _, rule = name.partition("|")
    if base not in SIZES:
        return UNKNOWN
    train_n, test_n, classes, smallest = SIZES[base]
    if not rule:
        return Size(train_n, test_n, classes, True)
    try:
        label_of = subsets.label_map(rule, labels.dataset_leaves(base), base, seed)
        n = subsets.parse_rule(rule)[1].get("images_per_class")
    except UNAVAILABLE:
        return UNKNOWN
    share, trained = len(label_of) / classes, len(set(label_of.values()))
    if n is not None and smallest is not None and n <= smallest:
        return Size(n * len(label_of), round(test_n * share), trained, True)
    return Size(round(train_n * share), round(test_n * share), trained, share == 1)


def subset_size(scale: scales.Scale, condition: str, seed: int) -> Size:
    """The training images of a condition's pre-training: its manifest where the source is
    here, else `size` of the rule on the source."""
    if condition == pipeline.RANDOM:
        return Size(0, 0, 0, True)
    try:
        m = pipeline.manifest(scale, condition, seed, save=False)
        return Size(len(m.indices), None, len(m.classes), True)
    except UNAVAILABLE:
        pass
    return size(scale, f"{pipeline.source_name(scale, condition)}|{condition}", seed)


def _detection_images(name: str) -> int | None:
    """Training images of a VOC-format detection target (its train split), or SIZES'."""
    entry = datasets.get(name)
    try:
        from itl.datasets.voc import read_voc
        if entry.present():
            return len(read_voc(entry.root(), entry.train_split))
    except UNAVAILABLE:
        pass
    return SIZES[name][0] if name in SIZES else None


@functools.lru_cache(maxsize=None)
def _width(model: str) -> int:
    """Features of the network's frozen backbone (what the probes read)."""
    from itl import models
    return models.build(model, 2, 0).head.in_features


@dataclass(frozen=True)
class Work:
    """What one job computes, counted without running it."""
    pretrain: tuple[int, int] | None  # (steps, batch); steps 0 for the random init; None:
    # not known here (a schedule in epochs of a subset whose size is unknown)
    subset: Size  # the condition's training images
    finetunes: tuple[tuple[str, int, int | None], ...]  # (target, fine-tunings, steps each)
    detects: tuple[tuple[str, int, int | None], ...]  # (target, fine-tunings, steps each)
    features: int  # images through the probes' feature passes
    macs: float  # multiply-adds of the probes' matrix work on the CPU: the linear probes'
    # L-BFGS evaluations (at most) and the k-NN similarities
    knn_bytes: int  # the largest k-NN similarity matrix (float32), which transfer.knn forms
    # in blocks of transfer.SIMILARITY_BLOCK_BYTES
    unsized: tuple[str, ...] = ()  # probe targets not counted: their size is not known here

    @property
    def epochs(self) -> float | None:
        """Passes over its own training images that the pre-training makes."""
        if self.pretrain is None or not self.subset.train:
            return None
        return self.pretrain[0] * self.pretrain[1] / self.subset.train


def work(scale: scales.Scale, job: Job) -> Work:
    """What `job` computes: its pre-training's steps and subset, each target's fine-tunings
    (job.seeds x the config's repeats), its detection fine-tunings (one per seed) and its
    probes (each once: every classification target's linear probe and k-NN, and the claims'
    probes), sized without running anything."""
    cfg = scale.pretrain
    sub = subset_size(scale, job.condition, job.seed)
    full = size(scale, scale.source, job.seed).train
    if job.condition == pipeline.RANDOM:
        pre = (0, cfg.batch_size)
    elif cfg.steps is not None and cfg.budget == train.ITERATIONS:
        pre = (cfg.steps, cfg.batch_size)
    elif full and (sub.train or cfg.budget == train.ITERATIONS):
        pre = (train.schedule(cfg, full, sub.train).steps, cfg.batch_size)
    else:
        pre = None
    from itl.transfer import finetune_schedule
    fts = []
    for t in scale.targets:
        c = scale.finetune_config(t)
        n = None if c.steps else size(scale, t, job.seed).train
        steps = c.steps or (finetune_schedule(c, n)[0] if n else None)
        fts.append((t, len(job.seeds) * c.repeats, steps))
    dets = []
    for t in scale.detection:
        n = None if scale.detect.steps else _detection_images(t)
        steps = detection.schedule(scale.detect, n or 0)[0] if scale.detect.steps or n else None
        dets.append((t, len(job.seeds), steps))
    pairs = [(t, m) for t in scale.targets for m in ("linear", "knn")]
    pairs += [p for p in job.probes if p not in pairs]
    width, features, macs, biggest, unsized = _width(cfg.model), 0, 0.0, 0, []
    for target, method in pairs:
        sz = size(scale, target, scale.pretrain_seed(job.seed))
        if sz.train is None:
            unsized += [target] if target not in unsized else []
            continue
        features += sz.train + sz.test
        if method == "linear":
            macs += scale.probe.iterations * LBFGS_EVALS * 2 * sz.train * width * sz.classes
        else:
            macs += sz.test * sz.train * width
            biggest = max(biggest, 4 * sz.test * sz.train)
    return Work(pre, sub, tuple(fts), tuple(dets), features, macs, biggest, tuple(unsized))


@dataclass(frozen=True)
class Cost:
    """Seconds of one unit of a kind of work: a step (fine-tuning, detection), an image (a
    feature pass) or a multiply-add (the probes' CPU matrix work)."""
    seconds: float
    source: str  # how it was had, as printed
    measured: bool


def _transfer_record(scale: scales.Scale, device: str) -> dict | None:
    """reports/benchmarks/transfer-<scale>-<device>.json (python -m itl.bench --transfer) of the
    scale's model: each kind of step's time on `device` (cuda or cpu)."""
    f = paths.reports_dir() / "benchmarks" / f"transfer-{scale.name}-{device}.json"
    try:
        rec = json.loads(f.read_text())
    except (OSError, ValueError):
        return None
    if rec.get("model") != scale.pretrain.model or not isinstance(rec.get("steps"), dict):
        return None
    return {**rec, "file": f.name}


def _per_unit(entry: dict, key: str, per_image: bool) -> float:
    t = float(entry[key])
    return t / entry["batch"] if per_image else t


def costs(scale: scales.Scale, r: Rate) -> dict[str, Cost | None]:
    """The cost of each kind of work on one GPU ("finetune:<target>", "detect", "features")
    and on the CPU ("features-cpu", "mac-cpu"): measured on a GPU (transfer-<scale>-cuda.json)
    where it was; else assumed -- its work in pre-training images as this project's CPU
    measured it (transfer-<scale>-cpu.json: its CPU time over a pre-training image's), at the
    GPU's pre-training rate `r`; without that record, its pixels over a pre-training crop's (a
    feature pass: a third of a training step). The CPU kinds: the CPU record's, or None."""
    gpu, cpu = _transfer_record(scale, "cuda"), _transfer_record(scale, "cpu")
    img = 1.0 / r.images_per_s  # one pre-training image on one GPU
    crop = (scale.pretrain.crop or scale.size or 32) ** 2
    cpu_img = (_per_unit(cpu["steps"]["pretrain"], "cpu_seconds", True)
               if cpu and "pretrain" in cpu["steps"] else None)
    det = scale.detect
    fallback = {"detect": (det.batch_size * ((det.min_size * det.max_size) / crop
                                             if det.min_size and det.max_size else 1.0),
                           "its images' pixels over a crop's"),
                "features": (1 / 3, "a forward pass, a third of a training step")}
    for t in scale.targets:
        c = scale.finetune_config(t)
        fallback[f"finetune:{t}"] = (c.batch_size * (c.crop or scale.size or 32) ** 2 / crop,
                                     "its batch's pixels over a crop's")
    out: dict[str, Cost | None] = {}
    for kind, (images, why) in fallback.items():
        per_image = kind == "features"
        if gpu and kind in gpu["steps"]:
            e = gpu["steps"][kind]
            out[kind] = Cost(_per_unit(e, "seconds", per_image),
                             f"measured on {gpu.get('device', 'a GPU')} ({gpu['file']})", True)
        elif cpu_img and kind in cpu["steps"]:
            n = _per_unit(cpu["steps"][kind], "cpu_seconds", per_image) / cpu_img
            out[kind] = Cost(n * img, f"assumed: {n:,.1f} pre-training images of work, as "
                             f"{cpu['cpu']} measured it ({cpu['file']}), at the pre-training "
                             "rate", False)
        else:
            out[kind] = Cost(images * img, f"assumed: {images:,.2f} pre-training images of "
                             f"work ({why}), at the pre-training rate", False)
    where = f"measured on {cpu['cpu']}, {cpu.get('threads', 1)} thread ({cpu['file']})" if cpu else ""
    e = cpu["steps"].get("features") if cpu else None
    out["features-cpu"] = Cost(_per_unit(e, "cpu_seconds", True), where, True) if e else None
    e = cpu["steps"].get("lbfgs") if cpu else None
    out["mac-cpu"] = Cost(e["cpu_seconds"] / e["macs"], where, True) if e and e.get("macs") \
        else None
    return out


PROBES_ON_CPU = True  # where itl's probes compute their features today: pipeline.transfer_one
# hands linear_probe and knn the network on the CPU and transfer.features runs it where it is;
# their L-BFGS and k-NN products run on the CPU wherever the features were computed


@dataclass(frozen=True)
class Hours:
    total: float | None  # GPU-hours held by the job (None: its pre-training is not sized here)
    parts: dict[str, float]  # GPU-hours of each part
    measured: tuple[str, ...]  # the parts whose rates were measured
    assumed: tuple[str, ...]  # ... and those assumed


def gpu_hours(job: Job, w: Work, r: Rate, c: dict[str, Cost | None], gpus: int) -> Hours:
    """Projected GPU-hours of one job: its wall seconds x gpus / 3600 -- every GPU of the job
    is held while it runs. Its wall seconds: pre-training images over `gpus` x the one-GPU rate
    (DDP assumed to scale linearly), then, on rank 0 alone, each fine-tuning and detection
    fine-tuning at its step's cost and the probes: feature passes (on the CPU, as itl runs
    them: PROBES_ON_CPU) and their CPU matrix work. Work not sized here, or without a rate,
    counts 0 (the plan says which)."""
    if w.pretrain is None:
        return Hours(None, {}, (), ())
    parts, measured, assumed = {}, [], []

    def add(part: str, seconds: float, cost: Cost | bool | None) -> None:
        parts[part] = parts.get(part, 0.0) + seconds * gpus / 3600
        ok = cost if isinstance(cost, bool) else cost is not None and cost.measured
        (measured if ok else assumed).append(part)

    if job.condition != pipeline.RANDOM:
        add("pre-training", w.pretrain[0] * w.pretrain[1] / (r.images_per_s * gpus), r.measured)
    for t, n, steps in w.finetunes:
        add("fine-tuning", n * (steps or 0) * c[f"finetune:{t}"].seconds, c[f"finetune:{t}"])
    for t, n, steps in w.detects:
        add("detection", n * (steps or 0) * c["detect"].seconds, c["detect"])
    pass_cost = c["features-cpu"] if PROBES_ON_CPU else c["features"]
    if w.features and pass_cost:
        add("probes", w.features * pass_cost.seconds, pass_cost)
    if w.macs and c["mac-cpu"]:
        add("probes", w.macs * c["mac-cpu"].seconds, c["mac-cpu"])
    return Hours(sum(parts.values()), parts, tuple(dict.fromkeys(measured)),
                 tuple(p for p in dict.fromkeys(assumed) if p not in measured))


def _rates_cell(h: Hours) -> str:
    if h.total is None:
        return "?"
    if not h.assumed:
        return "measured"
    if not h.measured:
        return "assumed"
    return f"measured: {', '.join(h.measured)}; assumed: {', '.join(h.assumed)}"


# ---------------------------------------------------------------- launching


@dataclass(frozen=True)
class Launch:
    launcher: str = "local"  # local (this machine) | slurm
    partition: str | None = None  # Slurm partition (needed for slurm)
    gpus_per_job: int = 1  # GPUs (and tasks) of one job; > 1: DDP pre-training
    cpus_per_task: int = 8  # CPU cores per task (Slurm), for the input path's reader threads
    mem_gb: int | None = None  # memory per node (Slurm); None: the partition's default
    timeout_min: int = 24 * 60  # wall limit of one attempt; reaching it requeues the job
    max_timeouts: int = 20  # requeues after a time-out (submitit's max_num_timeout);
    # preemptions are not counted
    signal_delay_s: int = 300  # USR2 this long before the time limit: the job requeues itself
    array_parallelism: int = 64  # Slurm: array tasks running at once
    parallel: int = 2  # local: jobs running at once

    def __post_init__(self):
        if self.launcher not in LAUNCHERS:
            raise ValueError(f"unknown launcher {self.launcher!r}: choose one of "
                             f"{', '.join(LAUNCHERS)}")
        if self.launcher == "slurm" and not self.partition:
            raise ValueError("--launcher slurm needs --partition: the Slurm partition to submit "
                             "to (sinfo lists them)")
        if self.launcher != "slurm" and self.partition:
            raise ValueError("--partition is for --launcher slurm only")


def folder(scale_name: str) -> Path:
    """The grid's record: submitit's files (pickles, logs) and jobs.json, in the run store."""
    return paths.runs_dir() / "grid" / scale_name


def slurm_parameters(launch: Launch, scale_name: str) -> dict:
    """SlurmExecutor's parameters (sbatch's names): one node, one task per GPU."""
    p = {"job_name": f"itl-{scale_name}", "partition": launch.partition,
         "time": launch.timeout_min, "nodes": 1, "ntasks_per_node": launch.gpus_per_job,
         "gpus_per_node": launch.gpus_per_job, "cpus_per_task": launch.cpus_per_task,
         "signal_delay_s": launch.signal_delay_s, "array_parallelism": launch.array_parallelism}
    if launch.mem_gb:
        p["mem"] = f"{launch.mem_gb}GB"
    return p


def sbatch_script(launch: Launch, scale_name: str, n: int) -> str:
    """The sbatch file submitit writes for an array of `n` jobs (submitit's own template)."""
    from submitit.slurm.slurm import _make_sbatch_string
    sub = folder(scale_name) / "submitit"
    cmd = (f"{shlex.quote(sys.executable)} -u -m submitit.core._submit "
           f"{shlex.quote(str(sub / '%j'))}")
    return _make_sbatch_string(command=cmd, folder=sub / "%j", map_count=n,
                               **slurm_parameters(launch, scale_name))


def _record(scale_name: str) -> dict:
    f = folder(scale_name) / "jobs.json"
    try:
        return json.loads(f.read_text())
    except FileNotFoundError:
        return {}
    except ValueError as e:
        raise ValueError(f"{f} is not valid JSON ({e}): move it aside to start the grid's "
                         "record afresh") from e


def _note(scale_name: str, submitted: list[tuple[Job, str]], launcher: str) -> None:
    rec = _record(scale_name)
    now = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    for j, jid in submitted:
        rec[jid] = {"condition": j.condition, "seed": j.seed, "seeds": list(j.seeds),
                    "launcher": launcher, "submitted": now}
    paths.atomic_write_json(folder(scale_name) / "jobs.json", rec)


def _submission(j: Job) -> tuple[str, int, tuple[int, ...]]:
    """What identifies a job among the grid's submissions: its condition, its pre-training's
    seed and the seeds whose transfers it runs (one pre-training seed, submitted under
    ITL_SEEDS=pre-training, is another job than the same seed fine-tuned with every seed)."""
    return j.condition, j.seed, j.seeds


def latest(scale_name: str) -> dict[tuple[str, int, tuple[int, ...]], tuple[str, dict]]:
    """_submission(job) -> (job id, record) of its latest submission."""
    out: dict = {}
    for jid, r in sorted(_record(scale_name).items(), key=lambda kv: kv[1]["submitted"]):
        seeds = tuple(r.get("seeds", (r["seed"],)))  # records older than "seeds": one seed
        out[(r["condition"], r["seed"], seeds)] = (jid, r)
    return out


def job_state(scale_name: str, jid: str, rec: dict) -> tuple[str, str]:
    """(state, reason) of submitted job `jid` from submitit's files (and Slurm's sacct where
    it is installed): finished, failed (the exception's last line, or stderr's), or in flight."""
    sub = folder(scale_name) / "submitit"
    p = JobPaths(sub / "%j", jid, 0)
    if p.result_pickle.exists():
        try:
            with p.result_pickle.open("rb") as fh:
                outcome, value = pickle.load(fh)
        except Exception as e:  # noqa: BLE001 - an unreadable result is itself the news
            return "failed", f"unreadable result {p.result_pickle} ({e})"
        if outcome == "success":
            return "finished", "but not all its results are in the run store (another ITL_RUNS?)"
        return "failed", _last_line(str(value))
    if rec.get("launcher") == "local":
        try:
            os.kill(int(jid), 0)
            return "running", ""
        except (OSError, ValueError):
            return "failed", "ended without a result: " + _last_line(_tail(p.stderr))
    if shutil.which("sacct"):
        state = submitit.SlurmJob(sub / "%j", jid).state
        if state in ("RUNNING", "PENDING", "REQUEUED", "CONFIGURING", "COMPLETING", "SUSPENDED"):
            return state.lower(), ""
        return "failed", f"Slurm: {state}; " + _last_line(_tail(p.stderr))
    return IN_FLIGHT, "no result yet (pending or running; sacct is not here to ask Slurm)"


def _tail(f: Path) -> str:
    try:
        return f.read_text(errors="replace")[-4000:]
    except OSError:
        return f"(no log at {f})"


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "(nothing logged)"


def status(scale: scales.Scale, claim_ids: Sequence[str] | None = None) -> list[list[str]]:
    """One row per job: condition, seed, state (done, not submitted, running / pending /
    submitted, failed, finished), job id, reason."""
    found = jobs(scale, claim_ids)
    ok, why = states(scale, found)
    subs = latest(scale.name)
    rows = []
    for j in found:
        jid, rec = subs.get(_submission(j), ("", {}))
        if ok[j]:
            state, reason = DONE, ""
        elif not jid:
            state, reason = "not submitted", ""
        else:
            state, reason = job_state(scale.name, jid, rec)
        rows.append([j.condition, j.seed, state, jid, reason])
    if why:
        rows.append(["", "", "", "", why])
    return rows


def to_submit(scale_name: str, found: list[Job],
              ok: dict[Job, bool | None]) -> tuple[list[Job], dict[Job, str]]:
    """The jobs to submit: not done, and not in flight from an earlier submission."""
    subs, flying = latest(scale_name), {}
    for j in found:
        if ok[j]:
            continue
        jid, rec = subs.get(_submission(j), ("", {}))
        if jid:
            state = job_state(scale_name, jid, rec)[0]
            if state not in ("failed", "finished"):
                flying[j] = f"{state} (job {jid})"
    return [j for j in found if not ok[j] and j not in flying], flying


def _hours(x: float) -> str:
    return f"{x:,.2f}" if x < 100 else f"{x:,.0f}"


def plan(scale: scales.Scale, launch: Launch, claim_ids: Sequence[str] | None = None,
         images_per_s: float | None = None) -> str:
    """The dry run: every job (one per pre-training) with its state, its subset's images and
    epochs, its fine-tunings, its probes' work and its projected GPU-hours (and whether their
    rates were measured or assumed), their totals, where each rate comes from, and (Slurm) the
    sbatch file that would be submitted."""
    found = jobs(scale, claim_ids)
    ok, why = states(scale, found)
    todo, flying = to_submit(scale.name, found, ok)
    r, g = rate(scale, images_per_s), launch.gpus_per_job
    c = costs(scale, r)
    works = {j: work(scale, j) for j in found}
    hours = {j: gpu_hours(j, works[j], r, c, g) for j in found}
    rows, total, left, parts = [], 0.0, 0.0, {}
    for j in found:
        w, h = works[j], hours[j]
        state = DONE if ok[j] else flying.get(j, TO_SUBMIT)
        pre = ("-" if j.condition == pipeline.RANDOM else
               f"{w.pretrain[0]:,} x {w.pretrain[1]}" if w.pretrain else "?")
        ft = ", ".join(f"{n} x {t.partition('|')[0]}" for t, n, _ in w.finetunes + w.detects)
        rows.append([j.condition + "".join(f" (= {a})" for a in j.aliases),
                     ", ".join(map(str, j.seeds)) if j.seeds == (j.seed,) else
                     f"{j.seed} (fine-tuned with {', '.join(map(str, j.seeds))})",
                     state, pre,
                     "-" if j.condition == pipeline.RANDOM else str(w.subset),
                     "-" if w.epochs is None else f"{w.epochs:,.1f}", ft,
                     f"{w.features:,}" + ("+?" if w.unsized else ""),
                     "?" if h.total is None else _hours(h.total), _rates_cell(h)])
        total += h.total or 0.0
        left += (h.total or 0.0) if j in todo else 0.0
        for k, v in h.parts.items():
            parts[k] = parts.get(k, 0.0) + v
    unknown = any(h.total is None for h in hours.values())
    seeds = (f"each seed a pre-training of its own ({', '.join(map(str, scale.seeds))})"
             if scale.replicate == scales.PRETRAINING else
             f"one pre-training per condition (seed {scale.pretrain_seeds[0]}), each seed "
             f"({', '.join(map(str, scale.seeds))}) another fine-tuning of it")
    out = [f"itl grid, scale {scale.name}: {len(found)} jobs (one per pre-training, each "
           f"followed by its transfers; {seeds}), {sum(bool(ok[j]) for j in found)} done, "
           f"{len(flying)} in flight, {len(todo)} to submit; launcher {launch.launcher}, {g} "
           f"GPU(s) per job. Subsets' schedule: {scale.pretrain.budget} "
           f"({_budget_text(scale.pretrain)}).",
           tabulate(rows, ["condition", "seed", "state", "pre-training steps x batch",
                           "subset images", "epochs", "fine-tunings", "probe images",
                           "GPU-hours", "rates"], tablefmt="github")]
    out.append(f"GPU-hours: {total:,.1f} for the whole grid, {left:,.1f} for the jobs to submit"
               + (" (jobs marked ? not counted: their data is not here to size them)"
                  if unknown else "") + "; by part: "
               + ", ".join(f"{k} {v:,.1f}" for k, v in parts.items()) + ".")
    out += _work_totals(scale, found, works, c)
    out.append(f"Rates. Pre-training: {r.source}. "
               + " ".join(f"{k}: {v.source}." for k, v in c.items() if v is not None)
               + f" A job's GPU-hours = its seconds x {g} GPU(s) / 3600; its seconds = "
               "pre-training images / (GPUs x the one-GPU rate, DDP assumed linear) + its "
               "fine-tunings' and detection fine-tunings' steps, its probes' feature passes "
               "and CPU matrix work on rank 0 alone (every GPU of the job held).")
    if why:
        out.append(f"Note: {why}.")
    if launch.launcher == "slurm":
        out.append(f"sbatch file of the array submitit would submit ({max(1, len(todo))} jobs; "
                   f"requeued on time-out up to {launch.max_timeouts} times):\n\n"
                   + sbatch_script(launch, scale.name, max(1, len(todo))))
    return "\n".join(out)


def _budget_text(cfg: train.PretrainConfig) -> str:
    if cfg.budget == train.ITERATIONS:
        return "every subset the full source's steps"
    return "every subset the full source's epochs of its own images"


def _work_totals(scale: scales.Scale, found: list[Job], works: dict[Job, Work],
                 c: dict[str, Cost | None]) -> list[str]:
    """The grid's detection and probe work, summed, and what they cost where they run."""
    out = []
    dets = [(n, steps) for j in found for _, n, steps in works[j].detects]
    if dets:
        runs_, steps = sum(n for n, _ in dets), sum(n * (s or 0) for n, s in dets)
        out.append(f"Detection: {runs_} fine-tunings, {steps:,} steps of {scale.detect.batch_size} "
                   f"images; {steps * c['detect'].seconds / 3600:,.1f} GPU-hours at "
                   f"{c['detect'].seconds:.3f} s a step ({c['detect'].source}).")
    n, m = sum(works[j].features for j in found), sum(works[j].macs for j in found)
    unsized = list(dict.fromkeys(t for j in found for t in works[j].unsized))
    line = (f"Probes: {n:,} images through the frozen network's feature pass and {m:.2e} "
            "multiply-adds of L-BFGS evaluations (at most) and k-NN similarities")
    cpu, mac, gpu = c["features-cpu"], c["mac-cpu"], c["features"]
    if cpu and mac:
        line += (f": {n * cpu.seconds / 3600:,.0f} + {m * mac.seconds / 3600:,.0f} hours on one "
                 f"CPU thread, where itl runs them ({cpu.source})")
    line += (f"; the feature passes on a GPU instead: {n * gpu.seconds / 3600:,.1f} GPU-hours "
             f"({gpu.source})")
    out.append(line + (f"; not counted, their data not here to size them: {', '.join(unsized)}"
                       if unsized else "") + ".")
    big = max(works[j].knn_bytes for j in found)
    if big > 2**34:
        out.append(f"Note: the largest k-NN similarity matrix is {big / 2**30:,.0f} GiB (float32; "
                   "transfer.knn forms it in blocks of at most "
                   f"{transfer.SIMILARITY_BLOCK_BYTES / 2**30:g} GiB).")
    return out


def executor(scale_name: str, launch: Launch) -> submitit.Executor:
    sub = folder(scale_name) / "submitit"
    if launch.launcher == "slurm":
        try:
            ex = submitit.SlurmExecutor(sub / "%j", max_num_timeout=launch.max_timeouts)
        except RuntimeError as e:  # no srun here
            raise ValueError(f"--launcher slurm: {e} (use --dry-run to see the jobs, or "
                             "--launcher local)") from None
        ex.update_parameters(**slurm_parameters(launch, scale_name))
        return ex
    ex = submitit.LocalExecutor(sub / "%j", max_num_timeout=launch.max_timeouts)
    ex.update_parameters(timeout_min=launch.timeout_min, signal_delay_s=launch.signal_delay_s,
                         tasks_per_node=launch.gpus_per_job)
    return ex


def submit(scale: scales.Scale, launch: Launch, claim_ids: Sequence[str] | None = None,
           echo=print) -> list[tuple[Job, str]]:
    """Submit every job not done nor in flight. Slurm: one job array, then return; local:
    `launch.parallel` jobs at once (each on its own GPUs where there are any), until all have
    ended. Returns (job, job id) of each submission; the record is ITL_RUNS/grid/<scale>/."""
    found = jobs(scale, claim_ids)
    ok, why = states(scale, found)
    if why:
        echo(f"itl grid: {why}")
    todo, flying = to_submit(scale.name, found, ok)
    for j, s in flying.items():
        echo(f"{j}: not submitted again, {s}")
    if not todo:
        echo(f"itl grid: nothing to submit ({sum(bool(v) for v in ok.values())} of {len(found)} "
             "jobs done)")
        return []
    paths.ensure_writable(folder(scale.name))
    env = carried_env()
    ex = executor(scale.name, launch)
    if launch.launcher == "slurm":
        with ex.batch():
            futures = [ex.submit(Task(j, env, launch.gpus_per_job)) for j in todo]
        out = [(j, f.job_id) for j, f in zip(todo, futures)]
        _note(scale.name, out, launch.launcher)
        echo(f"itl grid: submitted {len(out)} jobs as array {out[0][1].split('_')[0]}; "
             f"`itl grid --scale {scale.name} --status` follows them")
        return out
    return _run_local(scale.name, launch, ex, todo, env, echo)


def _run_local(scale_name: str, launch: Launch, ex: submitit.Executor, todo: list[Job],
               env: dict[str, str], echo) -> list[tuple[Job, str]]:
    import torch
    g = launch.gpus_per_job
    gpus = torch.cuda.device_count()
    slots = list(range(max(1, launch.parallel)))
    queue, running, out = list(todo), {}, []
    while queue or running:
        while queue and slots:
            slot, j = slots.pop(0), queue.pop(0)
            if gpus:
                ex.update_parameters(gpus_per_node=g,
                                     visible_gpus=[(slot * g + k) % gpus for k in range(g)])
            f = ex.submit(Task(j, env, g))
            running[f.job_id] = (j, f, slot, time.time())
            out.append((j, f.job_id))
            _note(scale_name, [(j, f.job_id)], launch.launcher)
        time.sleep(1.0)
        for jid, (j, f, slot, t0) in list(running.items()):
            if f.done():
                del running[jid]
                slots.append(slot)
                state, reason = job_state(scale_name, jid, {"launcher": "local"})
                ok = state == "finished"
                echo(f"{'done' if ok else state}: {j} (job {jid}, {time.time() - t0:.0f} s)"
                     + ("" if ok else f": {reason}"))
    return out
