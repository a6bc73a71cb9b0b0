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

from itl import cli, paths, pipeline, report, runs
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


# ---------------------------------------------------------------- N6: what the digest promises

def test_an_edited_number_is_refused_unless_its_digest_is_recomputed(fake_training, capsys,
                                                                     monkeypatch, tmp_path):
    """The README's "What itl guarantees": the digest catches accidents, not edits."""
    records = _committed(capsys) / "runs"
    f = _transfer_of_section6(records) / "metrics.json"
    m = json.loads(f.read_text())
    f.write_text(json.dumps({**m, "top1": 99.9}))  # edited by hand, digest left as it was
    with pytest.warns(RuntimeWarning, match=re.escape(f"{f.parent}: metrics.json was edited")):
        s6 = next(s for s in report.sections_from_records("smoke", records)
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
