"""The structure rules of DESIGN.md, enforced: layers point down (even inside functions), only
the HTTP layer, the CLI and the app factory know Flask, the domain is pure, no import cycle
between project modules, no function-local import of a project module, and importing `wsgi`
connects nothing. The contracts live in `.importlinter` (docs/architecture.md explains them).
"""

from __future__ import annotations

import ast
import shutil
import subprocess
from pathlib import Path

import grimp
import pytest

from tests.support.processes import ROOT, VENV_BIN

CONTRACTS = ("layers", "flask", "pure-domain")
# Deliberate lazy imports of heavy optional libraries: (file, module). Each carries a comment
# on the line above it that says why.
LAZY_IMPORTS = {("app/market/factory.py", "app.market.ccxt_source")}


def _lint_imports(cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(VENV_BIN / "lint-imports"), "--no-cache", "--config", ".importlinter"],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(cwd)},
    )


def _run(code: str) -> str:
    proc = subprocess.run(
        [str(VENV_BIN / "python"), "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "APP_ENV": "development"},
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_the_import_contracts_hold() -> None:
    proc = _lint_imports(ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"Contracts: {len(CONTRACTS)} kept, 0 broken." in proc.stdout


def _copy_of_the_project(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "app", tmp_path / "app", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / ".importlinter", tmp_path / ".importlinter")
    return tmp_path


def test_an_upward_import_inside_a_function_breaks_the_layers_contract(tmp_path: Path) -> None:
    root = _copy_of_the_project(tmp_path)
    (root / "app" / "engine" / "upward.py").write_text(
        "def sneaky() -> object:\n    from app.services import bots\n\n    return bots\n"
    )
    proc = _lint_imports(root)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Contracts: 2 kept, 1 broken." in proc.stdout
    assert "app.engine.upward -> app.services.bots" in proc.stdout


def test_flask_in_a_service_breaks_the_flask_contract(tmp_path: Path) -> None:
    root = _copy_of_the_project(tmp_path)
    (root / "app" / "services" / "webby.py").write_text("from flask import request\n")
    proc = _lint_imports(root)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Only the HTTP layer, the CLI and the app factory know Flask BROKEN" in proc.stdout
    assert "app.services.webby -> flask" in proc.stdout


def _cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(graph.modules):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.find_modules_directly_imported_by(root))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append(
                        (child, iter(sorted(graph.find_modules_directly_imported_by(child))))
                    )
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_no_import_cycle_between_project_modules() -> None:
    assert _cycles(grimp.build_graph("app", cache_dir=None)) == []


def test_the_cycle_finder_sees_a_cycle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pkg = tmp_path / "loopy"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from loopy import b\n")
    (pkg / "b.py").write_text("def f() -> None:\n    from loopy import a\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert _cycles(grimp.build_graph("loopy", cache_dir=None)) == [["loopy.a", "loopy.b"]]


def _function_local_imports(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for inner in ast.walk(node):
            if isinstance(inner, ast.ImportFrom):
                names = ["." * inner.level + (inner.module or "")]
            elif isinstance(inner, ast.Import):
                names = [alias.name for alias in inner.names]
            else:
                continue
            for name in names:
                if name.split(".")[0] in ("app", "config") or name.startswith("."):
                    found.append((inner.lineno, name))
    return sorted(set(found))


def test_no_function_local_imports_of_project_modules() -> None:
    offenders, lazy = [], []
    for path in sorted((ROOT / "app").rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        for line, module in _function_local_imports(path):
            if (rel, module) in LAZY_IMPORTS:
                lazy.append((path, line))
            else:
                offenders.append(f"{rel}:{line} imports {module} inside a function")
    assert offenders == []
    assert len(lazy) == len(LAZY_IMPORTS)
    for path, line in lazy:  # each deliberate lazy import says why, on the line above
        assert path.read_text().splitlines()[line - 2].strip().startswith("# lazy:")


def test_lower_layers_do_not_import_flask_at_run_time() -> None:
    lower = ["app.domain", "app.engine", "app.services", "app.store", "app.market", "app.jobs"]
    code = (
        "import pkgutil, importlib, sys\n"
        f"for pkg in {lower!r}:\n"
        "    mod = importlib.import_module(pkg)\n"
        "    for info in pkgutil.walk_packages(mod.__path__, pkg + '.'):\n"
        "        importlib.import_module(info.name)\n"
        "print(sorted(m for m in sys.modules if m == 'flask' or m.startswith('flask.')))\n"
    )
    assert _run(code) == "[]"


def test_importing_wsgi_connects_nothing_and_skips_ccxt_and_optuna() -> None:
    code = (
        "import threading, sys\n"
        "before = threading.active_count()\n"
        "import wsgi\n"
        "from app.store import db\n"
        "pool = db.get_engine().pool\n"
        "print('ccxt' in sys.modules, 'optuna' in sys.modules,"
        " threading.active_count() - before, pool.checkedout(), pool.checkedin())\n"
    )
    assert _run(code) == "False False 0 0 0"


def test_every_command_is_registered_under_its_own_name() -> None:
    """The CLI is registered lazily by name: each name must load the command it names."""
    from app.cli import COMMANDS, load_command

    for name, target in COMMANDS.items():
        assert load_command(target).name == name, target
