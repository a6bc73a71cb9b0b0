"""Checksums of what a data set is prepared from: the sha256 of every shard, read from a
SHA256SUMS file in any format `sha256sum` writes, and the md5 / sha256 of an original archive
(checked against its published md5). Verifying comes before anything is unpacked.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

from itl import paths
from itl.datasets.images import DataError

ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".zip")


def md5_sha256(f: Path) -> tuple[str, str]:
    md5, sha = hashlib.md5(usedforsecurity=False), hashlib.sha256()
    with f.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            md5.update(block)
            sha.update(block)
    return md5.hexdigest(), sha.hexdigest()


_HEX = frozenset("0123456789abcdefABCDEF")
_UNESCAPE = {"\\": "\\", "n": "\n", "r": "\r"}


def _unescape(name: str) -> str | None:
    """sha256sum's escaped file name (its line starts with a backslash): \\\\ is a backslash,
    \\n a newline, \\r a carriage return; None for any other escape."""
    out, i = [], 0
    while i < len(name):
        if name[i] == "\\":
            if i + 1 >= len(name) or name[i + 1] not in _UNESCAPE:
                return None
            out.append(_UNESCAPE[name[i + 1]])
            i += 2
        else:
            out.append(name[i])
            i += 1
    return "".join(out)


def read_sums(sums: Path) -> list[tuple[str, str]]:
    """(sha256, file name) for every line of a SHA256SUMS file, in each format `sha256sum`
    writes: `HASH  name` (text mode), `HASH *name` (binary mode), `SHA256 (name) = HASH`
    (`--tag`), each optionally starting with a backslash that marks an escaped name. Empty lines
    are skipped; any other line is one DataError naming the file and the line."""
    try:
        text = sums.read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"unreadable checksum file {sums}: {e}") from e
    out = []
    for n, line in enumerate(text.split("\n"), 1):
        line = line.removesuffix("\r")
        if not line.strip():
            continue
        escaped = line.startswith("\\")
        body = line[1:] if escaped else line
        digest = name = None
        if body.startswith("SHA256 (") and ") = " in body:
            name, _, digest = body[len("SHA256 ("):].rpartition(") = ")
        elif len(body) > 66 and body[64] == " " and body[65] in " *":
            digest, name = body[:64], body[66:]
        if escaped and name is not None:
            name = _unescape(name)
        if (digest is None or len(digest) != 64 or not set(digest) <= _HEX or not name):
            raise DataError(f"{sums} line {n} is not a sha256sum line (`HASH  NAME`, "
                            f"`HASH *NAME` or `SHA256 (NAME) = HASH`): {line[:80]!r}; "
                            "regenerate it with `sha256sum`")
        out.append((digest.lower(), name))
    return out


def verified_shards(folder: Path, shards: str) -> dict[Path, str]:
    """The shards in folder/`shards`/ listed in folder/SHA256SUMS (path -> sha256), each checked
    against its sum, every one before the caller unpacks any; a shard listed but missing, one
    whose bytes differ from its sum, and one in that folder that the file does not list are each
    one DataError naming the shard and the fix."""
    sums = folder / "SHA256SUMS"
    found = {}
    for digest, rel in read_sums(sums):
        rel = rel.removeprefix("./")
        if rel.split("/")[0] != shards:
            continue
        f = folder / rel
        if not f.is_file():
            raise DataError(f"shard {f} listed in {sums} is missing: copy it back beside the "
                            f"other {shards} shards (every shard {sums.name} lists is needed)")
        found_digest = paths.sha256_file(f)
        if found_digest != digest:
            raise DataError(f"wrong checksum for {f}: expected {digest} from {sums}, found "
                            f"{found_digest} (a truncated or altered copy): copy that shard "
                            "again from where the shards came from")
        found[f] = digest
    if not found:
        raise DataError(f"{sums} lists no shard of {shards} (expected ./{shards}/...)")
    listed = {f.resolve() for f in found}
    for f in sorted((folder / shards).rglob("*")):
        if f.is_file() and f.name.endswith(ARCHIVE_SUFFIXES) and f.resolve() not in listed:
            raise DataError(f"shard {f} is not listed in {sums}: add its sum (`sha256sum`) "
                            "or remove it")
    return found
