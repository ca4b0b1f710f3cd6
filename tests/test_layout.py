"""The package's shape: no import cycles between modules or between folders, arrows only downwards
through the layers and the analysis' stages, modules that read in one sitting (at most 400 lines,
and above 300 a sentence at the top saying why), one class per name, and ``import
scalestudy.analysis`` without Ray.

The import graph is read with ``ast`` from every module, imports inside functions and under
``TYPE_CHECKING`` included: a lazy import that dodges a cycle is still a cycle.
"""

import ast
import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "scalestudy"

# Bottom first. A module may import modules of its own layer and of the layers below.
LAYERS = [
    ("leaves", ["scalestudy", "scalestudy.registry", "scalestudy.usercode", "scalestudy.schedules", "scalestudy.noise", "scalestudy.batching",
                "scalestudy.law", "scalestudy.nqm", "scalestudy.data", "scalestudy.models", "scalestudy.diagnostics", "scalestudy.optim",
                "scalestudy.tasks"]),
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
# The analysis by stage, first to last: a stage imports its own and earlier stages only.
ANALYSIS_STAGES = ["scalestudy.analysis.errors", "scalestudy.analysis.inputs", "scalestudy.analysis.fits",
                   "scalestudy.analysis.figures", "scalestudy.analysis.outputs", "scalestudy.analysis.pipeline",
                   "=scalestudy.analysis",
                   # build_law's and check_law's import paths from before the stages, kept for users' code
                   "=scalestudy.analysis.export", "=scalestudy.analysis.check"]
# No module is longer than this; above LONG_MODULE lines, its docstring says why in a sentence that
# gives its size to the hundred ("Its 300-odd lines are ..." or "A little over 300 lines on purpose: ..."):
# one that grows into the next hundred must say so again, or be split.
MAX_LINES = 400
LONG_MODULE = 300
_SIZE_SENTENCE = re.compile(r"[^.]*?\b(\d{3})(?:-odd)? lines\b[^.]*\.?")
_REASON_WORDS = 8


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
    order = [layer_of(name) for name in ("scalestudy.registry", "scalestudy.endpoints.base", "scalestudy.spec.load",
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
    # A trial's config, its record written and read back, its storage and its analysis: one home each;
    # the analysis by stage, ε* of a cell and the figures where their names say.
    for name in ("scalestudy.trial.config", "scalestudy.trial.record", "scalestudy.trial.readback",
                 "scalestudy.run.storage", "scalestudy.analysis", "scalestudy.analysis.inputs.mlflow_runs",
                 "scalestudy.analysis.fits.cell_optimum.frontier", "scalestudy.analysis.figures.style",
                 "scalestudy.analysis.outputs.law_file", "scalestudy.spec.search_names"):
        assert name in MODULES


def length_problem(name: str, text: str) -> str | None:
    """Why a module's length is not acceptable, or None: over MAX_LINES, or over LONG_MODULE without a
    docstring sentence that states its size to the hundred and a reason."""
    lines = text.count("\n")
    if lines > MAX_LINES:
        return f"{name}: {lines} lines (at most {MAX_LINES}: split it)"
    if lines <= LONG_MODULE:
        return None
    docstring = " ".join((ast.get_docstring(ast.parse(text)) or "").split())
    for sentence in _SIZE_SENTENCE.finditer(docstring):
        if int(sentence.group(1)) == lines // 100 * 100 and len(sentence.group(0).split()) >= _REASON_WORDS:
            return None
    return (f"{name}: {lines} lines and no docstring sentence saying why (e.g. \"Its {lines // 100 * 100}-odd "
            "lines are ... because ...\"), or split it")


def test_the_length_check_can_fail():
    body = "x = 1\n" * 320
    assert length_problem("m", '"""Short."""\n' + body)  # long, no reason
    assert length_problem("m", '"""A module.\n\nIts 300-odd lines are one estimator, kept in one file on purpose."""\n'
                          + body) is None
    assert length_problem("m", '"""A module.\n\nIts 200-odd lines are one estimator, kept in one file on purpose."""\n'
                          + body)  # the stated size is stale
    assert length_problem("m", '"""It has 300 lines."""\n' + body)  # a size, no reason
    assert length_problem("m", '"""Its 400-odd lines are one estimator, kept in one file on purpose."""\n'
                          + "x = 1\n" * 420)  # over the hard limit whatever it says
    assert length_problem("m", '"""Short."""\n' + "x = 1\n" * 290) is None


def test_modules_read_in_one_sitting():
    problems = [problem for name, path in MODULES.items() if (problem := length_problem(name, path.read_text()))]
    assert not problems, "\n".join(problems)


def folder_cycles(graph: dict[str, set[str]], packages: set[str]) -> list[list[str]]:
    """Cycles between the folders of each package: inside package P, a module of P counts as itself
    and a module of a subfolder of P as that subfolder, so an arrow into a subfolder and one back out of
    it (spec/ → search/ → trial/ → spec/) is a cycle even when no two modules form one."""
    found = []
    for package in sorted(packages):
        def node(name: str) -> str | None:
            if not name.startswith(package + "."):
                return None
            return f"{package}.{name[len(package) + 1:].split('.')[0]}"

        folders: dict[str, set[str]] = defaultdict(set)
        for name, targets in graph.items():
            source = node(name)
            if source is None:
                continue
            folders[source]
            for target in targets:
                end = node(target)
                if end is not None and end != source:
                    folders[source].add(end)
                    folders[end]
        found += cycles(dict(folders))
    return found


def test_the_folder_cycle_finder_finds_cycles():
    graph = {"p.a.x": {"p.b.y"}, "p.b.y": {"p.c"}, "p.c": {"p.a.z"}, "p.a.z": set()}  # no module cycle
    assert cycles(graph) == []
    assert folder_cycles(graph, {"p", "p.a", "p.b"}) == [["p.a", "p.b", "p.c", "p.a"]]


def test_no_import_cycles_between_folders():
    packages = {name for name, path in MODULES.items() if path.name == "__init__.py"}
    found = folder_cycles(GRAPH, packages)
    assert not found, "\n".join(" → ".join(cycle) for cycle in found)


def test_the_analysis_runs_by_stage():
    def stage(name: str) -> int:
        for index, prefix in enumerate(ANALYSIS_STAGES):
            exact = prefix.startswith("=")
            prefix = prefix.lstrip("=")
            if name == prefix or (not exact and name.startswith(prefix + ".")):
                return index
        raise AssertionError(f"{name} is in no stage of the analysis: add it to ANALYSIS_STAGES")

    analysis = [name for name in MODULES if name.startswith("scalestudy.analysis")]
    backwards = [f"{name} imports {target}" for name in analysis for target in sorted(GRAPH[name])
                 if target.startswith("scalestudy.analysis") and stage(target) > stage(name)]
    assert not backwards, "\n".join(backwards)


def test_one_class_per_name():
    """Two public classes with one name mean two things under one word (and a reader imports the wrong one)."""
    homes = defaultdict(list)
    for name, path in MODULES.items():
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
                homes[node.name].append(name)
    twice = {cls: names for cls, names in homes.items() if len(names) > 1}
    assert not twice, twice


def test_every_module_imports_and_analysis_starts_no_ray():
    code = ("import importlib, sys\n"
            f"names = {sorted(MODULES)!r}\n"
            "import scalestudy.analysis, scalestudy.trial.record, scalestudy.spec\n"
            "assert not [m for m in sys.modules if m == 'ray' or m.startswith('ray.')], 'analysis imported ray'\n"
            "for name in names:\n"
            "    importlib.import_module(name)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
