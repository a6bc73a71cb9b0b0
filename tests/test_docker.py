"""The container installs exactly what CI installs: the same script, the same hashed lock."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = (ROOT / "Dockerfile").read_text()


def test_base_image_is_pinned_to_an_exact_tag():
    froms = re.findall(r"^FROM\s+(\S+)", DOCKERFILE, flags=re.M)
    assert froms, "no FROM line"
    for image in froms:
        name, _, tag = image.split("@")[0].partition(":")
        assert tag and tag != "latest" and re.search(r"\d+\.\d+\.\d+", tag), image


def test_dockerfile_runs_the_ci_install_script_and_lock():
    assert re.search(r"^RUN .*scripts/install\.sh", DOCKERFILE, flags=re.M)
    assert "requirements.lock" in DOCKERFILE
    ci = (ROOT / ".ci" / "run").read_text()
    assert "scripts/install.sh" in ci
    install = (ROOT / "scripts" / "install.sh").read_text()
    assert "--require-hashes" in install and "-r requirements.lock" in install


def test_lock_pins_every_package_with_a_sha256():
    text = (ROOT / "requirements.lock").read_text()
    entries = re.findall(r"^(\S+)==(\S+) \\\n    --hash=sha256:([0-9a-f]{64})$", text, flags=re.M)
    names = {n.lower() for n, _, _ in entries}
    assert {"torch", "torchvision", "numpy", "dvc", "pytest", "pytest-xdist"} <= names
    pinned = dict((n.lower(), v) for n, v, _ in entries)
    assert pinned["torch"] == "2.14.1" and pinned["torchvision"] == "0.29.1"
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert len(lines) == 2 * len(entries), "a lock line without a hash"


def test_container_runs_as_non_root_with_data_and_runs_volumes():
    assert re.search(r"^USER\s+(?!root|0\b)", DOCKERFILE, flags=re.M)
    assert "ITL_DATA=/data" in DOCKERFILE and "ITL_RUNS=/runs" in DOCKERFILE
    assert re.search(r'^VOLUME \["/data", "/runs"\]', DOCKERFILE, flags=re.M)
    assert (ROOT / ".dockerignore").exists()
