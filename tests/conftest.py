from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[2] / "shared"
REFERENCE = SHARED / "reference" / "wmigftl"


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
