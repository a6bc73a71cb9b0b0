"""pytest plugin: `--scale`, per-scale seed parametrisation, the `needs_cuda` marker, an
RNG-restoring fixture, one thread budget per xdist worker, and the reporter that renders
`reports/<scale>/` after the experiments ran."""
from __future__ import annotations

import os
import random
import time

import pytest
import torch

from itl import claims, data, datasets, devices, errors, paths, report, scales, subsets
from itl.datasets.entry import DETECTION, GENERATED, PLANNED, PREPARED, prepare_command

# what a scale whose data is absent, or a claim that has no conditions at a scale, raises
UNAVAILABLE = (data.DataError, subsets.SubsetError, ValueError, KeyError, FileNotFoundError)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--scale", default=None,
                     help="experiment scale: smoke (default, or ITL_SCALE), small, imagenet64 "
                          "or paper")
    parser.addoption("--detection", default=None,
                     help="off: leave the scale's detection targets unrun (CPU); claims are "
                          "then judged on the first classification target (default: "
                          "ITL_DETECTION, else on)")


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "needs_cuda: needs a CUDA GPU (skipped without one)")
    config.addinivalue_line("markers", "xdist_group(name): tests of one run, on one xdist "
                            "worker (pytest-xdist's; declared here for runs without it)")
    name, detection = settings(config.getoption("scale"), config.getoption("detection"))
    config.option.scale = name
    os.environ["ITL_DETECTION"] = detection  # read by scales.get
    if getattr(config.option, "dist", "no") == "load":
        # tests of one condition (it recurs across sections) go to one worker, in turn, so no
        # worker sits waiting on another's lock for a run it will only read
        config.option.dist = "loadgroup"
    devices.pin_xdist_worker()  # one GPU per xdist worker, before CUDA starts
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1:  # share the cores, not oversubscribe them
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))
    config._itl_start = time.time()


def settings(scale: str | None, detection: str | None) -> tuple[str, str]:
    """The scale and detection setting from --scale and --detection (else ITL_SCALE and
    ITL_DETECTION), with the ITL_* folders checked: a bad one is one usage error here, not a
    traceback per test."""
    try:
        name = scale or scales.default_name()
        detection = detection or scales.detection_setting()
        paths.data_dir(), paths.runs_dir(), paths.reports_dir()
    except ValueError as e:
        raise pytest.UsageError(str(e)) from None
    if name not in scales.SCALES:
        raise pytest.UsageError(f"unknown --scale {name!r}: choose one of "
                                f"{', '.join(scales.SCALES)}")
    if detection not in scales.DETECTION:
        raise pytest.UsageError(f"--detection {detection!r} is neither on nor off: use "
                                "--detection on or --detection off (lower case)")
    return name, detection


def missing_data(scale: scales.Scale) -> str | None:
    """Why no experiment of `scale` can run here: a data set it needs is not prepared under
    ITL_DATA, or itl has no loader for it (the paper scale); None when everything is there."""
    needed = list(scale.data_sets())
    for name in list(needed):  # what a generated set is built from, until it is built
        needed += [n for n in datasets.get(name).needs() if n not in needed]
    entries = [datasets.get(n) for n in needed]
    no_loader = sorted(e.name for e in entries if e.origin == PLANNED)
    if no_loader:
        return (f"the {scale.name} scale needs {', '.join(no_loader)}, which itl has no loader "
                "for yet: run the smoke or small scale")
    absent = sorted((e for e in entries if e.origin == PREPARED and not e.present()),
                    key=lambda e: (e.kind == DETECTION, e.name))
    if absent:
        return (f"data set(s) {', '.join(e.name for e in absent)} not prepared under "
                f"{paths.data_dir()} (ITL_DATA): run "
                + "; ".join(f"`{prepare_command(e.name)}`"
                            + ("" if e.shards or not e.fix else f" (PATH: {e.fix})")
                            for e in absent)
                + (" (or leave detection unrun: --detection off, ITL_DETECTION=off)"
                   if any(e.kind == DETECTION for e in absent) else ""))
    return None


def _conditions(claim: claims.Claim, scale: scales.Scale) -> tuple[tuple[str, ...], str | None]:
    """A claim's conditions at `scale`, or () and why they cannot be listed (the labels of a
    data set not prepared, a scale without held-out classes...)."""
    try:
        return claim.conditions(scale), None
    except UNAVAILABLE as e:
        if datasets.get(scale.source.partition(":")[0]).origin == GENERATED:
            raise  # generated data is never missing: this is a bug, let collection show it
        return (), f"{claim.id} has no conditions at the {scale.name} scale: " + \
            (e.args[0] if isinstance(e, KeyError) and e.args else str(e))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip (with the reason, one line, and the command that fixes it) the experiments that
    cannot run here, so collection never fails and one section's missing data never fails
    another section."""
    scale = scales.get(config.getoption("scale"))
    sections = {cid for cid in map(_section_of, (i.nodeid for i in items)) if cid}
    missing = missing_data(scale) if sections else None
    why = {cid: missing or _conditions(claims.CLAIMS[cid], scale)[1] for cid in sections}
    for item in items:
        cid = _section_of(item.nodeid)
        if cid and why[cid]:
            item.add_marker(pytest.mark.skip(reason=why[cid]))
        if item.get_closest_marker("needs_cuda") and not torch.cuda.is_available():
            item.add_marker(pytest.mark.skip(reason="needs a CUDA GPU"))
        params = getattr(getattr(item, "callspec", None), "params", {})
        if params.get("condition") is not None and "seed" in params:
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
        conds, why = _conditions(claim, scales.get(metafunc.config.getoption("scale")))
        if why:  # one placeholder test, skipped with the reason (pytest_collection_modifyitems)
            metafunc.parametrize("condition", [None], ids=["unavailable"])
        else:
            conds = conds + (pipeline.RANDOM,)
            metafunc.parametrize("condition", conds, ids=[c.replace("|", "_") for c in conds])
    if "seed" in metafunc.fixturenames:
        seeds = scales.get(metafunc.config.getoption("scale")).seeds
        metafunc.parametrize("seed", seeds, ids=[f"seed{s}" for s in seeds])


@pytest.fixture(scope="session")
def scale_name(request: pytest.FixtureRequest) -> str:
    return request.config.getoption("scale")


@pytest.fixture(scope="session")
def scale(scale_name: str) -> scales.Scale:
    """The Scale of --scale, resolved once (with ITL_DETECTION as pytest_configure set it)."""
    return scales.get(scale_name)


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
    scale = scales.get(config.getoption("scale"))
    # every section (none stale), and the run records beside them: a run on another machine
    # (other numerics) rewrites both, so reports/<scale>/ always re-derives from its runs/;
    # refused, nothing is written: one line and a failed session, as the CLI says it
    try:
        sections = report.render(scale, time.time() - config._itl_start, records=True)
    except errors.EXPECTED as e:
        config._itl_report_error = f"reports/{scale.name} not written: {errors.one_line(e)}"
        session.exitstatus = max(int(exitstatus), int(pytest.ExitCode.TESTS_FAILED))
        return
    config._itl_report = [s for s in sections if s["claim"].id in _SECTIONS_RUN]


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    for s in getattr(config, "_itl_report", []):
        terminalreporter.write_line(
            f"itl {s['claim'].id} [{s['scale'].name}]: {s['verdict']} — {s['estimate']}; "
            f"see reports/{s['scale'].name}/{s['claim'].id}.md")
    if hasattr(config, "_itl_report_error"):
        terminalreporter.write_line(f"itl: error: {config._itl_report_error}", red=True)
