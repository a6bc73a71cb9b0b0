"""The container installs exactly what CI installs: the same script, the same hashed lock."""
import re
import sys
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
    assert "--require-hashes" in install and "-r scripts/uv.lock" in install
    assert "scripts/uv_install.py requirements.lock" in install
    assert '"--require-hashes"' in (ROOT / "scripts" / "uv_install.py").read_text()


def locked(path: Path) -> list[tuple[str, str, str]]:
    """(name, version, sha256) per entry; fails on a line without its hash."""
    text = path.read_text()
    entries = re.findall(r"^(\S+)==(\S+) \\\n    --hash=sha256:([0-9a-f]{64})$", text, flags=re.M)
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert len(lines) == 2 * len(entries), f"a line of {path.name} without a hash"
    return entries


def test_lock_pins_every_package_with_a_sha256():
    entries = locked(ROOT / "requirements.lock")
    names = {n.lower() for n, _, _ in entries}
    assert {"torch", "torchvision", "numpy", "dvc", "pytest", "pytest-xdist"} <= names
    pinned = dict((n.lower(), v) for n, v, _ in entries)
    assert pinned["torch"] == "2.14.1" and pinned["torchvision"] == "0.29.1"


def test_the_installer_is_locked_as_lock_py_names_it():
    sys.path.insert(0, str(ROOT / "scripts"))
    import lock
    [(name, version, _)] = locked(ROOT / "scripts" / "uv.lock")
    assert f"{name}=={version}" == lock.UV


def test_uv_gets_the_indexes_pip_is_configured_with():
    sys.path.insert(0, str(ROOT / "scripts"))
    from uv_install import uv_options
    # `pip config list` as this machine prints it: files, then PIP_* variables (":env:")
    config = """:env:.cert='/etc/ssl/certs/ca-certificates.crt'
:env:.default-timeout='180'
:env:.find-links='/opt/wheels'
global.cert='/etc/ssl/other.crt'
global.extra-index-url='file:///opt/pypi/simple file:///opt/pypi-more/simple'
global.find-links='/opt/old-wheels'
install.index-url='https://mirror.example/simple'
global.index-url='https://pypi.org/simple'
global.trusted-host='mirror.example'
"""
    args, env = uv_options(config)
    assert args == ["--index-strategy", "unsafe-best-match",
                    "--default-index", "https://mirror.example/simple",
                    "--extra-index-url", "file:///opt/pypi/simple",
                    "--extra-index-url", "file:///opt/pypi-more/simple",
                    "--find-links", "/opt/wheels",  # PIP_FIND_LINKS overrides pip.conf's
                    "--allow-insecure-host", "mirror.example"]
    assert env == {"SSL_CERT_FILE": "/etc/ssl/certs/ca-certificates.crt"}
    assert uv_options("") == (["--index-strategy", "unsafe-best-match"], {})


def test_container_runs_as_non_root_with_data_and_runs_volumes():
    assert re.search(r"^USER\s+(?!root|0\b)", DOCKERFILE, flags=re.M)
    assert "ITL_DATA=/data" in DOCKERFILE and "ITL_RUNS=/runs" in DOCKERFILE
    assert re.search(r'^VOLUME \["/data", "/runs"\]', DOCKERFILE, flags=re.M)
    assert (ROOT / ".dockerignore").exists()
