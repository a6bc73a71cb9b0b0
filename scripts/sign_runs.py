"""Add the metrics digest (itl.runs, protocol 2 stores made before it existed) to every finished
run under a run store or exported records whose config hashes to its folder's name.

    python scripts/sign_runs.py STORE_OR_RECORDS_FOLDER

That a script can do this is what the digest promises and no more (README, "What itl
guarantees"): a checksum that catches accidents, not a signature. Runs that have one are left
as they are.
"""
import json
import sys
from pathlib import Path

from itl import paths, runs

root = Path(sys.argv[1])
signed = 0
for f in sorted(root.glob("*/*/metrics.json")):
    d = f.parent
    if not runs.is_run_name(d.name):
        continue
    cfg = json.loads((d / "config.json").read_text())
    m = json.loads(f.read_text())
    if runs.config_hash(cfg) != d.name or m.get("run") != f"{d.parent.name}/{d.name}":
        print(f"skipped {d}: config or run name does not match its folder")
        continue
    if "digest" not in m:
        m["digest"] = runs._digest(m)
        paths.atomic_write_json(f, m)
        signed += 1
print(f"{signed} runs signed under {root}")
