"""The grid as jobs (`itl grid`, itl.grid) computes what the experiments compute: the whole smoke
grid run through submitit's local executor, into a run store of its own, gives every claim the
same results, number for number, as `pytest experiments --scale smoke` (the default store,
trained here if the experiments have not run yet). CPU runs are bit-reproducible for a fixed
number of threads, which every run fixes (devices.cpu_threads), so equal means equal.

Expensive: the whole smoke grid twice at most (minutes on 2 CPU cores); smoke scale only. So
the README's main job (`itl reproduce`) leaves it out and CI runs it on its own (.ci/run).
"""
import pytest

from itl import claims, cli, pipeline


def test_the_local_grid_gives_the_experiments_results(scale, tmp_path, monkeypatch):
    if scale.name != "smoke":
        pytest.skip(f"the grid's equality with the experiments is checked at smoke scale only "
                    f"(the {scale.name} grid needs a cluster: itl grid --launcher slurm)")
    wanted = {cid: pipeline.results(scale, c.conditions(scale), probes=c.probes(scale))
              for cid, c in claims.CLAIMS.items()}  # as the experiments compute them
    monkeypatch.setenv("ITL_RUNS", str(tmp_path / "grid-runs"))
    assert cli.main(["grid", "--scale", scale.name, "--launcher", "local", "--jobs", "2"]) == 0
    for cid, c in claims.CLAIMS.items():
        got = pipeline.results(scale, c.conditions(scale), compute=False,
                               probes=c.probes(scale))
        assert got == wanted[cid], cid
        assert all(len(got[k]) == len(scale.seeds) for k in c.conditions(scale)), cid
    assert cli.main(["grid", "--scale", scale.name, "--launcher", "local"]) == 0  # all done
