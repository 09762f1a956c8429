"""The shape of the package: no import circle, a maths core free of IO, networks and training, small modules.

Equations checked: none (this module checks how dlib is put together).
"""
from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "dlib"
#: The maths core: what the chapters derive, with nothing but tensors in and out.
CORE = ("schedules", "diffusion", "gaussian_chain", "objectives", "gaussian_mixture", "reverse", "langevin",
        "samplers")
#: What the core may not import: networks, training, files, metrics, exercises.
NOT_IN_CORE = ("nets", "nn_blocks", "train", "train_config", "run_folder", "checkpoint", "metrics", "data",
               "plotting", "provenance", "exercises", "config", "score_mlp")
MAX_LINES = 420


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """The dlib modules a file imports (``from . import x`` counts as importing ``dlib.x``)."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            if module.startswith("dlib"):
                found.add(module)
                found.update(f"{module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("dlib"))
    modules = {_module_name(p) for p in PACKAGE.rglob("*.py")}
    return {m for m in found if m in modules and m != name}


def _graph() -> dict[str, set[str]]:
    return {_module_name(p): _imports(p) for p in PACKAGE.rglob("*.py")}


def test_no_import_circle():
    graph = _graph()
    # a package's __init__ importing its own submodules is how packages work, not a circle
    edges = {m: {d for d in deps if not (m == d.rsplit(".", 1)[0])} for m, deps in graph.items()}
    state, stack = {}, []

    def visit(m):
        state[m] = "open"
        stack.append(m)
        for d in sorted(edges.get(m, ())):
            if state.get(d) == "open":
                raise AssertionError("import circle: " + " -> ".join(stack[stack.index(d):] + [d]))
            if d not in state:
                visit(d)
        stack.pop()
        state[m] = "done"

    for m in sorted(edges):
        if m not in state:
            visit(m)


@pytest.mark.parametrize("core", CORE)
def test_the_maths_core_imports_no_network_training_or_io(core):
    graph = _graph()
    members = [m for m in graph if m == f"dlib.{core}" or m.startswith(f"dlib.{core}.")]
    bad = {m: sorted(d for d in graph[m] if d.split(".")[1] in NOT_IN_CORE) for m in members}
    assert not any(bad.values()), bad
    for m in members:
        path = PACKAGE.joinpath(*m.split(".")[1:]).with_suffix(".py")
        path = path if path.is_file() else PACKAGE.joinpath(*m.split(".")[1:], "__init__.py")
        text = path.read_text()
        assert "open(" not in text and ".write_text(" not in text and ".read_text(" not in text, m


def test_modules_are_small():
    big = {str(p.relative_to(ROOT)): n for p in PACKAGE.rglob("*.py")
           if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not big, f"modules over {MAX_LINES} lines: {big}"


def test_the_circle_check_can_fail(monkeypatch):
    me = sys.modules[__name__]  # the check itself, on a made-up graph
    monkeypatch.setattr(me, "_graph", lambda: {"dlib.a": {"dlib.b"}, "dlib.b": {"dlib.a"}})
    with pytest.raises(AssertionError, match="circle"):
        me.test_no_import_circle()
