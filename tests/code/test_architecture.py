"""The shape of the code: no import cycles among the project's own modules (function-level imports
included), and a training command line whose ``--help`` loads none of the heavy libraries."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("serving", "training", "devtools", "scripts", "benchmarks")
TOP_LEVEL_MODULES = ("function_app",)
COMMANDS = (
    "eda", "train", "search", "evaluate", "export", "card", "synth", "feedback-pull", "score", "compare",
    "prior", "behaviour", "encoder-export", "cascade",
)  # fmt: skip
HEAVY = ("sklearn", "pandas", "matplotlib", "mlflow", "onnx", "rich", "scipy", "skl2onnx")


def project_modules() -> dict[str, Path]:
    """Dotted module name -> file, for every Python file of the project's own code."""
    modules = {
        name: REPO_ROOT / f"{name}.py" for name in TOP_LEVEL_MODULES if (REPO_ROOT / f"{name}.py").is_file()
    }
    for package in PACKAGES:
        for path in sorted((REPO_ROOT / package).rglob("*.py")):
            parts = path.relative_to(REPO_ROOT).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join(parts)] = path
    return modules


def imported_names(path: Path, module: str) -> set[str]:
    """Every module ``path`` imports, at any depth (functions and conditional blocks included);
    ``from a import b`` counts as ``a.b`` too, since ``b`` may be a module."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base if is_package else base[:-1]
                base = base[: len(base) - (node.level - 1)]
                source = ".".join([*base, node.module] if node.module else base)
            else:
                source = node.module or ""
            names.add(source)
            names.update(f"{source}.{alias.name}" for alias in node.names)
    return names


def import_graph() -> dict[str, set[str]]:
    """Module -> the project modules it imports."""
    modules = project_modules()
    graph = {}
    for name, path in modules.items():
        targets = {target for target in imported_names(path, name) if target in modules}
        graph[name] = targets - {name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a path ``[a, b, ..., a]``, or ``None`` when the graph is acyclic."""
    state: dict[str, str] = {}  # "active" while on the DFS stack, "done" once fully explored
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "active"
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == "active":
                return [*stack[stack.index(target) :], target]
            if target not in state and (cycle := visit(target)):
                return cycle
        stack.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_cycle_finder_finds_a_lazy_import_cycle(tmp_path):
    """The checker itself: a function-level import that closes a loop is a cycle."""
    first = tmp_path / "first.py"
    first.write_text("def later():\n    from second import thing\n")
    assert imported_names(first, "first") == {"second", "second.thing"}
    assert find_cycle({"first": {"second"}, "second": {"first"}}) == ["first", "second", "first"]
    assert find_cycle({"first": {"second"}, "second": set()}) is None


def test_no_import_cycles_among_project_modules():
    graph = import_graph()
    assert "training.cli" in graph and "serving.contract" in graph
    assert "training.export.families" in graph["training.modeling.candidates"]  # lazy imports are edges
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_training_help_lists_every_command_without_loading_heavy_libraries():
    environment = {key: value for key, value in os.environ.items() if key != "COLUMNS"}
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "training", "--help"],
        cwd=REPO_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    loaded = {
        line.split("|")[-1].strip().split(".")[0]
        for line in done.stderr.splitlines()
        if line.startswith("import time:")
    }
    assert "typer" in loaded  # the probe sees imports at all
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))
    listed = {line.split()[0] for line in done.stdout.split("Commands:")[1].splitlines() if line.strip()}
    assert set(COMMANDS) <= listed, sorted(set(COMMANDS) - listed)
    # Help is not cut at 80 columns: the longest summary stays on one line.
    longest = (
        "Compare candidate models on the validation split, pick and measure the winner, optionally export it."
    )
    assert longest in done.stdout


def test_serving_never_imports_the_training_stack():
    graph = import_graph()
    serving = [name for name in graph if name.split(".")[0] in ("serving", "function_app")]
    assert serving
    for name in serving:
        assert not {t for t in graph[name] if t.split(".")[0] in ("training", "benchmarks", "scripts")}, name
