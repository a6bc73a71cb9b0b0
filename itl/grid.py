"""The paper's whole grid -- every condition x seed that Sections 4 to 6 compare, each followed
by its transfers -- as jobs handed to submitit: on this machine (`--launcher local`) or on a
Slurm cluster as job arrays (`--launcher slurm`).

    itl grid --scale paper --launcher slurm --partition P --gpus-per-job 8 --dry-run
    itl grid --scale paper --launcher slurm --partition P --gpus-per-job 8     # submit
    itl grid --scale paper --status                                          # what ran, what failed
    itl grid --scale smoke --launcher local --jobs 2                         # run here

**A job** is one (condition, seed): `pipeline.condition(..., compute=True)` with the union of
the probes of every claim that uses the condition, i.e. the pre-training and then every
transfer that follows it. A condition shared by several claims (the full source, the random
init) is one job. Every step is a run of the run store, the same runs `pytest experiments`
computes, so the two fill one store with the same numbers, and a job whose results are all in the
store is never submitted.

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

from itl import claims, data, datasets, detection, paths, pipeline, scales, subsets, train

LAUNCHERS = ("local", "slurm")
DONE, TO_SUBMIT, IN_FLIGHT = "done", "to submit", "submitted"
# what looking up a condition raises where its data is not on this machine
UNAVAILABLE = (data.DataError, subsets.SubsetError, ValueError, KeyError, OSError)
# the variables a job needs to find the same data and run store as the command that submitted it
CARRIED = ("ITL_RUNS", "ITL_DATA", "ITL_DETECTION", "ITL_LOCK")


# ---------------------------------------------------------------- the jobs of a scale


@dataclass(frozen=True)
class Job:
    scale: str
    condition: str  # a subset rule, or pipeline.RANDOM
    seed: int
    probes: tuple[tuple[str, str], ...] = ()  # (target, method) of every claim using it
    claims: tuple[str, ...] = ()  # the claims that use it

    def __str__(self) -> str:
        return f"{self.condition} seed {self.seed}"


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


def jobs(scale_name: str, claim_ids: Sequence[str] | None = None) -> list[Job]:
    """Every (condition, seed) of the claims (all by default), each once, with the probes of all
    the claims that use it; the random-init baseline (every claim's floor) last."""
    scale = scales.get(scale_name)
    probes: dict[str, list] = {}
    users: dict[str, list] = {}
    for cid in claim_ids or claims.CLAIMS:
        claim = claims.CLAIMS[cid]
        for cond in claim.conditions(scale) + (pipeline.RANDOM,):
            have = probes.setdefault(cond, [])
            have += [p for p in claim.probes(scale) if p not in have]
            users.setdefault(cond, []).append(cid)
    order = [c for c in probes if c != pipeline.RANDOM] + [pipeline.RANDOM]
    return [Job(scale_name, c, s, tuple(probes[c]), tuple(users[c]))
            for c in order for s in scale.seeds]


def _store_empty() -> bool:
    """No transfer has finished in the run store, so no job is done (and nothing need be read:
    the paper scale's conditions are listed without its data)."""
    d = paths.runs_dir() / "transfer"
    return not d.is_dir() or not any(d.glob("*/metrics.json"))


def done(job: Job) -> bool:
    """Whether every result of `job` is in the run store (pipeline.condition, looking up only);
    raises what a lookup raises where the data its run keys are made from is not here."""
    return pipeline.condition(job.scale, job.condition, job.seed, compute=False,
                              probes=job.probes) is not None


def states(found: list[Job]) -> tuple[dict[Job, bool | None], str]:
    """done() of every job (None where it cannot be checked here), and a note saying why."""
    if _store_empty():
        return {j: False for j in found}, ""
    out, why = {}, ""
    for j in found:
        try:
            out[j] = done(j)
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

    def __call__(self) -> dict | None:
        os.environ.update(self.env)
        j = self.job
        if self.gpus > 1:
            if not self._pretrain_distributed():
                return None  # ranks above 0: their part was the pre-training
        return pipeline.condition(j.scale, j.condition, j.seed, compute=True, probes=j.probes)

    def _pretrain_distributed(self) -> bool:
        """Pre-train under DDP on the job's GPUs, one task each; True on rank 0, which then
        runs the transfers alone."""
        import torch.distributed as dist
        env = submitit.helpers.TorchDistributedEnvironment().export(overwrite=True)
        if self.job.condition != pipeline.RANDOM:
            pipeline.pretrain(self.job.scale, self.job.condition, self.job.seed)
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


# ---------------------------------------------------------------- GPU-hours


TARGET_RATE = 10_000.0  # images/s: the target for one GPU; used only when nothing is measured
SOURCE_IMAGES = {"imagenet-1k": 1_281_167, "imagenet64": 1_281_167}  # ILSVRC2012 train, for
# scales whose pre-training is counted in epochs when the data is not here (itl.datasets)


@dataclass(frozen=True)
class Rate:
    images_per_s: float
    source: str  # where the figure comes from, as printed
    measured: bool


def rate(scale_name: str, given: float | None = None) -> Rate:
    """Pre-training images per second on one GPU: the benchmark record of the scale on CUDA
    (`python -m itl.bench`, reports/benchmarks/throughput-<scale>[-synthetic]-cuda.json; real
    images first), else `given` (--images-per-second), else the issue's target, marked assumed."""
    model = scales.get(scale_name).pretrain.model
    for tag in ("", "-synthetic"):
        f = paths.reports_dir() / "benchmarks" / f"throughput-{scale_name}{tag}-cuda.json"
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


def _train_images(name: str, size: int | None, seed: int = 0) -> int | None:
    try:
        return len(pipeline.target_images(name, "train", seed, size))
    except UNAVAILABLE:
        return SOURCE_IMAGES.get(name.partition(":")[0].partition("|")[0])


def pretrain_work(scale: scales.Scale) -> tuple[int, int] | None:
    """(steps, batch) of every pre-training of the scale (one budget for every condition), or
    None when its steps follow the source's size and that is unknown here."""
    cfg = scale.pretrain
    if cfg.steps is not None:
        return cfg.steps, cfg.batch_size
    n = _train_images(scale.source, scale.size)
    return (train.schedule(cfg, n).steps, cfg.batch_size) if n else None


def transfer_work(scale: scales.Scale) -> tuple[float | None, list[str]]:
    """Images a job's fine-tunings and detection fine-tunings process, in pre-training crops
    (a detection image weighted by its pixels over a crop's); probes (forward passes) are not
    counted. None when a target's size is needed and not known here. And what was counted."""
    from itl.transfer import finetune_schedule
    total, counted = 0.0, []
    crop = (scale.pretrain.crop or scale.size or 32) ** 2
    for t in scale.targets:
        cfg = scale.finetune_config(t)
        n = None if cfg.steps else _train_images(t, scale.size)
        if cfg.steps is None and n is None:
            return None, [t]
        steps = finetune_schedule(cfg, n or 0)[0]
        total += steps * cfg.batch_size * cfg.repeats * (cfg.crop or scale.size or 32) ** 2 / crop
        counted.append(f"{t} fine-tuning")
    for t in scale.detection:
        cfg, n = scale.detect, 0
        if cfg.steps is None:
            entry = datasets.get(t)
            try:
                from itl.datasets.voc import read_voc
                n = len(read_voc(entry.root(), entry.train_split)) if entry.present() else 0
            except UNAVAILABLE:
                n = 0
            if not n:
                return None, [t]
        steps = detection.schedule(cfg, n)[0]
        px = (cfg.min_size * cfg.max_size) if cfg.min_size and cfg.max_size else crop
        total += steps * cfg.batch_size * px / crop
        counted.append(f"{t} detection")
    return total, counted


@dataclass(frozen=True)
class Cost:
    pretrain: tuple[int, int] | None  # (steps, batch)
    transfer_images: float | None
    counted: tuple[str, ...]


def cost(scale_name: str) -> Cost:
    scale = scales.get(scale_name)
    t, counted = transfer_work(scale)
    return Cost(pretrain_work(scale), t, tuple(counted))


def gpu_hours(job: Job, c: Cost, r: Rate, gpus: int) -> float | None:
    """Projected GPU-hours of one job: its wall seconds x gpus / 3600, the wall seconds being
    its pre-training images over `gpus` x the one-GPU rate (DDP assumed to scale linearly) plus
    its transfers' images at the one-GPU rate (rank 0 alone; the others wait); transfers of
    unknown size count 0. None when the pre-training's size is unknown here."""
    if c.pretrain is None and job.condition != pipeline.RANDOM:
        return None
    pre = 0 if job.condition == pipeline.RANDOM else c.pretrain[0] * c.pretrain[1]
    seconds = pre / (r.images_per_s * gpus) + (c.transfer_images or 0.0) / r.images_per_s
    return seconds * gpus / 3600


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
        rec[jid] = {"condition": j.condition, "seed": j.seed, "launcher": launcher,
                    "submitted": now}
    paths.atomic_write_json(folder(scale_name) / "jobs.json", rec)


def latest(scale_name: str) -> dict[tuple[str, int], tuple[str, dict]]:
    """(condition, seed) -> (job id, record) of its latest submission."""
    out: dict = {}
    for jid, r in sorted(_record(scale_name).items(), key=lambda kv: kv[1]["submitted"]):
        out[(r["condition"], r["seed"])] = (jid, r)
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


def status(scale_name: str, claim_ids: Sequence[str] | None = None) -> list[list[str]]:
    """One row per job: condition, seed, state (done, not submitted, running / pending /
    submitted, failed, finished), job id, reason."""
    found = jobs(scale_name, claim_ids)
    ok, why = states(found)
    subs = latest(scale_name)
    rows = []
    for j in found:
        jid, rec = subs.get((j.condition, j.seed), ("", {}))
        if ok[j]:
            state, reason = DONE, ""
        elif not jid:
            state, reason = "not submitted", ""
        else:
            state, reason = job_state(scale_name, jid, rec)
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
        jid, rec = subs.get((j.condition, j.seed), ("", {}))
        if jid:
            state = job_state(scale_name, jid, rec)[0]
            if state not in ("failed", "finished"):
                flying[j] = f"{state} (job {jid})"
    return [j for j in found if not ok[j] and j not in flying], flying


def plan(scale_name: str, launch: Launch, claim_ids: Sequence[str] | None = None,
         images_per_s: float | None = None) -> str:
    """The dry run: every job with its state and projected GPU-hours, their total, where the
    throughput comes from, and (Slurm) the sbatch file that would be submitted."""
    found = jobs(scale_name, claim_ids)
    ok, why = states(found)
    todo, flying = to_submit(scale_name, found, ok)
    r, c = rate(scale_name, images_per_s), cost(scale_name)
    g = launch.gpus_per_job
    hours = {j: gpu_hours(j, c, r, g) for j in found}
    rows, total, left = [], 0.0, 0.0
    for j in found:
        h = hours[j]
        state = DONE if ok[j] else flying.get(j, TO_SUBMIT)
        pre = ("-" if j.condition == pipeline.RANDOM else
               f"{c.pretrain[0]:,} x {c.pretrain[1]}" if c.pretrain else "?")
        rows.append([j.condition, j.seed, state, pre,
                     "?" if h is None else f"{h:,.2f}"])
        total += h or 0.0
        left += (h or 0.0) if j in todo else 0.0
    unknown = any(h is None for h in hours.values())
    out = [f"itl grid, scale {scale_name}: {len(found)} jobs (condition x seed, each followed "
           f"by its transfers), {sum(bool(ok[j]) for j in found)} done, {len(flying)} in flight, "
           f"{len(todo)} to submit; launcher {launch.launcher}, {g} GPU(s) per job.",
           tabulate(rows, ["condition", "seed", "state", "pre-training steps x batch",
                           "GPU-hours"], tablefmt="github")]
    out.append(f"GPU-hours: {total:,.1f} for the whole grid, {left:,.1f} for the jobs to submit"
               + (" (jobs marked ? not counted: their data is not here to size them)"
                  if unknown else "") + ".")
    out.append(f"Throughput: {r.source}. A job's GPU-hours = its seconds x {g} GPU(s) / 3600; "
               "its seconds = pre-training images / (GPUs x the one-GPU rate, DDP assumed "
               "linear) + its transfers' images / the one-GPU rate (rank 0 alone). Transfers "
               "are an estimate at the pre-training rate: "
               + (f"{', '.join(c.counted)}, {c.transfer_images:,.0f} crop-sized images a job"
                  if c.transfer_images is not None else
                  f"NOT counted (the size of {c.counted[0]} is not known without its data)")
               + "; probes (forward passes only) are not counted.")
    if why:
        out.append(f"Note: {why}.")
    if launch.launcher == "slurm":
        out.append(f"sbatch file of the array submitit would submit ({max(1, len(todo))} jobs; "
                   f"requeued on time-out up to {launch.max_timeouts} times):\n\n"
                   + sbatch_script(launch, scale_name, max(1, len(todo))))
    return "\n".join(out)


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


def submit(scale_name: str, launch: Launch, claim_ids: Sequence[str] | None = None,
           echo=print) -> list[tuple[Job, str]]:
    """Submit every job not done nor in flight. Slurm: one job array, then return; local:
    `launch.parallel` jobs at once (each on its own GPUs where there are any), until all have
    ended. Returns (job, job id) of each submission; the record is ITL_RUNS/grid/<scale>/."""
    found = jobs(scale_name, claim_ids)
    ok, why = states(found)
    if why:
        echo(f"itl grid: {why}")
    todo, flying = to_submit(scale_name, found, ok)
    for j, s in flying.items():
        echo(f"{j}: not submitted again, {s}")
    if not todo:
        echo(f"itl grid: nothing to submit ({sum(bool(v) for v in ok.values())} of {len(found)} "
             "jobs done)")
        return []
    paths.ensure_writable(folder(scale_name))
    env = carried_env()
    ex = executor(scale_name, launch)
    if launch.launcher == "slurm":
        with ex.batch():
            futures = [ex.submit(Task(j, env, launch.gpus_per_job)) for j in todo]
        out = [(j, f.job_id) for j, f in zip(todo, futures)]
        _note(scale_name, out, launch.launcher)
        echo(f"itl grid: submitted {len(out)} jobs as array {out[0][1].split('_')[0]}; "
             f"`itl grid --scale {scale_name} --status` follows them")
        return out
    return _run_local(scale_name, launch, ex, todo, env, echo)


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
