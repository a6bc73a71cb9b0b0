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


def test_jobs_are_every_condition_and_seed_once_with_every_claims_probes():
    scale = scales.get("smoke")
    found = grid.jobs("smoke")
    conds = list(dict.fromkeys(c for claim in claims.CLAIMS.values()
                               for c in claim.conditions(scale)))
    assert [(j.condition, j.seed) for j in found] == \
        [(c, s) for c in conds + [pipeline.RANDOM] for s in scale.seeds]
    by = {(j.condition, j.seed): j for j in found}
    for claim in claims.CLAIMS.values():  # each job computes what every claim asks of it
        for c in claim.conditions(scale) + (pipeline.RANDOM,):
            assert set(claim.probes(scale)) <= set(by[(c, 0)].probes), (claim.id, c)
            assert claim.id in by[(c, 0)].claims
    assert len(by[(claims.FULL, 0)].claims) > 1  # shared: one job, not one per claim
    only = grid.jobs("smoke", grid.select("section4"))
    assert {j.condition for j in only} == set(claims.SECTION4.conditions(scale)) | {
        pipeline.RANDOM}
    assert grid.select("section5") == tuple(c for c in claims.CLAIMS if "section5" in c)


def test_a_job_calls_the_pipeline_as_the_experiments_do(monkeypatch):
    """The job's one call: pipeline.condition with compute=True and the union of the probes,
    under the submitting command's ITL_* variables."""
    calls = []
    monkeypatch.setattr(pipeline, "condition", lambda *a, **k: calls.append((a, k)) or {"x": 1})
    job = grid.jobs("smoke")[0]
    env = {"ITL_RUNS": "/somewhere/runs"}  # conftest restores it
    assert grid.Task(job, env)() == {"x": 1}
    assert os.environ["ITL_RUNS"] == "/somewhere/runs"
    assert calls == [(("smoke", job.condition, job.seed),
                      {"compute": True, "probes": job.probes})]
    again = grid.Task(job, env).checkpoint()  # what submitit requeues: the same job
    assert again.function.job == job and again.function.env == env and not again.args


def test_done_jobs_are_not_submitted_and_the_dry_run_says_so(monkeypatch):
    found = grid.jobs("smoke")
    first = found[0]
    monkeypatch.setattr(grid, "_store_empty", lambda: False)
    monkeypatch.setattr(grid, "done", lambda j: j == first)
    ok, why = grid.states(found)
    todo, flying = grid.to_submit("smoke", found, ok)
    assert first not in todo and len(todo) == len(found) - 1 and not flying and not why
    text = grid.plan("smoke", grid.Launch(), images_per_s=5000)
    row = next(line for line in text.splitlines() if line.startswith(f"| {first.condition} "))
    assert "| done " in row
    assert f"{len(found) - 1} to submit" in text and "given: 5000 img/s" in text

    def no_data(j):
        raise data.DataError("data set(s) imagenet-1k not prepared")
    monkeypatch.setattr(grid, "done", no_data)
    ok, why = grid.states(found)
    assert set(ok.values()) == {None} and "imagenet-1k not prepared" in why
    assert len(grid.to_submit("smoke", found, ok)[0]) == len(found)


def test_paper_dry_run_without_data(capsys, monkeypatch, tmp_path):
    """The paper's grid is listed, costed and its sbatch file shown on a machine without
    ImageNet; the throughput is the issue's target, marked assumed, until a GPU record exists."""
    assert cli.main(["grid", "--scale", "paper", "--launcher", "slurm", "--partition", "gpu",
                     "--gpus-per-job", "8", "--dry-run"]) == 0
    out = capsys.readouterr().out
    n = len(grid.jobs("paper"))
    assert n == 21 * 3 and f"{n} jobs" in out and out.count("| to submit ") == n
    assert "assumed (not measured on a GPU yet): 10000 img/s" in out
    assert "| 450,000 x 256 " in out
    for flag in ("#SBATCH --partition=gpu", "#SBATCH --gpus-per-node=8",
                 "#SBATCH --ntasks-per-node=8", f"#SBATCH --array=0-{n - 1}%{n}",
                 "#SBATCH --signal=USR2@300", "submitit.core._submit"):
        assert flag in out, flag
    hours = float(re.search(r"GPU-hours: ([\d,.]+) for the whole grid", out)[1].replace(",", ""))
    # 60 pre-trainings of 450,000 x 256 images at 10,000 img/s: 192 GPU-hours; and transfers
    assert 60 * 450_000 * 256 / 10_000 / 3600 < hours < 2 * 60 * 450_000 * 256 / 10_000 / 3600
    bench = Path(os.environ["ITL_REPORTS"]) / "benchmarks"
    bench.mkdir(parents=True)
    (bench / "throughput-paper-synthetic-cuda.json").write_text(json.dumps(
        {"scale": "paper", "device": "NVIDIA H200", "images_per_s": 5000.0,
         "model": "caffenet"}))
    assert cli.main(["grid", "--scale", "paper", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "measured: 5000 img/s on NVIDIA H200 (synthetic images)" in out
    assert "assumed (not measured" not in out and "#SBATCH" not in out


def _fake_submission(scale: str, jid: str, job: grid.Job, launcher: str) -> Path:
    rec = grid.folder(scale) / "jobs.json"
    rec.parent.mkdir(parents=True, exist_ok=True)
    old = json.loads(rec.read_text()) if rec.exists() else {}
    old[jid] = {"condition": job.condition, "seed": job.seed, "launcher": launcher,
                "submitted": "2026-01-01T00:00:00"}
    rec.write_text(json.dumps(old))
    return grid.folder(scale) / "submitit" / "%j"


def test_status_names_failed_jobs_and_why(capsys):
    found = grid.jobs("smoke")
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
    assert len(grid.status("smoke")) == len(found)
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
    ref = pipeline.pretrain("smoke", claims.FULL, 0)
    ref_dir = tmp_path / "reference" / ref["run"]
    assert result["source_top1"] == ref["source_top1"]
    assert result["pretrain_run"] == ref["run"] and got_dir.name == ref_dir.name
    a, b = (torch.load(d / "checkpoint.pt", weights_only=False)["model"]
            for d in (got_dir, ref_dir))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    timeless = [[{k: v for k, v in json.loads(line).items()
                  if k not in ("seconds", "images_per_s")} for line in
                 (d / "log.jsonl").read_text().splitlines()] for d in (got_dir, ref_dir)]
    assert timeless[0] == timeless[1]
    assert json.loads((got_dir / "metrics.json").read_text())["steps"] == ref["steps"]
