import subprocess
import sys

import pytest


def _itl(*args):
    return subprocess.run([sys.executable, "-m", "itl", *args], capture_output=True, text=True,
                          timeout=300)


@pytest.mark.parametrize("args,message", [
    (["pretrain", "--scale", "huge"], "unknown scale 'huge'"),
    (["pretrain", "--subset", "images-per-class=2000"], "bad subset"),
    (["pretrain", "--subset", "colours=3"], "bad subset"),
    (["labels", "imagenet-1k", "--scheme", "down-up", "--classes", "919"], "available: 999"),
    (["labels", "cifar-100", "--list"], "unknown data set"),
    (["labels", "imagenet-1k", "--without", "coco"], "unknown target"),
    (["runs", "import", "--from", "/nonexistent/records"], "no run records at /nonexistent"),
    (["runs", "import", "--from", "/"], "no run records under /"),
])
def test_bad_input_gives_one_clear_error(args, message):
    r = _itl(*args)
    assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr


def test_unwritable_run_store(tmp_path, monkeypatch):
    f = tmp_path / "a-file"
    f.write_text("")
    monkeypatch.setenv("ITL_RUNS", str(f / "runs"))
    r = _itl("pretrain", "--subset", "images-per-class=50")
    assert r.returncode == 2 and "cannot write" in r.stderr
    assert not (tmp_path / "runs").exists()


def test_labels_print_leaf_merged_name():
    r = _itl("labels", "imagenet-1k", "--scheme", "up-down", "--classes", "127")
    lines = r.stdout.splitlines()
    assert r.returncode == 0 and len(lines) == 1000
    leaf, merged, name = lines[0].split("\t")
    assert leaf == "n01440764" and merged.startswith("n") and name
    r = _itl("labels", "imagenet-1k", "--without", "pascal-voc")
    assert len(r.stdout.splitlines()) == 771


def test_all_21_published_sets_from_the_cli(reference, capsys):
    import re

    from itl import cli
    for f in sorted((reference / "hierarchy").glob("synset_words_*.txt")):
        scheme, n = re.match(r"synset_words_(down_up|up_down)_(\d+)\.txt", f.name).groups()
        assert cli.main(["labels", "imagenet-1k", "--scheme", scheme.replace("_", "-"),
                         "--classes", n]) == 0
        rows = [line.split("\t") for line in capsys.readouterr().out.splitlines()]
        assert len(rows) == 1000
        assert {r[1] for r in rows} == {line.split()[0] for line in f.open()}, f.name
