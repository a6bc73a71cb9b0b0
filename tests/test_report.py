"""Reports are rendered from the run store: the summary shows the claims that have results,
names those that do not, and gives each kind of run's seconds and device from its metrics."""
import json

from itl import claims, pipeline, report


def _run(root, kind, name, config, seconds, device):
    d = root / kind / name
    d.mkdir(parents=True)
    (d / "config.json").write_text(json.dumps(config))
    (d / "metrics.json").write_text(json.dumps({"run": f"{kind}/{name}", "seconds": seconds,
                                                "device": device}))
    (d / "checkpoint.pt").write_bytes(b"weights")


def test_summary_shows_what_ran_with_its_timings_and_exports_no_checkpoints(tmp_path,
                                                                             monkeypatch):
    monkeypatch.setenv("ITL_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("ITL_REPORTS", str(tmp_path / "reports"))
    runs = tmp_path / "runs"
    _run(runs, "pretrain", "a", {"scale": "smoke"}, 100.0, "cpu (x, 1 threads)")
    _run(runs, "pretrain", "b", {"scale": "smoke"}, 120.0, "cpu (x, 1 threads)")
    _run(runs, "transfer", "c", {"scale": "smoke", "method": "knn"}, 3.0, "cpu (x, 1 threads)")
    _run(runs, "pretrain", "d", {"scale": "small"}, 9.0, "NVIDIA H100")  # another scale
    metric = pipeline.primary_metric("smoke")
    extra = claims.CLAIMS["section6"].conditions(report.scales.get("smoke"))[1]
    res = {c: {s: {"source_top1": 40.0 + s, metric: base + s} for s in (0, 1)}
           for c, base in ((claims.FULL, 60.0), (extra, 55.0))}
    res[pipeline.RANDOM] = {s: {metric: 30.0} for s in (0, 1)}
    ran = report.section(claims.CLAIMS["section6"], "smoke", res)
    unrun = report.section(claims.CLAIMS["section4"], "smoke",  # full data alone: not run
                           {"images-per-class=1000": res[claims.FULL],
                            pipeline.RANDOM: res[pipeline.RANDOM]})
    text = report.write_summary("smoke", [ran, unrun], None).read_text()
    assert "| section6 " in text and "| section4 " not in text
    assert "at this scale yet: section4." in text
    assert "top-1 after full-data pre-training: 40.5 ± 0.7% over 2 seeds" in text
    rows = [[c.strip() for c in line.split("|")[1:-1]] for line in text.splitlines()
            if line.startswith("| pre-training") or line.startswith("| transfer")]
    assert rows == [["pre-training", "cpu (x, 1 threads)", "2", "110.0 ± 14.1", "120"],
                    ["transfer: knn", "cpu (x, 1 threads)", "1", "3.0", "3"]]
    assert "H100" not in text
    out = report.export_runs("smoke")
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) == [
        "pretrain", "pretrain/a", "pretrain/a/config.json", "pretrain/a/metrics.json",
        "pretrain/b", "pretrain/b/config.json", "pretrain/b/metrics.json",
        "transfer", "transfer/c", "transfer/c/config.json", "transfer/c/metrics.json"]


def test_a_claim_without_results_writes_no_section_files(tmp_path, monkeypatch):
    monkeypatch.setenv("ITL_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("ITL_REPORTS", str(tmp_path / "reports"))
    s = report.write_section(claims.CLAIMS["section6"], "smoke")
    assert not s["results"] and not (tmp_path / "reports").exists()
