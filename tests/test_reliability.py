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
