"""`itl grid`: the job list of a scale, skipping what is done, the dry run's table and GPU-hours,
the status of submitted jobs, the CLI's errors, and a preempted job's exact resume."""
import json
import os
import pickle
import re
import signal
import time
from pathlib import Path

import pytest
import torch

from itl import claims, cli, data, grid, pipeline, runs, scales


def test_jobs_are_every_pretraining_and_seed_once_with_every_claims_probes():
    scale = scales.get("smoke")
    found = grid.jobs(scales.get("smoke"))
    conds = list(dict.fromkeys(c for claim in claims.CLAIMS.values()
                               for c in claim.conditions(scale)))
    # one run under two names, so one job, named as its runs name it, where it first appears
    same = {"images-per-class=1000": claims.FULL, "budget=1000x500": "images-per-class=500"}
    merged = list(dict.fromkeys(same.get(c, c) for c in conds))
    assert [(j.condition, j.seed) for j in found] == \
        [(c, s) for c in merged + [pipeline.RANDOM] for s in scale.seeds]
    by = {(j.condition, j.seed): j for j in found}
    assert by[(claims.FULL, 0)].aliases == ("images-per-class=1000",)
    assert by[("images-per-class=500", 0)].aliases == ("budget=1000x500",)
    assert all(j.seeds == (j.seed,) for j in found)  # smoke: each seed its own pre-training
    name = {a: j.condition for j in found for a in (j.condition,) + j.aliases}
    for claim in claims.CLAIMS.values():  # each job computes what every claim asks of it
        for c in claim.conditions(scale) + (pipeline.RANDOM,):
            assert set(claim.probes(scale)) <= set(by[(name[c], 0)].probes), (claim.id, c)
            assert claim.id in by[(name[c], 0)].claims
    assert len(by[(claims.FULL, 0)].claims) > 1  # shared: one job, not one per claim
    only = grid.jobs(scales.get("smoke"), grid.select("section4"))
    assert {j.condition for j in only} | {a for j in only for a in j.aliases} == set(
        claims.SECTION4.conditions(scale)) | {pipeline.RANDOM}
    assert grid.select("section5") == tuple(c for c in claims.CLAIMS if "section5" in c)


def test_a_job_calls_the_pipeline_as_the_experiments_do(monkeypatch):
    """The job's one call: pipeline.condition with compute=True and the union of the probes,
    under the submitting command's ITL_* variables."""
    calls = []
    monkeypatch.setattr(pipeline, "condition", lambda *a, **k: calls.append((a, k)) or {"x": 1})
    job = grid.jobs(scales.get("smoke"))[0]
    env = {"ITL_RUNS": "/somewhere/runs"}  # conftest restores it
    assert grid.Task(job, env)() == {job.seed: {"x": 1}}
    assert os.environ["ITL_RUNS"] == "/somewhere/runs"
    assert calls == [((scales.get("smoke"), job.condition, job.seed),
                      {"compute": True, "probes": job.probes})]
    again = grid.Task(job, env).checkpoint()  # what submitit requeues: the same job
    assert again.function.job == job and again.function.env == env and not again.args
    # where the seeds replicate only the fine-tunings, one job runs every seed's transfers
    calls.clear()
    job = grid.Job("paper", claims.FULL, 0, replicates=(0, 1, 2))
    assert grid.Task(job, env)() == {0: {"x": 1}, 1: {"x": 1}, 2: {"x": 1}}
    assert [a for a, _ in calls] == [(scales.get("paper"), claims.FULL, s) for s in (0, 1, 2)]


def test_the_grid_and_the_claims_consume_one_pretraining_per_condition(monkeypatch):
    """The paper scale's layout end to end, the training faked: each job pre-trains its
    condition once (seed 0), fine-tunes it (and detects) with every seed and probes it once;
    the claims, given the jobs' results by seed and condition (aliases too, as the reports
    show them), judge fine-tuned statistics on 3 values and probe-only ones on 1."""
    pre, moves = [], []

    def pretrain(scale, subset, seed, compute=True):
        pre.append((subset, seed))
        ipc = {"images-per-class=500": 50.0, "images-per-class=250": 45.0,
               "images-per-class=125": 40.0, "images-per-class=50": 30.0}
        return {"source_top1": ipc.get(subset, 57.0), "classes": 1000,
                "run": f"pretrain/{subset}/{seed}"}

    def transfer_one(scale, run, target, method, seed, compute=True, repeat=0):
        moves.append((run, method, seed))
        base = 20.0 if run == pipeline.RANDOM else 40.0 + len(run) % 7
        return {"top1": base + (seed / 10 if method in pipeline.FINE_TUNED else 0.0)}

    monkeypatch.setattr(pipeline, "pretrain", pretrain)
    monkeypatch.setattr(pipeline, "transfer_one", transfer_one)
    scale, results = scales.get("paper"), {}
    for job in grid.jobs(scales.get("paper")):
        got = grid.Task(job, {})()
        assert set(got) == {0, 1, 2}
        for name in (job.condition,) + job.aliases:
            results[name] = got
    assert {s for _, s in pre} == {0} and len(set(pre)) == 18  # one pre-training each
    assert {s for _, m, s in moves if m in pipeline.FINE_TUNED} == {0, 1, 2}
    assert {s for _, m, s in moves if m not in pipeline.FINE_TUNED} == {0}
    for cid, claim in claims.CLAIMS.items():
        values = claim.per_seed(results, scale)
        assert len(values) == (3 if claim.uses_target else 1), cid
        if not claim.uses_target:
            assert claim.verdict(results, scale)[1] == claims.INCONCLUSIVE, cid
    assert claims.halving_cost(results).n == 1


def test_done_jobs_are_not_submitted_and_the_dry_run_says_so(monkeypatch):
    found = grid.jobs(scales.get("smoke"))
    first = found[0]
    monkeypatch.setattr(grid, "_store_empty", lambda: False)
    monkeypatch.setattr(grid, "done", lambda scale, j: j == first)
    ok, why = grid.states(scales.get("smoke"), found)
    todo, flying = grid.to_submit("smoke", found, ok)
    assert first not in todo and len(todo) == len(found) - 1 and not flying and not why
    text = grid.plan(scales.get("smoke"), grid.Launch(), images_per_s=5000)
    row = next(line for line in text.splitlines() if line.startswith(f"| {first.condition} "))
    assert "| done " in row
    assert f"{len(found) - 1} to submit" in text and "given: 5000 img/s" in text

    def no_data(scale, j):
        raise data.DataError("data set(s) imagenet-1k not prepared")
    monkeypatch.setattr(grid, "done", no_data)
    ok, why = grid.states(scales.get("smoke"), found)
    assert set(ok.values()) == {None} and "imagenet-1k not prepared" in why
    assert len(grid.to_submit("smoke", found, ok)[0]) == len(found)


def test_paper_dry_run_without_data(capsys, monkeypatch, tmp_path):
    """The paper's grid is listed, costed and its sbatch file shown on a machine without
    ImageNet; the throughput is the issue's target, marked assumed, until a GPU record exists."""
    assert cli.main(["grid", "--scale", "paper", "--launcher", "slurm", "--partition", "gpu",
                     "--gpus-per-job", "8", "--dry-run"]) == 0
    out = capsys.readouterr().out
    n = len(grid.jobs(scales.get("paper")))
    assert n == 19 and f"{n} jobs" in out and out.count("| to submit ") == n
    assert "assumed (not measured on a GPU yet): 10000 img/s" in out
    assert "| 450,000 x 256 " in out
    for flag in ("#SBATCH --partition=gpu", "#SBATCH --gpus-per-node=8",
                 "#SBATCH --ntasks-per-node=8", f"#SBATCH --array=0-{n - 1}%{n}",
                 "#SBATCH --signal=USR2@300", "submitit.core._submit"):
        assert flag in out, flag
    hours = float(re.search(r"GPU-hours: ([\d,.]+) for the whole grid", out)[1].replace(",", ""))
    # 18 pre-trainings of 450,000 x 256 images at 10,000 img/s: 57.6 GPU-hours; and the
    # transfers, rank 0's alone while the job holds its 8 GPUs
    assert 18 * 450_000 * 256 / 10_000 / 3600 < hours < 3 * 18 * 450_000 * 256 / 10_000 / 3600
    bench = Path(os.environ["ITL_REPORTS"]) / "benchmarks"
    bench.mkdir(parents=True)
    (bench / "throughput-paper-synthetic-cuda.json").write_text(json.dumps(
        {"scale": "paper", "device": "NVIDIA H200", "images_per_s": 5000.0,
         "model": "caffenet"}))
    assert cli.main(["grid", "--scale", "paper", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "measured: 5000 img/s on NVIDIA H200 (synthetic images)" in out
    assert "assumed (not measured" not in out and "#SBATCH" not in out


def _rows(out: str) -> dict[str, list[str]]:
    """The dry run's table: condition -> cells."""
    cells = [[c.strip() for c in line.strip("|").split("|")]
             for line in out.splitlines() if line.startswith("| ")]
    return {r[0]: r for r in cells[1:]}


def test_paper_dry_run_states_epochs_rates_and_probe_and_detection_work(capsys):
    """Per job: its subset's images and epochs under the scale's schedule, and whether its
    GPU-hours rest on measured or assumed rates; under the table, the grid's detection and
    probe work. A CPU benchmark record turns the transfers' assumptions into this CPU's ratios
    and measures the probes' CPU work; a GPU record measures the GPU steps."""
    assert cli.main(["grid", "--scale", "paper", "--dry-run"]) == 0
    out = capsys.readouterr().out
    rows = _rows(out)
    full = rows["full (= images-per-class=1000)"]
    assert full[4] == "1,281,167" and full[5] == "89.9" and full[-1] == "assumed"
    assert rows["images-per-class=50"][4:6] == ["50,000", "2,304.0"]
    assert rows["images-per-class=500 (= budget=1000x500)"][5] == "230.4"
    assert rows["split=random:a"][4].startswith("≈")  # 500 classes of unequal sizes
    assert full[6] == "3 x sun397, 3 x voc2012-action, 3 x voc2007"
    assert "Subsets' schedule: iterations" in out
    assert "Detection: 57 fine-tunings, 3,990,000 steps of 2 images" in out  # 70,000 each
    probes = re.search(r"Probes: ([\d,]+) images through", out)
    assert probes and int(probes[1].replace(",", "")) > 19 * 2 * 19_850  # SUN-CLS's, at least
    assert "k-NN similarity matrix is 239 GiB (float32; transfer.knn forms it in blocks of at " \
        "most 4 GiB)" in out  # 50,000 x 1,281,167 float32
    bench = Path(os.environ["ITL_REPORTS"]) / "benchmarks"
    bench.mkdir(parents=True)
    steps = {"pretrain": {"seconds": 9.0, "cpu_seconds": 1.0, "batch": 10},
             "detect": {"seconds": 9.0, "cpu_seconds": 2.0, "batch": 2},
             "finetune:sun397": {"seconds": 9.0, "cpu_seconds": 5.0, "batch": 50},
             "finetune:voc2012-action": {"seconds": 9.0, "cpu_seconds": 6.0, "batch": 60},
             "features": {"seconds": 9.0, "cpu_seconds": 8.0, "batch": 256},
             "lbfgs": {"seconds": 9.0, "cpu_seconds": 1.0, "batch": 4096, "macs": 1e10}}
    (bench / "transfer-paper-cpu.json").write_text(json.dumps(
        {"scale": "paper", "model": "caffenet", "cpu": "Some CPU", "threads": 1, "steps": steps}))
    assert cli.main(["grid", "--scale", "paper", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "detect: assumed: 20.0 pre-training images of work, as Some CPU measured it" in out
    assert _rows(out)["full (= images-per-class=1000)"][-1] == (
        "measured: probes; assumed: pre-training, fine-tuning, detection")
    assert "hours on one CPU thread, where itl runs them (measured on Some CPU" in out
    (bench / "transfer-paper-cuda.json").write_text(json.dumps(
        {"scale": "paper", "model": "caffenet", "device": "NVIDIA H200",
         "steps": {"detect": {"seconds": 0.05, "cpu_seconds": 0.05, "batch": 2}}}))
    assert cli.main(["grid", "--scale", "paper", "--dry-run"]) == 0
    out = capsys.readouterr().out
    # 57 detection fine-tunings x 70,000 steps x 0.05 s
    assert "Detection: 57 fine-tunings, 3,990,000 steps of 2 images; 55.4 GPU-hours at 0.050 s " \
           "a step (measured on NVIDIA H200" in out


def test_the_dry_run_takes_the_seeds_and_schedule_chosen(capsys):
    assert cli.main(["grid", "--scale", "paper", "--dry-run", "--seeds", "pre-training",
                     "--schedule", "epochs"]) == 0
    out = capsys.readouterr().out
    assert "57 jobs" in out and "each seed a pre-training of its own (0, 1, 2)" in out
    assert "Subsets' schedule: epochs" in out
    row = _rows(out)["images-per-class=50"]  # 450,000 x 50,000 / 1,281,167 steps: 89.9 epochs
    assert row[3:6] == ["17,562 x 256", "50,000", "89.9"]
    assert _rows(out)["full (= images-per-class=1000)"][3] == "450,000 x 256"
    assert "ITL_SEEDS" not in os.environ and "ITL_SCHEDULE" not in os.environ  # not left set


def _fake_submission(scale: str, jid: str, job: grid.Job, launcher: str) -> Path:
    rec = grid.folder(scale) / "jobs.json"
    rec.parent.mkdir(parents=True, exist_ok=True)
    old = json.loads(rec.read_text()) if rec.exists() else {}
    old[jid] = {"condition": job.condition, "seed": job.seed, "launcher": launcher,
                "submitted": "2026-01-01T00:00:00"}  # as records were before "seeds"
    if job.replicates:
        old[jid]["seeds"] = list(job.seeds)
    rec.write_text(json.dumps(old))
    return grid.folder(scale) / "submitit" / "%j"


def test_a_submission_in_flight_is_the_job_with_its_seeds():
    """A paper job (seed 0's pre-training, fine-tuned with seeds 0, 1, 2) is not the job of
    seed 0 alone submitted under ITL_SEEDS=pre-training: that one in flight leaves it to
    submit; its own submission in flight does not."""
    job = grid.jobs(scales.get("paper"))[0]
    alone = grid.Job("paper", job.condition, 0, job.probes, job.claims)
    ok = {job: False}
    _fake_submission("paper", str(os.getpid()), alone, "local")  # a live process: running
    assert grid.to_submit("paper", [job], ok) == ([job], {})
    _fake_submission("paper", str(os.getppid()), job, "local")
    assert grid.to_submit("paper", [job], ok) == ([], {job: f"running (job {os.getppid()})"})


def test_status_names_failed_jobs_and_why(capsys):
    found = grid.jobs(scales.get("smoke"))
    a, b, c = found[:3]
    from submitit.core.utils import JobPaths
    sub = _fake_submission("smoke", "4242_0", a, "slurm")
    failed = JobPaths(sub, "4242_0", 0)
    failed.folder.mkdir(parents=True)
    with failed.result_pickle.open("wb") as fh:  # submitit's error record
        pickle.dump(("error", "Traceback (most recent call last):\n  ...\n"
                              "torch.OutOfMemoryError: CUDA out of memory.\n"), fh)
    _fake_submission("smoke", "999999999", b, "local")  # no such process, no result
    killed = JobPaths(sub, "999999999", 0)
    killed.folder.mkdir(parents=True)
    killed.stderr.write_text("step 3\nKilled by the OOM killer\n")
    assert cli.main(["grid", "--scale", "smoke", "--status"]) == 0
    cells = [[c.strip() for c in line.strip("|").split("|")]
             for line in capsys.readouterr().out.splitlines() if line.startswith("| ")]
    row = {x: " | ".join(next(r for r in cells if r[:2] == [x.condition, str(x.seed)]))
           for x in (a, b, c)}
    assert "failed" in row[a] and "CUDA out of memory" in row[a] and "4242_0" in row[a]
    assert "failed" in row[b] and "Killed by the OOM killer" in row[b]
    assert "not submitted" in row[c]
    assert len(grid.status(scales.get("smoke"))) == len(found)
    # a failed job is submitted again; one without sacct to ask about it is left alone
    ok = {j: False for j in found}
    todo, flying = grid.to_submit("smoke", found, ok)
    assert a in todo and b in todo
    failed.result_pickle.unlink()
    todo, flying = grid.to_submit("smoke", found, ok)
    assert a not in todo and "job 4242_0" in flying[a]


@pytest.mark.parametrize("args,message", [
    (["--scale", "huge", "--dry-run"], "unknown scale 'huge'"),
    (["--launcher", "slurm", "--dry-run"], "--launcher slurm needs --partition"),
    (["--partition", "gpu", "--dry-run"], "--partition is for --launcher slurm only"),
    (["-k", "section9", "--dry-run"], "-k 'section9' selects no claim"),
])
def test_bad_grid_options_give_one_clear_error(args, message, capsys):
    assert cli.main(["grid", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("itl: error: ") and message in err and len(err.splitlines()) == 1


@pytest.mark.parametrize("args,message", [
    (["--launcher", "pbs"], "invalid choice: 'pbs'"),
    (["--gpus-per-job", "0"], "'0' is not a number of GPUs"),
    (["--images-per-second", "-3"], "'-3' is not a throughput"),
    (["--images-per-second", "inf"], "'inf' is not a throughput"),
    (["--images-per-second", "nan"], "'nan' is not a throughput"),
    (["--seeds", "both"], "invalid choice: 'both'"),
    (["--schedule", "weeks"], "invalid choice: 'weeks'"),
    (["--dry-run", "--status"], "not allowed with argument"),
])
def test_bad_grid_arguments_give_one_clear_error(args, message, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["grid", *args])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.startswith("itl: error: ") and message in err


def test_slurm_submission_needs_slurm(capsys):
    assert cli.main(["grid", "--scale", "smoke", "--launcher", "slurm", "--partition", "p",
                     "-k", "section4"]) == 2
    assert "are you indeed on a slurm cluster" in capsys.readouterr().err


def test_lock_kind_is_chosen_by_itl_lock(monkeypatch, tmp_path):
    from filelock import FileLock, SoftFileLock
    assert isinstance(runs.lock(tmp_path / "a.lock"), FileLock)
    monkeypatch.setenv("ITL_LOCK", "soft")
    assert isinstance(runs.lock(tmp_path / "a.lock"), SoftFileLock)
    monkeypatch.setenv("ITL_LOCK", "nfs")
    with pytest.raises(ValueError, match="ITL_LOCK='nfs' is neither flock nor soft"):
        runs.lock(tmp_path / "a.lock")


def _children(pid: int) -> list[int]:
    f = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(x) for x in f.read_text().split()] if f.exists() else []


def _wait(what, timeout: float = 3600.0):
    t = time.time()
    while time.time() - t < timeout:
        got = what()
        if got:
            return got
        time.sleep(0.05)
    raise TimeoutError(what)


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads /proc (Linux)")
def test_a_preempted_job_requeues_itself_and_resumes_exactly(tmp_path, monkeypatch):
    """Through submitit's local executor, which requeues as Slurm does: after the job's first
    epoch checkpoint its task gets SIGUSR2 (Slurm's preemption / time-limit signal for
    submitit); submitit calls Task.checkpoint(), the task exits with submitit's requeue code and
    the local controller starts the job again, which resumes the pre-training from its
    checkpoint. Weights, per-epoch log and source top-1 equal an uninterrupted run's (trained
    here, in another store); each epoch ran once."""
    store = tmp_path / "grid-runs"
    monkeypatch.setenv("ITL_RUNS", str(store))
    job = grid.Job("smoke", claims.FULL, 0)
    ex = grid.executor("smoke", grid.Launch(timeout_min=600))
    f = ex.submit(grid.Task(job, grid.carried_env()))
    log = _wait(lambda: next((p / "log.jsonl" for p in (store / "pretrain").glob("*")
                              if (p / "log.jsonl").exists()), None)
                if (store / "pretrain").is_dir() else None)
    epochs = len(log.read_text().splitlines())
    task = _wait(lambda: _children(f._process.pid))[0]
    os.kill(task, signal.SIGUSR2)
    result = f.result()  # waits for the requeued attempt
    total = scales.get("smoke").pretrain.epochs
    assert epochs < total, "the run finished before it was interrupted: nothing tested"
    out = f.stdout() + f.stderr()
    assert "Requeued job" in out and "this job is preempted" in out
    for e in range(1, total + 1):
        assert out.count(f"seed 0 epoch {e:3d} step") == 1, (e, out)
    got_dir = log.parent
    monkeypatch.setenv("ITL_RUNS", str(tmp_path / "reference"))
    ref = pipeline.pretrain(scales.get("smoke"), claims.FULL, 0)
    ref_dir = tmp_path / "reference" / ref["run"]
    assert result[0]["source_top1"] == ref["source_top1"]
    assert result[0]["pretrain_run"] == ref["run"] and got_dir.name == ref_dir.name
    a, b = (torch.load(d / "checkpoint.pt", weights_only=False)["model"]
            for d in (got_dir, ref_dir))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    timeless = [[{k: v for k, v in json.loads(line).items()
                  if k not in ("seconds", "images_per_s")} for line in
                 (d / "log.jsonl").read_text().splitlines()] for d in (got_dir, ref_dir)]
    assert timeless[0] == timeless[1]
    assert json.loads((got_dir / "metrics.json").read_text())["steps"] == ref["steps"]
