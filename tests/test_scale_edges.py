"""A scale travels as a Scale (issue 22): its name becomes one at the edges -- the CLI, the pytest
options, the DVC stages' params.yaml, the benchmark's command line, the README's named columns, a
grid job in its own process -- and every function inside receives the Scale itself, never
re-resolving a name with scales.get."""
import ast
import dataclasses
from pathlib import Path

from itl import claims, pipeline, report, scales

ITL = Path(pipeline.__file__).resolve().parent

EDGES = {  # (module, function) where a name becomes a Scale
    ("bench.py", "main"),  # python -m itl.bench --scale
    ("cli.py", "cmd_reproduce"), ("cli.py", "cmd_pretrain"), ("cli.py", "cmd_report"),
    ("cli.py", "cmd_runs_import"), ("cli.py", "cmd_subsets"), ("cli.py", "_grid"),
    ("cli.py", "cmd_data_status"),
    ("grid.py", "Task.__call__"),  # a job, in its own process, under the variables it carries
    ("pytest_plugin.py", "pytest_collection_modifyitems"),
    ("pytest_plugin.py", "pytest_generate_tests"), ("pytest_plugin.py", "scale"),
    ("pytest_plugin.py", "pytest_sessionfinish"),
    ("report.py", "readme_table"),  # the README's columns, by name
    ("stages.py", "main"),  # params.yaml
}


def _resolving(source: str) -> set[str]:
    """The functions (qualified names) of `source` that call scales.get."""
    found: set[str] = set()

    def visit(node: ast.AST, where: tuple[str, ...]) -> None:
        for child in ast.iter_child_nodes(node):
            inner = where
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                inner = where + (child.name,)
            if (isinstance(child, ast.Call) and isinstance(child.func, ast.Attribute)
                    and child.func.attr == "get" and isinstance(child.func.value, ast.Name)
                    and child.func.value.id == "scales"):
                found.add(".".join(where) or "<module>")
            visit(child, inner)

    visit(ast.parse(source), ())
    return found


def test_the_check_finds_a_call_where_it_is():
    source = ("class T:\n    def run(self):\n        return scales.get(self.name)\n"
              "def f(name):\n    return other.get(name)\n")
    assert _resolving(source) == {"T.run"}


def test_only_the_edges_resolve_a_scale_by_name():
    found = set()
    for f in sorted(ITL.rglob("*.py")):
        if f.name == "scales.py":  # the resolver itself
            continue
        source = f.read_text()
        found |= {(f.relative_to(ITL).as_posix(), q) for q in _resolving(source)}
        tree = ast.parse(source)
        assert not [n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)
                    and n.module == "itl.scales" and any(a.name == "get" for a in n.names)], f
    assert found == EDGES


def test_the_scale_given_is_the_scale_used():
    """A Scale no name resolves to (a pilot builds such) is judged on its own primary metric:
    nothing along the way looks its name up again."""
    smoke = scales.get("smoke")
    other = dataclasses.replace(smoke, name="smoke-variant", judged="smoke-target/linear")
    metric = pipeline.primary_metric(other)
    assert metric == "smoke-target/linear" != pipeline.primary_metric(smoke)
    tuned = pipeline.primary_metric(smoke)  # reported beside it (claims.secondary_metric)
    res = {f"images-per-class={n}": {s: {"source_top1": 40 + n / 100 + s, metric: 50 + n / 50 + s,
                                         tuned: 60 + n / 20 + s, "source_classes": 16}
                                     for s in (0, 1)} for n in (1000, 500, 250, 125, 50)}
    res[pipeline.RANDOM] = {s: {metric: 30.0, tuned: 20.0} for s in (0, 1)}
    s = report.section(claims.SECTION4, other, res)
    assert s["scale"] is other and s["metric"] == metric
    assert s["estimate"] == claims.SECTION4.verdict(res, other)[0] != \
        claims.SECTION4.verdict(res, other, metric=tuned)[0]
    assert s["secondary"][0] == tuned
