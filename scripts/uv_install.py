"""Install a hashed lock with uv, from the indexes pip is configured with.

    python scripts/uv_install.py requirements.lock      (run by scripts/install.sh)

uv unpacks and byte-compiles the wheels on all cores, where pip does it on one: on 2 cores the
lock installs in about half of pip's time (README, Quick start). Byte-compiling matters: with
PYTHONDONTWRITEBYTECODE set, a module left uncompiled is compiled again, in memory, by every
process that imports it. uv reads no pip configuration, so `pip config list` (pip.conf files and
PIP_* variables) is handed on: a mirror or a local index serves both installers alike. Every file
is pinned by its sha256, so taking each package from whichever index has it (pip's own behaviour,
uv's `unsafe-best-match`) cannot let a different file in.
"""
import os
import shlex
import subprocess
import sys

# pip's scopes, lowest precedence first: the environment (PIP_*) overrides the files
SCOPES = ("global", "install", ":env:")


def uv_options(pip_config: str) -> tuple[list[str], dict[str, str]]:
    """uv arguments and environment for the settings in `pip config list`'s output."""
    settings: dict[str, dict[str, str]] = {}
    for line in pip_config.splitlines():
        key, sep, value = line.partition("=")
        scope, _, name = key.rpartition(".")
        if sep and scope in SCOPES:
            settings.setdefault(name, {})[scope] = " ".join(shlex.split(value))

    def last(name: str) -> str | None:  # a single-valued setting: the highest scope wins
        values = settings.get(name, {})
        return next((values[s] for s in reversed(SCOPES) if s in values), None)

    def every(name: str) -> list[str]:  # a list setting: pip takes the one from the highest
        value = last(name)               # scope, its items separated by whitespace
        return value.split() if value else []

    args = ["--index-strategy", "unsafe-best-match"]
    if last("index-url"):
        args += ["--default-index", last("index-url")]
    for flag, name in (("--extra-index-url", "extra-index-url"), ("--find-links", "find-links"),
                       ("--allow-insecure-host", "trusted-host")):
        for value in every(name):
            args += [flag, value]
    env = {"SSL_CERT_FILE": last("cert")} if last("cert") else {}
    return args, env


def main(lock: str) -> int:
    config = subprocess.run([sys.executable, "-m", "pip", "config", "list"], check=True,
                            capture_output=True, text=True).stdout
    args, env = uv_options(config)
    # --no-cache: a fresh machine or image gains nothing from a second, unpacked copy (5.8 GB)
    return subprocess.run([sys.executable, "-m", "uv", "pip", "install", "--python",
                           sys.executable, "--quiet", "--no-cache", "--require-hashes",
                           "--no-deps", "--compile-bytecode", *args, "-r", lock],
                          env={**env, **os.environ}).returncode


if __name__ == "__main__":
    raise SystemExit(main(*sys.argv[1:]))
