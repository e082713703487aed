"""Module layout: no import cycles in the results package; developer tools outside the package."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "evalsuite"


def _imports(path: Path, package: str) -> set[str]:
    """Every evalsuite module ``path`` imports, at module level or inside functions."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(package):
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith(package))
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
    # old code: schema imported convert (inside the v0 migration) and convert imported schema
    assert _cycles(PACKAGE / "results", "evalsuite.results") == []


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
