"""Every user error is one line, `itl: error: <what, naming the thing> <the fix>`, exit code 2,
never a traceback: odd ITL_* variables, out-of-range seeds and sizes, bad subset rules, bad
options, unusable files; and pytest collection of the experiments never fails for missing data.

Most cases call `itl.cli.main` in-process (fast); the few that need a fresh interpreter (pytest
collection, a closed pipe) run a subprocess with this checkout first on the path."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from itl import cli, errors, paths, scales

ROOT = Path(__file__).resolve().parents[1]


def _one_line_error(capsys, argv: list[str], *needles: str) -> str:
    try:
        code = cli.main(argv)
    except SystemExit as e:  # argparse's errors
        code = e.code
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert code == 2, (code, err)
    assert len(lines) == 1 and lines[0].startswith("itl: error: "), err
    assert "Traceback" not in err
    for n in needles:
        assert n in err, err
    return lines[0]


def _run(args: list[str], tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    """`python ARGS` in tmp_path, with this checkout's itl and the given ITL_* settings."""
    e = {**os.environ, "PYTHONPATH": str(ROOT), **env}
    return subprocess.run([sys.executable, *args], cwd=tmp_path, env=e, capture_output=True,
                          text=True, timeout=120)


# ---------------------------------------------------------------- ITL_* variables


@pytest.mark.parametrize("var", ["ITL_DATA", "ITL_RUNS", "ITL_REPORTS"])
@pytest.mark.parametrize("value", ["", "  "])
def test_an_empty_folder_variable_is_an_error_not_the_current_folder(var, value, monkeypatch,
                                                                     tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(var, value)
    reader = {"ITL_DATA": paths.data_dir, "ITL_RUNS": paths.runs_dir,
              "ITL_REPORTS": paths.reports_dir}[var]
    with pytest.raises(ValueError, match=f"{var} is set but empty: set it to a folder, or unset"):
        reader()
    monkeypatch.delenv(var)
    assert reader() == Path(var.removeprefix("ITL_").lower())  # unset: the documented default
    assert list(tmp_path.iterdir()) == []


def test_an_empty_itl_data_stops_the_cli_before_writing_anything(capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ITL_DATA", "")
    _one_line_error(capsys, ["subsets", "full"], "ITL_DATA is set but empty")
    assert list(tmp_path.iterdir()) == []  # no ./smoke, no ./data


def test_a_folder_variable_expands_the_home_folder(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("ITL_RUNS", "~/runs")
    assert paths.runs_dir() == tmp_path / "runs"


@pytest.mark.parametrize("value", ["Off", "of", "", "yes"])
@pytest.mark.parametrize("scale", list(scales.SCALES))
def test_a_detection_typo_is_an_error_at_every_scale(value, scale, monkeypatch):
    monkeypatch.setenv("ITL_DETECTION", value)
    with pytest.raises(ValueError, match=f"ITL_DETECTION={value!r} is neither on nor off"):
        scales.get(scale)


def test_a_detection_typo_is_one_line_on_the_cli(capsys, monkeypatch):
    monkeypatch.setenv("ITL_DETECTION", "Off")
    _one_line_error(capsys, ["report"], "ITL_DETECTION='Off'", "ITL_DETECTION=off")


@pytest.mark.parametrize("value", ["bogus", "", "SMOKE"])
def test_a_bad_itl_scale_is_named(value, capsys, monkeypatch):
    monkeypatch.setenv("ITL_SCALE", value)
    _one_line_error(capsys, ["subsets", "full"], f"ITL_SCALE={value!r} is not a scale",
                    "smoke, small, small-v2, paper")


def test_an_unwritable_reports_folder_is_named(capsys, monkeypatch, tmp_path):
    (tmp_path / "a-file").write_text("")
    monkeypatch.setenv("ITL_REPORTS", str(tmp_path / "a-file" / "reports"))
    _one_line_error(capsys, ["report"], "cannot write to", "ITL_REPORTS")


# ---------------------------------------------------------------- seeds, sizes, rules


@pytest.mark.parametrize("bad_seed", ["-1", "abc", "1.5", str(2**32), ""])
@pytest.mark.parametrize("command", [["subsets", "full"], ["pretrain"]])
def test_a_seed_out_of_range_is_refused_before_any_work(command, bad_seed, capsys, tmp_path):
    _one_line_error(capsys, [*command, "--seed", bad_seed], "argument --seed", "is not a seed",
                    "from 0 to 4294967295")
    assert not (tmp_path / "runs").exists()  # nothing trained, no manifest written


@pytest.mark.parametrize("rule,fix", [
    ("images-per-class=0", "from 1 to 1000"),
    ("images-per-class=-5", "from 1 to 1000"),
    ("images-per-class=99999", "from 1 to 1000"),
    ("images-per-class=5.5", "from 1 to 1000"),
    ("images-per-class", "from 1 to 1000"),
    ("classes=0", "from 2 to 1000"),
    ("classes=1", "from 2 to 1000"),
    ("labels=down-up:0", "whole number from 1"),
    ("labels=sideways:5", "scheme must be one of down-up, up-down"),
    ("labels=down-up:7", "available: 15, 14"),
    ("budget=0x10", "from 2 to 1000"),
    ("budget=10", "from 1 to 1000"),
    ("split=random:c", "use split=random:a"),
    ("extra=0", "whole number from 1"),
    ("extra=1000", "held-out classes are available"),
    ("without=coco", "targets are pascal-voc"),
    ("colours=3", "known rules are full, images-per-class=N"),
    ("images-per-class500", "known rules are"),
    ("", "known rules are"),
])
def test_a_bad_subset_rule_is_named_with_the_rules_that_exist(rule, fix, capsys):
    _one_line_error(capsys, ["subsets", rule], fix)


@pytest.mark.parametrize("argv,needle", [
    ([], "required: COMMAND"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
    (["pretrain", "--bogus"], "unrecognized arguments: --bogus"),
    (["labels"], "required: dataset"),
    (["labels", "imagenet-1k", "--classes", "abc"], "'abc' is not a class count"),
    (["labels", "imagenet-1k", "--classes", "918", "--without", "pascal-voc"], "not allowed"),
    (["labels", "imagenet-1k", "--scheme", "sideways"], "invalid choice: 'sideways'"),
    (["data", "prepare", "cifar-10", "--from", ".", "--size", "0"], "'0' is not an image size"),
    (["data", "prepare", "cifar-10"], "required: --from"),
    (["reproduce", "-n", "abc"], "'abc' is not a number of workers"),
    (["reproduce", "-n", "-1"], "'-1' is not a number of workers"),
])
def test_a_bad_option_is_one_line_naming_the_help(argv, needle, capsys):
    line = _one_line_error(capsys, argv, needle)
    assert line.endswith("--help`")


# ---------------------------------------------------------------- files, data, commands


def test_a_readme_that_is_missing_or_a_folder_is_named(capsys, tmp_path):
    _one_line_error(capsys, ["report", "--readme", str(tmp_path / "nope.md")],
                    "nope.md: no such file")
    _one_line_error(capsys, ["report", "--readme", str(tmp_path)], "a folder, not a file")


def test_an_os_error_is_named_by_its_file():
    assert errors.one_line(IsADirectoryError(21, "Is a directory", "/x/y")) == \
        "cannot use /x/y: Is a directory"
    assert errors.one_line(KeyError("n123 is not a WordNet 3.0 noun synset")) == \
        "n123 is not a WordNet 3.0 noun synset"  # no quotes around a KeyError's message


def test_a_multi_line_error_is_printed_on_one_line(capsys, tmp_path):
    (tmp_path / "empty.tar.gz").write_bytes(b"")
    _one_line_error(capsys, ["data", "prepare", "cifar-10", "--from",
                             str(tmp_path / "empty.tar.gz")], "cannot unpack")


def test_reproduce_without_the_scales_data_names_the_command_that_prepares_it(capsys):
    _one_line_error(capsys, ["reproduce", "--scale", "small", "-n", "0"],
                    "itl data prepare tiny-imagenet-200 --from PATH",
                    "itl data prepare cifar-10 --from PATH")
    _one_line_error(capsys, ["reproduce", "--scale", "paper", "-n", "0"],
                    "itl data prepare imagenet-1k --from PATH", "ILSVRC2012_img_train.tar",
                    "itl data prepare sun397 --from PATH", "itl data prepare voc2007 --from PATH")


def test_a_closed_pipe_and_an_unknown_section_give_no_traceback(tmp_path):
    p = subprocess.Popen([sys.executable, "-m", "itl", "labels", "imagenet-1k", "--scheme",
                          "down-up", "--classes", "918"], cwd=tmp_path,
                         env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    p.stdout.readline()
    p.stdout.close()  # as `| head -1` does
    err = p.stderr.read().decode()
    assert p.wait(timeout=60) in (0, 1) and "Traceback" not in err, err
    r = _run(["-m", "itl", "reproduce", "-n", "0", "-k", "section99"], tmp_path)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith("itl: error: -k 'section99' selects no "
                                                        "experiment: the sections are section4")


# ---------------------------------------------------------------- pytest collection


def _pytest(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    return _run(["-m", "pytest", str(ROOT / "experiments"), "-p", "no:cacheprovider",
                 "-p", "no:xdist", "-q", *args], tmp_path, **env)


def test_at_small_without_its_data_every_section_collects_and_skips_naming_the_fix(tmp_path):
    empty = tmp_path / "no-data"
    empty.mkdir()
    r = _pytest(tmp_path, "--scale", "small", "-vv", "-k", "section4 or section6",
                ITL_DATA=str(empty))
    assert r.returncode == 0, r.stdout + r.stderr  # collected, and skipped rather than failed
    assert re.search(r"= \d+ skipped, \d+ deselected in [\d.]+s =", r.stdout), r.stdout
    # section 4's conditions need no data to be listed, section 6's (the held-out classes) do
    assert "test_section4_images_per_class.py::test_condition[images-per-class=500-seed0]" \
        in r.stdout
    assert "test_section6_more_data.py::test_condition[unavailable-seed0] SKIPPED" in r.stdout
    assert "`itl data prepare tiny-imagenet-200 --from PATH`" in r.stdout
    assert "Traceback" not in r.stdout + r.stderr
    assert not (tmp_path / "reports").exists() and list(empty.iterdir()) == []


def test_at_paper_scale_collection_skips_naming_what_to_prepare(tmp_path):
    r = _pytest(tmp_path, "--scale", "paper", "--collect-only")
    assert r.returncode == 0 and "Traceback" not in r.stdout + r.stderr, r.stdout + r.stderr
    # Section 6's stand-in needs no second data set: its conditions are listed (and skipped)
    assert "test_section6_more_data.py::test_condition[holdout=229-seed0]" in r.stdout
    from itl import pytest_plugin
    why = pytest_plugin.missing_data(scales.get("paper"))
    assert "itl data prepare imagenet-1k --from PATH" in why and "SUN397.tar.gz" in why, why


def test_a_bad_variable_stops_pytest_with_one_usage_error(tmp_path):
    r = _pytest(tmp_path, "--collect-only", ITL_DETECTION="Off")
    assert r.returncode == pytest.ExitCode.USAGE_ERROR, r.stdout + r.stderr
    assert r.stderr.strip() == ("ERROR: ITL_DETECTION='Off' is neither on nor off: set "
                                "ITL_DETECTION=on or ITL_DETECTION=off (lower case), or unset it")


@pytest.mark.parametrize("options,env,needle", [
    ((None, None), {"ITL_SCALE": "bogus"}, "ITL_SCALE='bogus' is not a scale"),
    ((None, None), {"ITL_SCALE": ""}, "ITL_SCALE='' is not a scale"),
    ((None, None), {"ITL_DETECTION": ""}, "ITL_DETECTION='' is neither on nor off"),
    ((None, None), {"ITL_DATA": ""}, "ITL_DATA is set but empty"),
    ((None, None), {"ITL_RUNS": " "}, "ITL_RUNS is set but empty"),
    (("huge", None), {}, "unknown --scale 'huge'"),
    ((None, "Off"), {}, "--detection 'Off' is neither on nor off"),
])
def test_the_plugin_checks_every_setting_once(options, env, needle, monkeypatch):
    from itl import pytest_plugin
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(pytest.UsageError, match=re.escape(needle)):
        pytest_plugin.settings(*options)
    for k in env:
        monkeypatch.delenv(k)
    monkeypatch.delenv("ITL_SCALE", raising=False)
    monkeypatch.delenv("ITL_DETECTION", raising=False)
    assert pytest_plugin.settings(None, None) == ("smoke", "on")
    assert pytest_plugin.settings("small", "off") == ("small", "off")


def test_a_refused_report_at_session_end_is_one_line_and_a_failed_session(monkeypatch):
    """report.render can refuse (records exported under another ITL_DETECTION, a full disk);
    at the end of an experiment session that is one line and a failed exit status, not a pytest
    INTERNALERROR with a traceback."""
    from types import SimpleNamespace

    from itl import pytest_plugin, report
    why = ("reports/small/runs/settings.json says the run records were exported with "
           "ITL_DETECTION=on, ...: set ITL_DETECTION=on (nothing written)")

    def refuse(*a, **kw):
        raise ValueError(why)

    monkeypatch.setattr(report, "render", refuse)
    monkeypatch.setattr(pytest_plugin, "_SECTIONS_RUN", {"section4"})
    config = SimpleNamespace(getoption=lambda name: "smoke", _itl_start=0.0)
    session = SimpleNamespace(config=config, exitstatus=pytest.ExitCode.OK)
    pytest_plugin.pytest_sessionfinish(session, pytest.ExitCode.OK)
    assert session.exitstatus == pytest.ExitCode.TESTS_FAILED
    lines = []
    reporter = SimpleNamespace(write_line=lambda line, **kw: lines.append(line))
    pytest_plugin.pytest_terminal_summary(reporter, session.exitstatus, config)
    assert lines == [f"itl: error: reports/smoke not written: {why}"]
    # a session that already failed keeps its own status
    session.exitstatus = pytest.ExitCode.INTERRUPTED
    pytest_plugin.pytest_sessionfinish(session, pytest.ExitCode.INTERRUPTED)
    assert session.exitstatus == pytest.ExitCode.INTERRUPTED
