"""pytest plugin: `--scale`, per-scale seed parametrisation, the `needs_cuda` marker, an
RNG-restoring fixture, one thread budget per xdist worker, and the reporter that renders
`reports/<scale>/` after the experiments ran."""
from __future__ import annotations

import os
import random
import time

import pytest
import torch

from itl import claims, devices, report, scales


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--scale", default=os.environ.get("ITL_SCALE", "smoke"),
                     help="experiment scale: smoke (default), small or paper")
    parser.addoption("--detection", default=os.environ.get("ITL_DETECTION", "on"),
                     choices=scales.DETECTION,
                     help="off: leave the scale's detection targets unrun (CPU); claims are "
                          "then judged on the first classification target")


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "needs_cuda: needs a CUDA GPU (skipped without one)")
    name = config.getoption("scale")
    if name not in scales.SCALES:
        raise pytest.UsageError(f"unknown --scale {name!r}: choose one of "
                                f"{', '.join(scales.SCALES)}")
    os.environ["ITL_DETECTION"] = config.getoption("detection")  # read by scales.get
    if getattr(config.option, "dist", "no") == "load":
        # tests of one condition (it recurs across sections) go to one worker, in turn, so no
        # worker sits waiting on another's lock for a run it will only read
        config.option.dist = "loadgroup"
    devices.pin_xdist_worker()  # one GPU per xdist worker, before CUDA starts
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1:  # share the cores, not oversubscribe them
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))
    config._itl_start = time.time()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("needs_cuda") and not torch.cuda.is_available():
            item.add_marker(pytest.mark.skip(reason="needs a CUDA GPU"))
        params = getattr(getattr(item, "callspec", None), "params", {})
        if "condition" in params and "seed" in params:
            item.add_marker(pytest.mark.xdist_group(_run_group(params["condition"],
                                                               params["seed"])))


def _run_group(condition: str, seed: int) -> str:
    """One name for one pre-training run, however a section spells its condition."""
    from itl import pipeline, subsets
    if condition == pipeline.RANDOM:
        return f"random-{seed}"
    rule, params = subsets.parse_rule(condition)
    return f"{rule}{sorted(params.items())}-{seed}"


def _section_of(nodeid: str) -> str | None:
    return next((cid for cid in claims.CLAIMS if f"/test_{cid}_" in f"/{nodeid}"), None)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Note which sections ran (on the xdist controller too, which collects nothing)."""
    cid = _section_of(report.nodeid)
    if cid and report.when == "call":
        _SECTIONS_RUN.add(cid)


_SECTIONS_RUN: set[str] = set()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    claim = getattr(metafunc.function, "claim", None)
    if claim is not None and "condition" in metafunc.fixturenames:
        from itl import pipeline
        conds = claim.conditions(scales.get(metafunc.config.getoption("scale")))
        conds = conds + (pipeline.RANDOM,)
        metafunc.parametrize("condition", conds, ids=[c.replace("|", "_") for c in conds])
    if "seed" in metafunc.fixturenames:
        seeds = scales.get(metafunc.config.getoption("scale")).seeds
        metafunc.parametrize("seed", seeds, ids=[f"seed{s}" for s in seeds])


@pytest.fixture(scope="session")
def scale_name(request: pytest.FixtureRequest) -> str:
    return request.config.getoption("scale")


@pytest.fixture(autouse=True)
def restore_rng():
    """Leave the global RNGs as the test found them."""
    py, t = random.getstate(), torch.random.get_rng_state()
    yield
    random.setstate(py)
    torch.random.set_rng_state(t)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    if hasattr(config, "workerinput") or not _SECTIONS_RUN:
        return  # xdist workers leave reporting to the controller
    scale = config.getoption("scale")
    sections = [report.write_section(claims.CLAIMS[cid], scale) for cid in sorted(_SECTIONS_RUN)]
    report.write_summary(scale, sections, time.time() - config._itl_start)
    config._itl_report = sections


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    for s in getattr(config, "_itl_report", []):
        terminalreporter.write_line(
            f"itl {s['claim'].id} [{s['scale'].name}]: {s['verdict']} — {s['estimate']}; "
            f"see reports/{s['scale'].name}/{s['claim'].id}.md")
