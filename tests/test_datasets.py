"""The data set registry (itl.datasets): fingerprints pinned to the values the code before it
computed (run stores are keyed on them), no import cycle in itl, no data set special-cased by
name outside its module, every entry complete, and `itl data status` in each of its states."""
import ast
import dataclasses
import json
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torchvision

from itl import cli, data, datasets, pytest_plugin, scales
from itl.datasets import entry, status, sun397
from test_data_identity import _bccd, _mini_scene, expect
from archives import write_tar

ITL = Path(__file__).resolve().parents[1] / "itl"


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    d = tmp_path / "data"
    monkeypatch.setenv("ITL_DATA", str(d))
    return d


# ---------------------------------------------------------------- fingerprints


def _png(seed: int, size: int = 16) -> bytes:
    """A lossless image: its decoded pixels never depend on a codec's version."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (3, size, size), dtype=torch.uint8, generator=g)
    return torchvision.io.encode_png(x).numpy().tobytes()


def _fixtures(tmp: Path) -> dict[str, Path]:
    """One miniature source per prepared classification layout: class folders, CIFAR's pickled
    batches, Tiny ImageNet's wnids.txt layout."""
    scene = {f"15-scene/{s}/{c}/{i}.png": _png(100 * k + 10 * j + i)
             for j, (s, n) in enumerate((("train", 2), ("test", 1)))
             for k, c in enumerate(("a", "b")) for i in range(n)}

    def batch(seed: int, n: int) -> bytes:
        g = torch.Generator().manual_seed(seed)
        return pickle.dumps({b"data": torch.randint(0, 256, (n, 3072), dtype=torch.uint8,
                                                    generator=g).numpy(),
                             b"labels": [i % 2 for i in range(n)]})

    cifar = {f"cifar-10-batches-py/data_batch_{i}": batch(i, 2) for i in range(1, 6)}
    cifar["cifar-10-batches-py/test_batch"] = batch(9, 2)
    cifar["cifar-10-batches-py/batches.meta"] = pickle.dumps({b"label_names": [b"cat", b"dog"]})
    wnids = ("n01443537", "n02094433")
    tiny = {"tiny-imagenet-200/wnids.txt": "\n".join(wnids).encode()}
    for k, c in enumerate(wnids):
        for i in range(2):
            tiny[f"tiny-imagenet-200/train/{c}/images/{c}_{i}.JPEG"] = _png(500 + 10 * k + i)
        tiny[f"tiny-imagenet-200/val/images/val_{k}.JPEG"] = _png(600 + k)
    tiny["tiny-imagenet-200/val/val_annotations.txt"] = "\n".join(
        f"val_{k}.JPEG\t{c}\t0\t0\t10\t10" for k, c in enumerate(wnids)).encode()
    return {"15-scene": write_tar(tmp / "scene.tar.gz", scene),
            "cifar-10": write_tar(tmp / "batches.tar.gz", cifar),
            "tiny-imagenet-200": write_tar(tmp / "tiny.tar.gz", tiny)}


# computed on these fixtures by itl at main 970f42d (itl/prepare.py, before the registry)
BEFORE = {
    ("15-scene", 64): "15-scene-0a6879e199d5b1c7",
    ("15-scene", 32): "15-scene-695c1dceb70e0f23",
    ("15-scene", None): "15-scene-0a6879e199d5b1c7",
    ("cifar-10", 64): "cifar-10-3c732bd5f8d26588",
    ("cifar-10", 32): "cifar-10-622ad25b0f97f6c0",
    ("cifar-10", None): "cifar-10-3c732bd5f8d26588",
    ("tiny-imagenet-200", 64): "tiny-imagenet-200-40a50ec283f117ba",
    ("tiny-imagenet-200", 32): "tiny-imagenet-200-4d1c6aa7ba2da442",
    ("tiny-imagenet-200", None): "tiny-imagenet-200-40a50ec283f117ba",
    ("tiny-imagenet-200:main+tiny-imagenet-200:extra", 32):
        "tiny-imagenet-200-4d1c6aa7ba2da442:main+tiny-imagenet-200-4d1c6aa7ba2da442:extra",
    ("15-scene+cifar-10", 32): "15-scene-695c1dceb70e0f23+cifar-10-622ad25b0f97f6c0",
}
BEFORE_UNPREPARED = {  # names whose fingerprint needs no data
    ("smoke", None): "smoke-a189a66acb3f4921",
    ("smoke-target", None): "smoke-24499fbc6c705f93",
    ("smoke-extra", None): "smoke-95e65fd2ae47c27a",
    ("smoke+smoke-extra", None): "smoke-a189a66acb3f4921+smoke-95e65fd2ae47c27a",
    ("bccd", 32): "bccd",
    ("voc-cifar", 32): "voc-cifar",
    ("imagenet-1k", 32): "imagenet-1k-unprepared",
    ("voc2007", 32): "voc2007",  # a VOC-format folder, as bccd (no run was keyed on it before)
    ("sun397", 32): "sun397-unprepared",
    ("nope", 32): "nope",
}


def test_fingerprints_are_those_of_the_code_before_the_registry(tmp_path, data_dir,
                                                                monkeypatch):
    expect(monkeypatch, "15-scene", classes=("a", "b"), per_class={"train": 2, "test": 1})
    expect(monkeypatch, "cifar-10", classes=("cat", "dog"), per_class={"train": 5, "test": 1})
    expect(monkeypatch, "tiny-imagenet-200", classes=("n01443537", "n02094433"),
           per_class={"train": 2, "test": 1}, image_size=(16, 16))
    for name, source in _fixtures(tmp_path).items():
        assert datasets.prepare(name, source) == data_dir / name
    assert {k: data.fingerprint(*k) for k in BEFORE} == BEFORE
    # the cache files keep their names, and the record its sizes' fingerprints
    rec = json.loads((data_dir / "cifar-10" / "source.json").read_text())
    assert {px: (s["fingerprint"], sorted(s["files"])) for px, s in rec["sizes"].items()} == {
        "64": (BEFORE["cifar-10", 64], ["cache-64-test.pt", "cache-64-train.pt"]),
        "32": (BEFORE["cifar-10", 32], ["cache-32-test.pt", "cache-32-train.pt"])}
    assert (data_dir / "tiny-imagenet-200" / "wnids.txt").read_text() == \
        "n01443537\nn02094433\n"


def test_fingerprints_of_generated_detection_and_planned_sets_are_unchanged(data_dir):
    assert {k: data.fingerprint(*k) for k in BEFORE_UNPREPARED} == BEFORE_UNPREPARED
    with pytest.raises(data.DataError, match="exists at 32 px only, not 64"):
        data.fingerprint("smoke", 64)


# ---------------------------------------------------------------- imports


def _modules(package: Path) -> dict[str, Path]:
    out = {}
    for f in package.rglob("*.py"):
        parts = list(f.relative_to(package.parent).with_suffix("").parts)
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = f
    return out


def import_graph(package: Path) -> dict[str, set[str]]:
    """module -> the modules of `package` it imports, at the top or inside a function (an import
    inside a function is still a dependency: hiding a cycle there does not remove it)."""
    mods = _modules(package)
    graph = {}
    for m, f in mods.items():
        edges = set()
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.Import):
                edges |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                edges |= {f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in mods
                          else node.module for a in node.names}
        graph[m] = {e for e in edges if e in mods and e != m}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import cycles: strongly connected components of more than one module."""
    index, low, stack, out = {}, {}, [], []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while not comp or comp[-1] != v:
                comp.append(stack.pop())
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_cycle_check_finds_a_cycle_hidden_in_a_function(tmp_path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from pkg import b\n")
    (pkg / "b.py").write_text("def f():\n    from pkg.c import g\n")
    (pkg / "c.py").write_text("import pkg.a\n")
    (pkg / "d.py").write_text("from pkg import a\n")
    assert cycles(import_graph(pkg)) == [["pkg.a", "pkg.b", "pkg.c"]]


def test_itl_has_no_import_cycle():
    graph = import_graph(ITL)
    assert {"itl.data", "itl.datasets", "itl.datasets.cached", "itl.detection"} <= set(graph)
    assert cycles(graph) == []
    for m in graph:  # the shared machinery reads no data set module and not the registry
        if m.startswith("itl.datasets.") and m.rsplit(".", 1)[1] in (
                "images", "entry", "identity", "checksums", "staging", "records", "layouts",
                "sources", "shards", "content"):
            assert not {d for d in graph[m] if d.startswith("itl.datasets")} - {
                f"itl.datasets.{n}" for n in ("images", "entry", "identity", "checksums",
                                              "staging", "records", "layouts", "sources",
                                              "content")}, m


def test_every_data_module_imports_first_in_a_fresh_interpreter():
    """Each module imported first (itl's modules dropped in between; torch stays loaded), so
    none relies on another having been imported before it."""
    names = sorted(m for m in _modules(ITL) if m.startswith(("itl.datasets", "itl.data",
                                                             "itl.detection", "itl.scales",
                                                             "itl.pipeline", "itl.cli")))
    code = ("import importlib, sys\n"
            f"for m in {names!r}:\n"
            "    for k in [k for k in sys.modules if k == 'itl' or k.startswith('itl.')]:\n"
            "        del sys.modules[k]\n"
            "    importlib.import_module(m)\n"
            "    print('imported', m, importlib.import_module(m).__file__)\n")
    r = subprocess.run([sys.executable, "-c", code], cwd=ITL.parent, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.splitlines() == [f"imported {m} {_modules(ITL)[m]}" for m in names]


def test_no_data_set_is_special_cased_by_name_outside_its_module():
    for f in ("cli.py", "pytest_plugin.py", "detection.py", "pipeline.py", "data.py",
              "datasets/__init__.py", "datasets/status.py", "datasets/cached.py",
              "datasets/sources.py", "datasets/records.py", "datasets/voc.py"):
        text = (ITL / f).read_text()
        for name in ("bccd", "BCCD", "voc-cifar", "tiny-imagenet-200", "cifar-10", "15-scene"):
            assert f'"{name}"' not in text, f"{f} names {name}"


# ---------------------------------------------------------------- the registry


def test_every_entry_says_what_its_data_set_is():
    assert set(datasets.REGISTRY) >= {"smoke", "smoke-target", "smoke-extra",
                                      "tiny-imagenet-200", "cifar-10", "15-scene", "bccd",
                                      "voc-cifar", "imagenet-1k", "voc2007", "sun397"}
    for name, e in datasets.REGISTRY.items():
        assert e.name == name and e.kind in (entry.CLASSIFICATION, entry.DETECTION), name
        assert e.metric in (entry.TOP1, entry.MEAN_PER_CLASS, entry.VOC07_MAP, entry.MEAN_AP,
                            entry.VOC07_CLS)
        assert (e.kind == entry.DETECTION) == (e.metric == entry.VOC07_MAP), name
        assert e.class_ids in ("wnid", "name") and e.splits, name
        if e.classes is not None:
            assert len(set(e.classes)) == len(e.classes), name
            if e.origin != entry.GENERATED and name != "sun397":  # the order of sorted
                # folder / class names (SUN397: of its ClassName.txt's sorted paths, below)
                assert list(e.classes) == sorted(e.classes), name
            if e.class_ids == "wnid":
                assert all(len(w) == 9 and w[0] == "n" and w[1:].isdigit() for w in e.classes)
        if e.origin == entry.PREPARED:  # from shards, or (paper scale) original archives
            assert ((e.shards and e.shard_files) or e.archives) and e.fix, name
        if e.origin == entry.PLANNED:
            assert e.archives and all(a.name for a in e.archives), name
    lines = sorted(sun397.SUN397_LINES)  # `/j/jail/indoor` before `/j/jail_cell`
    assert datasets.get("sun397").classes == tuple(sun397.class_name(c) for c in lines)
    for s in scales.SCALES.values():  # every data set a scale reads is an entry
        assert all(n in datasets.REGISTRY for n in s.data_sets()), s.name
    assert scales.SCALES["small-v2"].data_sets() == ("tiny-imagenet-200", "cifar-10", "15-scene",
                                                  "voc-cifar", "bccd")


def test_preparing_a_generated_or_planned_set_is_refused_naming_what_it_expects(tmp_path):
    with pytest.raises(data.DataError, match=r"unknown data set 'smoke' to prepare \(smoke is "
                                             r"generated on first use\): choose one of "
                                             r"tiny-imagenet-200, cifar-10, 15-scene, bccd"):
        datasets.prepare("smoke", tmp_path)
    for name in datasets.names(entry.PLANNED):
        first = datasets.get(name).archives[0]
        with pytest.raises(data.DataError, match=rf"itl cannot prepare {name} yet \(it expects "
                                                 rf"the original {first.name} \(md5 "
                                                 rf"{first.md5}"):
            datasets.prepare(name, tmp_path)
    with pytest.raises(data.DataError, match=r"'bccd' is a detection set .* no image cache"):
        data.load("bccd", "train")


def test_missing_data_reads_the_registry_fields(tmp_path, data_dir, monkeypatch):
    why = pytest_plugin.missing_data(scales.get("small-v2"))
    assert why.index("tiny-imagenet-200") < why.index("bccd")  # detection sets last
    assert "`itl data prepare bccd --from PATH` (or leave detection unrun" in why
    monkeypatch.setitem(datasets.REGISTRY, "bccd",
                        dataclasses.replace(datasets.REGISTRY["bccd"], folder="VOC-bccd"))
    (data_dir / "VOC-bccd" / "ImageSets" / "Main").mkdir(parents=True)
    (data_dir / "VOC-bccd" / "ImageSets" / "Main" / "test.txt").write_text("a\n")
    why = pytest_plugin.missing_data(scales.get("small-v2"))
    assert "bccd" not in why and "leave detection unrun" not in why
    assert "`itl data prepare cifar-10 --from PATH`" in why


# ---------------------------------------------------------------- itl data status


def _status(capsys, *args: str) -> dict[tuple[str, str], str]:
    assert cli.main(["data", "status", *args]) == 0
    out = capsys.readouterr().out.splitlines()
    rows = {}
    for line in out:
        scale, name, rest = line.split(None, 2)
        rows[scale, name] = rest
    assert len(rows) == len(out)
    return rows


def test_status_lists_every_data_set_of_every_scale_and_writes_nothing(data_dir, capsys):
    rows = _status(capsys)
    want = {(s.name, n) for s in scales.SCALES.values() for n in s.data_sets()}
    # every data set once per scale that reads it (imagenet64 reads the small scale's targets)
    assert want <= set(rows) and {n for _, n in rows} == set(datasets.REGISTRY)
    assert rows["smoke", "smoke"].startswith("generated on first use")
    assert rows["small-v2", "voc-cifar"] == ("generated on first use: from cifar-10 (test objects) "
                                          "on 15-scene (backgrounds), once cifar-10 and "
                                          "15-scene are prepared")
    assert rows["small", "cifar-10"].startswith(
        "missing: run `itl data prepare cifar-10 --from PATH` with PATH the shards folder")
    assert "./cifar-10/cifar-10-train.tar.gz, ./cifar-10/cifar-10-test.tar.gz" in \
        rows["small", "cifar-10"]
    assert "cifar-10-python.tar.gz (md5 c58f30108f718f92721af3b95e74349a)" in \
        rows["small", "cifar-10"]
    assert "./tiny-imagenet-200/train-7.tar.gz, ./tiny-imagenet-200/val.tar.gz" in \
        rows["small", "tiny-imagenet-200"]
    assert rows["small-v2", "bccd"].startswith("missing: run `itl data prepare bccd --from PATH`")
    assert rows["paper", "imagenet-1k"] == (
        "missing: run `itl data prepare imagenet-1k --from PATH` with PATH the folder holding "
        "ILSVRC2012_img_train.tar, ILSVRC2012_img_val.tar and ILSVRC2012_devkit_t12.tar.gz (or "
        "train/<wnid>/ and val/<wnid>/); it expects the original ILSVRC2012_img_train.tar (md5 "
        "1d675b47d978889d74fa0da5fadfb00e), ILSVRC2012_img_val.tar (md5 "
        "29b22e2961454d5413ddabcf34fc5622), ILSVRC2012_devkit_t12.tar.gz (md5 "
        "fa75699e90414af021442c21a62c3abf)")
    assert rows["paper", "sun397"] == (
        "missing: run `itl data prepare sun397 --from PATH` with PATH a folder holding "
        "SUN397.tar.gz and Partitions.zip (or both unpacked); it expects the original "
        "SUN397.tar.gz (md5 8ca2778205c41d23104230ba66911c7a, sha256 "
        "f404130965a7ad77bed5ececc71e720ab50f3cc1e1bb257257610d38f3b928ec), Partitions.zip "
        "(sha256 e3311ea5f812d4cc6faef194688343d1111f6cd6f70f2c62f393c2b8d6ba1ec9)")
    assert rows["paper", "voc2012-action"].startswith(
        "missing: run `itl data prepare voc2012-action --from PATH` with PATH "
        "VOCtrainval_11-May-2012.tar or its unpacked VOCdevkit/VOC2012; it expects the original "
        "VOCtrainval_11-May-2012.tar (md5 6cd6e144f989b92b3379bac3b3de84fd")
    assert not data_dir.exists()  # looking prepares, generates and creates nothing
    small = _status(capsys, "--scale", "small")
    assert set(small) == {("small", n) for n in scales.SCALES["small"].data_sets()}


def test_status_of_a_prepared_set_verified_then_failing(tmp_path, data_dir, monkeypatch,
                                                        capsys):
    folder = datasets.prepare("15-scene", _mini_scene(tmp_path, monkeypatch))
    line = _status(capsys, "--scale", "small")["small", "15-scene"]
    assert line == (f"present, verified: 4 train and 2 test images, 2 classes, at 64 and 32 px "
                    f"(from archive {tmp_path / 's.tar.gz'})")
    kept = (folder / "fingerprint-32").read_text()
    (folder / "fingerprint-32").write_text("15-scene-0000000000000000\n")
    line = _status(capsys, "--scale", "small")["small", "15-scene"]
    assert line.startswith("present, failing verification: ") and \
        "fingerprint-32 does not hold the fingerprint 15-scene-" in line
    (folder / "fingerprint-32").write_text(kept)
    assert _status(capsys, "--scale", "small")["small", "15-scene"].startswith("present, verif")
    (folder / "cache-32-test.pt").unlink()
    assert "has no 32-px cache" in _status(capsys, "--scale", "small")["small", "15-scene"]
    (folder / "source.json").unlink()
    line = _status(capsys, "--scale", "small")["small", "15-scene"]
    assert line.startswith("present, failing verification: ") and \
        "source.json is missing" in line and "itl data prepare 15-scene --from PATH" in line
    with pytest.raises(data.DataError, match="source.json is missing"):  # as reading says
        data.load("15-scene", "train")


def test_status_of_a_voc_set_verified_then_failing(tmp_path, data_dir, monkeypatch, capsys):
    expect(monkeypatch, "bccd", split_sizes={"train": 2, "val": 1, "trainval": 3, "test": 3})
    assert cli.main(["data", "prepare", "bccd", "--from",
                     str(write_tar(tmp_path / "b.tar.gz", _bccd()))]) == 0
    out = capsys.readouterr().out
    assert "bccd train (fine-tuned on): 2 images, 2 boxes" in out
    assert "bccd test (scored on): 3 images" in out
    line = _status(capsys, "--scale", "small-v2")["small-v2", "bccd"]
    assert line.startswith(f"present, verified: VOC-format folder {data_dir / 'BCCD'}: images "
                           "2 train, 1 val, 3 trainval, 3 test (fine-tuned on train, scored on "
                           "test); 3 boxes of 3 classes")
    (data_dir / "BCCD" / "ImageSets" / "Main" / "val.txt").write_text("img_0\nimg_1\n")
    line = _status(capsys, "--scale", "small-v2")["small-v2", "bccd"]
    assert line.startswith("present, failing verification: ") and \
        "val.txt lists 2 images where" in line and "records 1" in line


def test_status_says_a_generated_set_once_generated(data_dir, capsys):
    (data_dir / "voc-cifar" / "ImageSets" / "Main").mkdir(parents=True)
    (data_dir / "voc-cifar" / "ImageSets" / "Main" / "test.txt").write_text("a\n")
    assert _status(capsys, "--scale", "small-v2")["small-v2", "voc-cifar"] == \
        f"generated on first use: generated: {data_dir / 'voc-cifar'}"


def test_status_with_a_bad_scale_is_one_line_and_exit_2(capsys):
    assert cli.main(["data", "status", "--scale", "huge"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("itl: error: unknown scale 'huge'") and err.count("\n") == 1


def test_status_names_an_unreadable_record_as_failing(data_dir, capsys):
    (data_dir / "cifar-10").mkdir(parents=True)
    for split in ("train", "test"):
        (data_dir / "cifar-10" / f"cache-64-{split}.pt").write_bytes(b"x")
    (data_dir / "cifar-10" / "source.json").write_text("{not json")
    rows = {name: st for _, name, st in status.rows("small-v2")}
    assert str(rows["cifar-10"]).startswith("present, failing verification: "
                                                    "unreadable record")
