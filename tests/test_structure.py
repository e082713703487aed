"""Module layout: no import cycles in the results package; developer tools outside the package."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "evalsuite"


def _module_name(path: Path) -> str:
    parts = path.resolve().relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, package: str) -> set[str]:
    """Every module of ``package`` that ``path`` imports, at module level or inside functions:
    ``import a.b``, ``from a.b import c`` (a.b, and a.b.c in case c is a module, as in ``from
    evalsuite.results import migrations``) and relative imports (``from . import x``)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                here = _module_name(path).split(".")
                anchor = here[: len(here) - node.level + (path.stem == "__init__")]
                base = ".".join([*anchor, *([base] if base else [])])
            for name in (base, *(f"{base}.{a.name}" for a in node.names)):
                if name == package or name.startswith(package + "."):
                    found.add(name)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names
                         if a.name == package or a.name.startswith(package + "."))
    return found


def _cycles(package_dir: Path, package: str) -> list[list[str]]:
    graph = {f"{package}.{p.stem}": _imports(p, package) for p in package_dir.glob("*.py")
             if p.stem != "__init__"}
    cycles: list[list[str]] = []

    def visit(node: str, stack: list[str]) -> None:
        for nxt in graph.get(node, ()):
            if nxt in stack:
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt in graph and len(stack) < len(graph):
                visit(nxt, [*stack, nxt])

    for start in graph:
        visit(start, [start])
    return cycles


def test_results_package_has_no_import_cycle():
    # older code: schema imported convert (inside the v0 migration) and convert imported
    # schema; then schema imported migrations lazily (``from evalsuite.results import
    # migrations`` in a module __getattr__), and migrations imports convert and schema
    assert _cycles(PACKAGE / "results", "evalsuite.results") == []


def test_the_cycle_check_sees_every_import_form(tmp_path):
    """``from package import module`` and relative imports are edges of the graph too."""
    pkg = tmp_path / "evalsuite" / "demo"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from evalsuite.demo import b\n")
    (pkg / "b.py").write_text("from .c import thing\n")
    (pkg / "c.py").write_text("import evalsuite.demo.a\nthing = 1\n")
    global PACKAGE
    saved, PACKAGE = PACKAGE, tmp_path / "evalsuite"
    try:
        assert _imports(pkg / "a.py", "evalsuite.demo") >= {"evalsuite.demo.b"}
        assert "evalsuite.demo.c" in _imports(pkg / "b.py", "evalsuite.demo")
        cycles = _cycles(pkg, "evalsuite.demo")
    finally:
        PACKAGE = saved
    assert ["evalsuite.demo.a", "evalsuite.demo.b", "evalsuite.demo.c", "evalsuite.demo.a"] in cycles


def test_run_type_lives_with_the_records():
    from evalsuite.results import Run, schema, store

    assert Run is schema.Run is store.Run and Run.__module__ == "evalsuite.results.schema"


def test_developer_tools_are_not_in_the_installed_package():
    for moved in ("tasks/oracle.py", "tasks/validate.py", "tasks/generate.py", "models/arm_fixtures.py"):
        assert not (PACKAGE / moved).exists(), moved
    for mod in (PACKAGE.rglob("*.py")):
        assert "tools" not in {m.split(".")[0] for m in _imports(mod, "tools")}, mod


def test_code_execution_opt_in_travels_in_the_run_config(monkeypatch):
    from evalsuite.tasks import code_exec

    monkeypatch.delenv(code_exec.ALLOW_ENV, raising=False)
    assert not code_exec.execution_confirmed()
    with code_exec.confirmed_for_run(True):
        assert code_exec.execution_confirmed()
        code_exec.require_execution_confirmed("a test program")
    assert not code_exec.execution_confirmed()
    import os

    assert code_exec.ALLOW_ENV not in os.environ  # nothing written to the environment


def test_data_dir_travels_in_the_task_metadata(monkeypatch):
    from conftest import FIXTURES

    from evalsuite.tasks import data
    from evalsuite.tasks.registry import task_manager

    monkeypatch.delenv(data.DATA_DIR_ENV, raising=False)
    assert len(data.load_gsm8k(evalsuite_data_dir=str(FIXTURES / "data"))["test"]) > 0
    tm = task_manager(metadata={data.DATA_DIR_META: str(FIXTURES / "data")})
    task = tm.load(["llada_gsm8k"])["tasks"]["llada_gsm8k"]  # no env var: from the metadata
    assert len(task.dataset["test"]) > 0
