import os
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[2] / "shared"
REFERENCE = SHARED / "reference" / "wmigftl"

FOLDERS = ("ITL_DATA", "ITL_RUNS", "ITL_REPORTS")
# the caller's folders, as paths.* would read them (unset: the defaults ./data, ./runs,
# ./reports), taken before any fixture replaces them
CALLER = {var: Path(os.environ.get(var) or var.removeprefix("ITL_").lower()).expanduser()
          for var in FOLDERS}


def snapshot(folder: Path) -> dict[str, int]:
    """The modification times of `folder` and of each folder and file directly in it ({} when
    there is none): a file written, replaced or removed there, or in one of its data sets'
    folders, changes one of them (caches are renamed into place), without walking data sets
    of millions of files."""
    if not folder.is_dir():
        return {}
    entries = [folder, *folder.iterdir()]
    return {p.relative_to(folder).as_posix(): p.stat().st_mtime_ns for p in entries}


@pytest.fixture(scope="session", autouse=True)
def private_folders(tmp_path_factory):
    """ITL_DATA, ITL_RUNS and ITL_REPORTS private to the session, set before any fixture runs
    (a module-scoped fixture runs before the per-test `isolated_store`, so it would otherwise
    build its smoke caches in the caller's ITL_DATA); at the end, the caller's ITL_DATA must
    be as it was."""
    before = snapshot(CALLER["ITL_DATA"])
    base = tmp_path_factory.getbasetemp()
    with pytest.MonkeyPatch.context() as mp:
        for var in FOLDERS:
            mp.setenv(var, str(base / f"session-{var.removeprefix('ITL_').lower()}"))
        mp.setenv("ITL_DATA", str(base / "data"))  # the one isolated_store gives every test
        yield
    assert snapshot(CALLER["ITL_DATA"]) == before, \
        f"the tests wrote to the caller's ITL_DATA {CALLER['ITL_DATA']}"


@pytest.fixture(autouse=True)
def isolated_store(tmp_path, monkeypatch, tmp_path_factory):
    """Every test gets its own run store and reports folder; generated data is shared."""
    monkeypatch.setenv("ITL_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("ITL_REPORTS", str(tmp_path / "reports"))
    monkeypatch.setenv("ITL_DATA", str(tmp_path_factory.getbasetemp() / "data"))
    yield


@pytest.fixture
def reference():
    if not REFERENCE.is_dir():
        pytest.skip(f"the authors' label sets are not at {REFERENCE} (../shared is absent)")
    return REFERENCE
