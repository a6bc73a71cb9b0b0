"""The reliability suite (issue 23, "nothing silently wrong, nothing silently lost"): each case a
hostile-user trial found, tried again as it was written. Each ends in a one-line error naming
the file and the fix, or is handled correctly; none exits 0 with a wrong or missing result."""
import errno
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import filelock
import pytest

from itl import cli, paths, pipeline, report, runs, scales
from test_report import _train, fake_training  # noqa: F401  (a fixture)

ROOT = Path(__file__).resolve().parents[1]


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _one_line_error(capsys, *argv: str) -> str:
    code, _, err = _cli(capsys, *argv)
    assert code == 2 and len(err.splitlines()) == 1 and err.startswith("itl: error: "), err
    return err


def _committed(capsys) -> Path:
    """reports/smoke/ with the run records of section 6 (made-up numbers), as `itl report
    --runs` commits them."""
    _train("section6")
    code, _, err = _cli(capsys, "report", "--scale", "smoke", "--runs")
    assert code == 0, err
    return paths.reports_dir() / "smoke"


def _transfer_of_section6(store: Path) -> Path:
    """A run of the store that section 6's results need: the random init's fine-tuning, seed 0."""
    for f in sorted((store / "transfer").glob("*/config.json")):
        cfg = json.loads(f.read_text())
        if cfg["pretrain"] == pipeline.RANDOM and cfg["seed"] == 0 and cfg["method"] == "finetune":
            return f.parent
    raise AssertionError("no fine-tuning of the random init in the store")


# ---------------------------------------------------------------- N3: committed records kept

def test_report_runs_never_deletes_a_committed_record(fake_training, capsys):
    out = _committed(capsys)
    before = _files(out)
    gone = _transfer_of_section6(paths.runs_dir())
    shutil.rmtree(gone)  # deleted to retrain it, as the run store's message advises

    code, text, err = _cli(capsys, "report", "--scale", "smoke", "--runs")
    assert code == 0, err
    name = f"transfer/{gone.name}"
    kept = [line for line in text.splitlines() if line.startswith("kept ")]
    assert len(kept) == 1 and name in kept[0] and "itl runs import --scale smoke" in kept[0]
    assert (out / "runs" / name / "metrics.json").read_bytes() == before[
        f"runs/{name}/metrics.json"]
    assert "section6: " in text and "from the run records under" in text
    after = _files(out)
    for f in ("section6.md", "section6.json", "metrics/section6.json", "runs/settings.json"):
        assert after[f] == before[f], f  # the section rendered from the kept records
    assert "| section6 " in after["summary.md"].decode()
    assert {f for f in before if f.startswith("runs/")} <= set(after)


def test_a_fresh_store_exports_nothing_away(fake_training, capsys, monkeypatch, tmp_path):
    out = _committed(capsys)
    before = _files(out / "runs")
    monkeypatch.setenv("ITL_RUNS", str(tmp_path / "fresh"))
    code, text, err = _cli(capsys, "report", "--scale", "smoke", "--runs")
    assert code == 0, err
    assert _files(out / "runs") == before
    assert f"kept {sum(1 for k in runs.KINDS for _ in (out / 'runs' / k).iterdir())} " in text


def test_kept_records_of_another_detection_setting_are_refused(fake_training, capsys,
                                                               monkeypatch):
    out = _committed(capsys)
    shutil.rmtree(_transfer_of_section6(paths.runs_dir()))
    before = _files(out)
    monkeypatch.setenv("ITL_DETECTION", "off")
    err = _one_line_error(capsys, "report", "--scale", "smoke", "--runs")
    assert "ITL_DETECTION=on" in err and str(out / "runs" / "settings.json") in err
    assert _files(out) == before


# ---------------------------------------------------------------- N4: the README table

def _readme(tmp_path: Path, table: str) -> Path:
    f = tmp_path / "README.md"
    f.write_text(f"intro\n{report.README_BEGIN}\n{table}\n{report.README_END}\nthe rest\n")
    return f


def test_the_readme_keeps_a_column_whose_reports_are_missing(capsys, monkeypatch, tmp_path):
    """The committed README's table (smoke, small-v2 and small columns) with ITL_REPORTS
    holding only smoke: one line naming the missing columns and their records, the README
    untouched."""
    reports = tmp_path / "reports"
    reports.mkdir()
    (reports / "smoke").symlink_to(ROOT / "reports" / "smoke")
    monkeypatch.setenv("ITL_REPORTS", str(reports))
    readme = tmp_path / "README.md"
    shutil.copy(ROOT / "README.md", readme)
    text = readme.read_text()
    assert "| small-v2 " in text
    err = _one_line_error(capsys, "report", "--readme", str(readme))
    assert str(readme) in err and "column(s) small-v2, small would be dropped" in err
    assert str(reports / "small-v2" / "runs") in err and str(reports / "small" / "runs") in err
    assert "nothing written" in err
    assert readme.read_text() == text

    readme = _readme(tmp_path, report.readme_table())  # a table of what is here: rewritten
    code, _, err = _cli(capsys, "report", "--readme", str(readme))
    assert code == 0 and "| smoke " in readme.read_text(), err


def test_the_readme_keeps_a_verdict_whose_records_are_incomplete(fake_training, capsys,
                                                                  tmp_path):
    _train("section4")
    out = _committed(capsys)  # section 6 too
    readme = _readme(tmp_path, report.readme_table())
    text = readme.read_text()
    assert "| section4: " in text and "| section6: " in text
    shutil.rmtree(paths.runs_dir())
    for f in (out / "runs" / "pretrain").glob("*/config.json"):  # one of section 4's alone
        if json.loads(f.read_text())["subset"] == {"rule": "images-per-class",
                                                        "images_per_class": 50}:
            shutil.rmtree(f.parent)
            break
    else:
        raise AssertionError("no record of images-per-class=50")
    err = _one_line_error(capsys, "report", "--readme", str(readme))
    assert "smoke section4 would become 'not run'" in err and str(out / "runs") in err
    assert readme.read_text() == text


# ---------------------------------------------------------------- N7: a full disk

class _FullDisk:
    """`os` as itl.paths sees it, with the disk full from the `at`-th file written on."""

    def __init__(self, at: int):
        self.at, self.writes = at, 0

    def fsync(self, fd):
        self.writes += 1
        if self.writes >= self.at:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return os.fsync(fd)

    def __getattr__(self, name):
        return getattr(os, name)


def test_a_full_disk_leaves_the_reports_as_they_were_and_names_them(fake_training, capsys,
                                                                   monkeypatch):
    out = _committed(capsys)
    _train("section4")  # so that the next report changes files, and adds some
    before = _files(out)
    shutil.copytree(out, out.with_name("committed"))
    counting = _FullDisk(at=10**9)  # how many files the next `itl report --runs` writes
    with monkeypatch.context() as m:
        m.setattr(paths, "os", counting)
        assert _cli(capsys, "report", "--scale", "smoke", "--runs")[0] == 0
    assert counting.writes > 3
    shutil.rmtree(out)
    out.with_name("committed").rename(out)
    total = counting.writes
    for at in sorted({1, total // 2, total}):
        with monkeypatch.context() as m:
            m.setattr(paths, "os", _FullDisk(at))
            err = _one_line_error(capsys, "report", "--scale", "smoke", "--runs")
        assert str(out) in err and "No space left on device" in err, err
        assert _files(out) == before, at  # nothing half-written: no section without summary
        assert [p.name for p in out.parent.iterdir()] == ["smoke"]  # no staging folder left


def test_a_full_disk_while_copying_the_reports_is_named(fake_training, capsys, monkeypatch):
    out = _committed(capsys)
    before = _files(out)

    def full(src, dst, **kw):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(shutil, "copytree", full)
    err = _one_line_error(capsys, "report", "--scale", "smoke")
    assert str(out) in err and "No space left on device" in err
    assert _files(out) == before and [p.name for p in out.parent.iterdir()] == ["smoke"]



def test_a_full_disk_failing_every_copy_is_one_short_line(fake_training, capsys, monkeypatch):
    """A real copytree on a full disk fails every file and raises one shutil.Error listing them
    all (a 200 KB "line" for the smoke reports): the first is named and the rest counted."""
    out = _committed(capsys)
    before = _files(out)
    real = shutil.copytree

    def full(src, dst):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), dst)

    def copytree(src, dst, symlinks=False, ignore=None, copy_function=None, *rest, **kw):
        return real(src, dst, symlinks, ignore, full, *rest, **kw)  # its recursion too
    monkeypatch.setattr(shutil, "copytree", copytree)
    err = _one_line_error(capsys, "report", "--scale", "smoke")
    assert str(out) in err and "No space left on device" in err and "more" in err, err
    assert len(err) < 1000, len(err)
    assert _files(out) == before and [p.name for p in out.parent.iterdir()] == ["smoke"]

def test_a_writer_killed_during_the_swap_loses_no_report(tmp_path, monkeypatch):
    """Killed between its two renames: the next writer puts the reports back first."""
    root = tmp_path / "reports"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    stage = root / f".smoke.staging-{dead}-x"
    (stage / "old").mkdir(parents=True)
    (stage / "old" / "summary.md").write_text("the committed summary")
    monkeypatch.setenv("ITL_REPORTS", str(root))
    with report.writing("smoke") as out:
        assert (out / "summary.md").read_text() == "the committed summary"
    assert (root / "smoke" / "summary.md").read_text() == "the committed summary"
    assert [p.name for p in root.iterdir()] == ["smoke"]


# ---------------------------------------------------------------- N6: what the digest promises

def test_an_edited_number_is_refused_unless_its_digest_is_recomputed(fake_training, capsys,
                                                                     monkeypatch, tmp_path):
    """The README's "What itl guarantees": the digest catches accidents, not edits."""
    records = _committed(capsys) / "runs"
    f = _transfer_of_section6(records) / "metrics.json"
    m = json.loads(f.read_text())
    f.write_text(json.dumps({**m, "top1": 99.9}))  # edited by hand, digest left as it was
    with pytest.warns(RuntimeWarning, match=re.escape(f"{f.parent}: metrics.json was edited")):
        s6 = next(s for s in report.sections_from_records(scales.get("smoke"), records)
                  if s["claim"].id == "section6")
    assert not report.has_results(s6)  # the edited run is not used
    monkeypatch.setenv("ITL_RUNS", str(tmp_path / "fresh"))
    err = _one_line_error(capsys, "runs", "import", "--scale", "smoke", "--from", str(records))
    assert str(f.parent) in err and "edited" in err and not (tmp_path / "fresh").exists()

    edited = {**m, "top1": 99.9}  # the digest recomputed too: a checksum, not a signature
    f.write_text(json.dumps({**edited, "digest": runs._digest(edited)}))
    assert runs.read_record(f.parent, "transfer")[1]["top1"] == 99.9
    readme = (ROOT / "README.md").read_text()
    assert "catches accidents, not deliberate edits" in readme


# ---------------------------------------------------------------- N9: records of another scale

def test_records_of_another_scale_are_refused(fake_training, capsys, monkeypatch, tmp_path):
    records = _committed(capsys) / "runs"
    monkeypatch.setenv("ITL_RUNS", str(tmp_path / "fresh"))
    err = _one_line_error(capsys, "runs", "import", "--scale", "small", "--from", str(records))
    assert "is of scale smoke, not small" in err and "--scale smoke" in err
    assert not (tmp_path / "fresh").exists()
    code, text, err = _cli(capsys, "runs", "import", "--scale", "smoke", "--from", str(records))
    assert code == 0 and "imported " in text, err



@pytest.mark.parametrize("rate", ["inf", "Infinity", "nan"])
def test_a_throughput_that_is_not_a_finite_number_is_refused(rate, capsys):
    """`itl grid --dry-run --images-per-second inf` printed 0 GPU-hours for every job."""
    with pytest.raises(SystemExit) as e:
        cli.main(["grid", "--dry-run", "--images-per-second", rate])
    err = capsys.readouterr().err
    assert e.value.code == 2 and f"{rate!r} is not a throughput" in err, err
    assert len(err.splitlines()) == 1

# ---------------------------------------------------------------- the soft lock

def test_a_soft_lock_left_by_a_killed_process_here_is_taken_over(monkeypatch, tmp_path):
    """What the README says of ITL_LOCK=soft: a lock of a process killed on this machine does
    not block (filelock records the holder's pid and host)..."""
    monkeypatch.setenv("ITL_LOCK", "soft")
    path = tmp_path / "run.lock"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom itl import runs\n"
         "held = runs.lock(sys.argv[1])\nheld.acquire()\nprint('held', flush=True)\n"
         "time.sleep(300)",
         str(path)], stdout=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert holder.stdout.readline() == "held\n"
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()
    assert path.exists()  # left behind by the killed holder
    lock = runs.lock(path)
    lock.acquire(timeout=30)
    assert lock.is_locked
    lock.release()


@pytest.mark.parametrize("marker", ["4242\nanother-node\n", ""])
def test_a_soft_lock_no_process_here_holds_waits_until_deleted(monkeypatch, tmp_path, marker):
    """...and one a job on another node left (or an empty lock file, as filelock before 3.22
    wrote) waits until it is deleted by hand."""
    monkeypatch.setenv("ITL_LOCK", "soft")
    path = tmp_path / "run.lock"
    path.write_text(marker)
    with pytest.raises(filelock.Timeout):
        runs.lock(path).acquire(timeout=1)
    path.unlink()
    lock = runs.lock(path)
    lock.acquire(timeout=1)
    lock.release()
    readme = " ".join((ROOT / "README.md").read_text().split())
    assert "killed on the same machine is taken over" in readme
    assert "waits until `ITL_RUNS/<kind>/<hash>.lock` is deleted by hand" in readme


# ---------------------------------------------------------------- tests keep to their folders

@pytest.fixture(scope="module")
def data_of_a_module_fixture():
    return paths.data_dir()


def test_module_fixtures_see_the_sessions_private_itl_data(data_of_a_module_fixture,
                                                           tmp_path_factory):
    """A module-scoped fixture runs before the per-test folders are set: it must still see
    the session's private ITL_DATA, never the caller's (tests/test_subsets.py and
    test_transfer.py build smoke caches in theirs)."""
    assert data_of_a_module_fixture == tmp_path_factory.getbasetemp() / "data"


def test_the_session_check_sees_a_cache_written_to_itl_data(tmp_path):
    spec = importlib.util.spec_from_file_location("tests_conftest", Path(__file__).with_name(
        "conftest.py"))
    conftest = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(conftest)
    data = tmp_path / "data"
    assert conftest.snapshot(data) == {}
    (data / "smoke").mkdir(parents=True)
    before = conftest.snapshot(data)
    assert before
    os.utime(data / "smoke", ns=(1, 1))
    before = conftest.snapshot(data)
    (data / "smoke" / "smoke-a-train.pt").write_bytes(b"cache")
    assert conftest.snapshot(data) != before
