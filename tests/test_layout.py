"""The package's shape: no import cycles, arrows only downwards through the layers, modules that
read in one sitting, and ``import scalestudy.analysis`` without Ray.

The import graph is read with ``ast`` from every module, imports inside functions and under
``TYPE_CHECKING`` included: a lazy import that dodges a cycle is still a cycle.
"""

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "scalestudy"

# Bottom first. A module may import modules of its own layer and of the layers below.
LAYERS = [
    ("leaves", ["scalestudy", "scalestudy.registry", "scalestudy.usercode", "scalestudy.schedules", "scalestudy.noise",
                "scalestudy.batching",
                "scalestudy.law", "scalestudy.law_fields", "scalestudy.records", "scalestudy.data", "scalestudy.models",
                "scalestudy.diagnostics", "scalestudy.optim", "scalestudy.tasks",
                # The search registry alone: names → builders, imported lazily (the spec checks names).
                "=scalestudy.search"]),
    ("endpoints", ["scalestudy.endpoints"]),
    ("spec", ["scalestudy.spec"]),
    ("trial", ["scalestudy.trial"]),
    ("train and analysis", ["scalestudy.train", "scalestudy.analysis"]),
    ("search", ["scalestudy.search"]),
    ("run", ["scalestudy.run"]),
    # Tools on top of a study, and the two import paths Tune pickled into studies run before 0.2.
    ("tools", ["scalestudy.bench", "scalestudy.testing", "scalestudy.calibration", "scalestudy.reproductions",
               "=scalestudy.callbacks",
               "=scalestudy.progress"]),
    ("cli", ["scalestudy.cli"]),
]
# Above this many lines a module says why at its top (a docstring sentence with "lines").
LONG_MODULE = 300


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def imports_of(name: str) -> set[str]:
    """The scalestudy modules ``name`` imports (a package's ``from P import x`` counts as P.x when
    P.x is a module, else as P)."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base for alias in node.names]
        else:
            continue
        found.update(t for t in targets if t in MODULES and t != name)
    return found


GRAPH = {name: imports_of(name) for name in MODULES}


def layer_of(name: str) -> int:
    best, best_length = None, -1
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            exact = prefix.startswith("=")
            prefix = prefix.lstrip("=")
            matches = name == prefix if exact or prefix == "scalestudy" else (
                name == prefix or name.startswith(prefix + "."))
            if matches and len(prefix) + exact > best_length:
                best, best_length = index, len(prefix) + exact
    assert best is not None, f"{name} is in no layer: add it to LAYERS"
    return best


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The graph's cycles, one per back edge of a depth-first search (each as a path A → ... → A)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []
    found = []

    def visit(name: str) -> None:
        state[name] = 1
        path.append(name)
        for target in sorted(graph[name]):
            if state.get(target) == 1:
                found.append(path[path.index(target):] + [target])
            elif target not in state:
                visit(target)
        path.pop()
        state[name] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name)
    return found


def test_the_cycle_finder_finds_cycles():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_layers_are_read_as_meant():
    order = [layer_of(name) for name in ("scalestudy.search", "scalestudy.endpoints.base", "scalestudy.spec.load",
                                         "scalestudy.trial.config", "scalestudy.search.grid", "scalestudy.run.study",
                                         "scalestudy.cli")]
    assert order == sorted(order) and len(set(order)) == len(order)


def test_no_import_cycles():
    found = cycles(GRAPH)
    assert not found, "\n".join(" → ".join(cycle) for cycle in found)


def test_arrows_only_go_down_the_layers():
    upward = [f"{name} ({LAYERS[layer_of(name)][0]}) imports {target} ({LAYERS[layer_of(target)][0]})"
              for name, targets in GRAPH.items() for target in sorted(targets) if layer_of(target) > layer_of(name)]
    assert not upward, "\n".join(upward)


def test_the_middle_is_where_the_layout_says():
    # A trial's config, its record, its storage and its analysis: one home each.
    for name in ("scalestudy.trial.config", "scalestudy.trial.record", "scalestudy.run.storage",
                 "scalestudy.analysis"):
        assert name in MODULES


def test_long_modules_say_why():
    unexplained = []
    for name, path in MODULES.items():
        lines = path.read_text().count("\n")
        docstring = ast.get_docstring(ast.parse(path.read_text())) or ""
        if lines > LONG_MODULE and "lines" not in docstring:
            unexplained.append(f"{name}: {lines} lines")
    assert not unexplained, "\n".join(unexplained)


def test_every_module_imports_and_analysis_starts_no_ray():
    code = ("import importlib, sys\n"
            f"names = {sorted(MODULES)!r}\n"
            "import scalestudy.analysis, scalestudy.trial.record, scalestudy.spec\n"
            "assert not [m for m in sys.modules if m == 'ray' or m.startswith('ray.')], 'analysis imported ray'\n"
            "for name in names:\n"
            "    importlib.import_module(name)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
