"""The experiment suite's shape: one file per section, -k picks a section, one test id per
condition and seed (checked by collecting, without training)."""
import subprocess
import sys
from pathlib import Path

from itl import claims, scales

ROOT = Path(__file__).resolve().parents[1]


def _collect(*args):
    r = subprocess.run([sys.executable, "-m", "pytest", "experiments", "--collect-only", "-q",
                        "-p", "no:cacheprovider", *args], cwd=ROOT, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    return [line for line in r.stdout.splitlines() if "::" in line]


def test_k_section5_selects_exactly_the_section5_tests():
    ids = _collect("-k", "section5", "--scale", "smoke")
    assert ids and all("/test_section5_" in i for i in ids)
    section5 = {cid for cid in claims.CLAIMS if cid.startswith("section5_")}
    assert {cid for cid in section5 if any(f"/test_{cid}_" in i for i in ids)} == section5


def test_every_claim_has_a_file_with_a_test_per_condition_and_seed():
    ids = _collect("--scale", "smoke")
    smoke = scales.get("smoke")
    for cid, claim in claims.CLAIMS.items():
        mine = [i for i in ids if f"/test_{cid}_" in i]
        n = (len(claim.conditions(smoke)) + 1) * len(smoke.seeds) + 1  # + random init, claim
        assert len(mine) == n, (cid, mine)


def test_each_experiment_file_reads_as_its_section():
    """The question, the paper's finding, the statistic and the rule are in the file's own text,
    and they are the claim's (itl.claims), so the two cannot drift apart."""
    import ast
    for f in sorted((ROOT / "experiments").glob("test_section*.py")):
        doc = " ".join(ast.get_docstring(ast.parse(f.read_text())).split())
        cid = next(c for c in claims.CLAIMS if f.name.startswith(f"test_{c}_"))
        c = claims.CLAIMS[cid]
        for text in (c.statement, c.statistic, f"lies {c.direction} the margin {c.margin:g}",
                     " ".join(c.why.split()), f'CLAIMS["{cid}"]'):
            assert " ".join(text.split()) in doc, (f.name, text)
