"""The import contract of docs/CONTRIBUTING.md, checked on every module under ``tfod_tools/``.

The layer list and the arrows allowed between packages of one layer are read from the
"Layers" section of docs/CONTRIBUTING.md (the one place they are written). Every import counts:
module level, inside functions, under ``if TYPE_CHECKING:``, and ``importlib.import_module`` /
``__import__`` with a literal name. The tree is walked, so a new module is covered without any
change here. The rules:

- (a) an import points down the layers, or stays in its package, or follows an arrow listed for
  its layer;
- (b) no import cycle between modules;
- (c) only ``odapi/`` imports ``object_detection``;
- (d) TensorFlow (and its family: Keras, tf-slim, the API) is imported only inside functions (or
  under ``if TYPE_CHECKING:``), and only in ``odapi/``.
- (e) ``apache_beam`` is imported only under ``beam/``, and ``cli/`` imports ``beam`` only inside
  functions (a command with ``--beam``), so ``tfod`` works without the beam extra.

A failure names the importing file, line, module and the rule it breaks.
"""

from __future__ import annotations

import ast
import functools
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "tfod_tools"
CONTRIBUTING = ROOT / "docs" / "CONTRIBUTING.md"

#: Top-level modules of the TensorFlow family: each import loads TensorFlow (seconds, GBs).
TF_FAMILY = frozenset({"tensorflow", "tf_keras", "keras", "tf_slim", "tensorflow_io", "official"})
OBJECT_DETECTION = "object_detection"
#: The optional Beam extra: imported only under ``beam/``, which the CLI imports lazily (rule (e)).
APACHE_BEAM = "apache_beam"
BEAM = "beam"
#: The one unit that may import the TF family and ``object_detection`` (CONTRIBUTING.md, layer 5).
ODAPI = "odapi"


@dataclass(frozen=True)
class Import:
    """One import statement's target, as seen from the importing module."""

    module: str  # the importing module, dotted
    path: str  # its file, relative to the repository root
    line: int
    target: str  # the imported module, dotted (a tfod_tools module resolved to the deepest that exists)
    in_function: bool
    type_checking: bool

    def where(self) -> str:
        return f"{self.path}:{self.line}: {self.module} imports {self.target}"


@dataclass(frozen=True)
class Contract:
    """What CONTRIBUTING.md says: the layer of each unit, and the arrows allowed within a layer."""

    layers: Mapping[str, int]  # unit -> layer number (1 is the top)
    arrows: Mapping[str, frozenset[str]]  # unit -> units of its own layer it may import


def unit(module: str) -> str:
    """The package or top-level module a ``tfod_tools`` module belongs to (``__init__``: the root)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def read_contract(text: str) -> Contract:
    """Parse the "Layers" section: numbered items naming `tfod_tools/...` paths; `- `a` -> `b`` arrows."""
    match = re.search(r"^## Layers.*?$(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert match, f"{CONTRIBUTING}: no '## Layers' section to read the layer list from"
    section = match.group(1)
    layers: dict[str, int] = {}
    for number, body in re.findall(r"^(\d+)\. (.*?)(?=^\d+\. |^\S|\Z)", section, re.M | re.S):
        for name in re.findall(r"`tfod_tools/([A-Za-z_]\w*)(?:/|\.py)`", body):
            layers[name] = int(number)
    arrows: dict[str, frozenset[str]] = {}
    for source, rest in re.findall(r"^- `(\w+)` -> (.*)$", section, re.M):
        arrows[source] = frozenset(re.findall(r"`(\w+)`", rest))
    assert layers, f"{CONTRIBUTING}: the Layers section lists no `tfod_tools/...` paths"
    return Contract(layers, arrows)


def _literal_import_call(node: ast.Call) -> str | None:
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
    if name not in ("import_module", "__import__") or not node.args:
        return None
    first = node.args[0]
    return first.value if isinstance(first, ast.Constant) and isinstance(first.value, str) else None


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports_of(module: str, source: str, path: str, is_package: bool, known: set[str]) -> Iterator[Import]:
    """Every import in ``source`` (see the module docstring), relative ones resolved."""

    def resolve(node: ast.ImportFrom) -> list[str]:
        if node.level:
            base_parts = module.split(".") if is_package else module.split(".")[:-1]
            base_parts = base_parts[: len(base_parts) - (node.level - 1)]
            base = ".".join(base_parts + ([node.module] if node.module else []))
        else:
            base = node.module or ""
        # `from pkg import sub` imports the module pkg.sub where it exists, else a name from pkg
        return [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]

    def walk(node: ast.AST, in_function: bool, type_checking: bool) -> Iterator[Import]:
        for child in ast.iter_child_nodes(node):
            func = in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
            targets: list[str] = []
            line = 0
            if isinstance(child, ast.Import):
                targets, line = [a.name for a in child.names], child.lineno
            elif isinstance(child, ast.ImportFrom):
                targets, line = resolve(child), child.lineno
            elif isinstance(child, ast.Call) and (literal := _literal_import_call(child)):
                targets, line = [literal], child.lineno
            for target in dict.fromkeys(targets):
                yield Import(module, path, line, target, func, type_checking)
            if isinstance(child, ast.If) and _is_type_checking(child.test):
                for stmt in child.body:
                    yield from walk(ast.Module(body=[stmt], type_ignores=[]), func, True)
                for stmt in child.orelse:
                    yield from walk(ast.Module(body=[stmt], type_ignores=[]), func, type_checking)
            else:
                yield from walk(child, func, type_checking)

    yield from walk(ast.parse(source, filename=path), False, False)


def collect(sources: Mapping[str, tuple[str, str, bool]]) -> list[Import]:
    """``{module: (source, path, is_package)}`` -> every import of every module."""
    known = set(sources)
    return [
        imp
        for module, (source, path, is_package) in sorted(sources.items())
        for imp in imports_of(module, source, path, is_package, known)
    ]


def tree_sources(root: Path = ROOT) -> dict[str, tuple[str, str, bool]]:
    return {
        module_name(path, root): (
            path.read_text(encoding="utf-8"),
            str(path.relative_to(root)),
            path.name == "__init__.py",
        )
        for path in sorted((root / PACKAGE).rglob("*.py"))
    }


def _ours(target: str) -> bool:
    return target == PACKAGE or target.startswith(PACKAGE + ".")


def layer_violations(imports: Iterable[Import], contract: Contract) -> list[str]:
    """Rule (a), plus: every unit has a layer."""
    out: list[str] = []
    for imp in imports:
        if not _ours(imp.target):
            continue
        src, dst = unit(imp.module), unit(imp.target)
        for name in (src, dst):
            if name not in contract.layers:
                out.append(
                    f"{imp.where()}: {PACKAGE}/{name} has no layer (list it under '## Layers' in "
                    "docs/CONTRIBUTING.md)"
                )
        if src == dst or src not in contract.layers or dst not in contract.layers:
            continue
        have, want = contract.layers[src], contract.layers[dst]
        if want < have:
            out.append(
                f"{imp.where()}: upward import ({src} is layer {have}, {dst} is layer {want}; "
                "arrows point down only, docs/CONTRIBUTING.md)"
            )
        elif want == have and dst not in contract.arrows.get(src, frozenset()):
            allowed = ", ".join(sorted(contract.arrows.get(src, ()))) or "none"
            out.append(
                f"{imp.where()}: {src} -> {dst} within layer {have} is not an allowed arrow "
                f"({src} may import of its own layer: {allowed}; docs/CONTRIBUTING.md)"
            )
    return out


def cycles(imports: Iterable[Import]) -> list[str]:
    """Rule (b): each strongly connected set of modules, shown as one cycle with the lines."""
    graph: dict[str, dict[str, Import]] = {}
    for imp in imports:
        if _ours(imp.target) and imp.target != imp.module:
            graph.setdefault(imp.module, {}).setdefault(imp.target, imp)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def connect(node: str) -> None:  # Tarjan; the tree is shallow enough for recursion
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, {}):
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    out = []
    for component in components:
        members = set(component)
        start = component[0]
        # shortest way back to start inside the component
        paths: dict[str, list[Import]] = {start: []}
        frontier = [start]
        cycle: list[Import] = []
        while frontier and not cycle:
            nxt_frontier = []
            for node in frontier:
                for target, imp in sorted(graph.get(node, {}).items()):
                    if target == start:
                        cycle = [*paths[node], imp]
                        break
                    if target in members and target not in paths:
                        paths[target] = [*paths[node], imp]
                        nxt_frontier.append(target)
                if cycle:
                    break
            frontier = nxt_frontier
        steps = "; ".join(imp.where() for imp in cycle)
        out.append(f"import cycle between {', '.join(component)}: {steps}")
    return out


def tensorflow_violations(imports: Iterable[Import]) -> list[str]:
    """Rules (c) and (d)."""
    out: list[str] = []
    for imp in imports:
        top = imp.target.split(".")[0]
        home = unit(imp.module)
        if top == OBJECT_DETECTION and home != ODAPI:
            out.append(
                f"{imp.where()}: only {PACKAGE}/{ODAPI}/ imports {OBJECT_DETECTION} (docs/CONTRIBUTING.md)"
            )
        if top in TF_FAMILY | {OBJECT_DETECTION}:
            if home != ODAPI:
                out.append(
                    f"{imp.where()}: TensorFlow is imported only in {PACKAGE}/{ODAPI}/ (docs/CONTRIBUTING.md)"
                )
            elif not (imp.in_function or imp.type_checking):
                out.append(
                    f"{imp.where()}: at module level; TensorFlow is imported inside functions only "
                    "(docs/CONTRIBUTING.md)"
                )
    return out


def beam_violations(imports: Iterable[Import]) -> list[str]:
    """Rule (e): ``apache_beam`` only under ``beam/``; ``cli/`` imports ``beam`` inside functions only."""
    out: list[str] = []
    for imp in imports:
        home = unit(imp.module)
        if imp.target.split(".")[0] == APACHE_BEAM and home != BEAM:
            out.append(f"{imp.where()}: only {PACKAGE}/{BEAM}/ imports {APACHE_BEAM} (docs/CONTRIBUTING.md)")
        if _ours(imp.target) and unit(imp.target) == BEAM and home == "cli" and not imp.in_function:
            out.append(
                f"{imp.where()}: at module level; the CLI imports {PACKAGE}.{BEAM} inside a command only, "
                "so tfod runs without the beam extra (docs/CONTRIBUTING.md)"
            )
    return out


# --- the real tree ------------------------------------------------------------------------------------


@functools.cache
def tree() -> list[Import]:
    """Every import of the real tree, read once (plain functions, so a failure shows just its message)."""
    return collect(tree_sources())


@functools.cache
def contract() -> Contract:
    return read_contract(CONTRIBUTING.read_text(encoding="utf-8"))


def _report(problems: list[str]) -> str:
    return f"{len(problems)} import(s) break the contract:\n" + "\n".join(problems)


def test_every_module_is_read() -> None:
    files = {str(p.relative_to(ROOT)) for p in (ROOT / PACKAGE).rglob("*.py")}
    assert {imp.path for imp in tree()} <= files
    assert len(files) > 50  # the walk found the package, not an empty folder
    # imports inside functions are seen (TensorFlow is imported nowhere else)
    assert any(imp.in_function and imp.target == "tensorflow" for imp in tree())


def test_contract_names_every_unit() -> None:
    layers, arrows = contract().layers, contract().arrows
    units = {unit(module_name(p, ROOT)) for p in (ROOT / PACKAGE).rglob("*.py")}
    missing = sorted(units - set(layers))
    assert not missing, f"docs/CONTRIBUTING.md '## Layers' gives no layer to: {', '.join(missing)}"
    for source, targets in arrows.items():
        for target in targets:
            assert layers.get(source) == layers.get(target), (
                f"docs/CONTRIBUTING.md: the arrow {source} -> {target} is not within one layer"
            )


def test_imports_point_down_the_layers() -> None:
    problems = layer_violations(tree(), contract())
    assert not problems, _report(problems)


def test_no_import_cycles() -> None:
    problems = cycles(tree())
    assert not problems, _report(problems)


def test_tensorflow_and_the_api_only_in_odapi_inside_functions() -> None:
    problems = tensorflow_violations(tree())
    assert not problems, _report(problems)


def test_apache_beam_only_in_beam_and_lazily_from_the_cli() -> None:
    problems = beam_violations(tree())
    assert not problems, _report(problems)


# --- the checker itself, on made-up trees -----------------------------------------------------------

CONTRACT = read_contract(
    "## Layers\n1. `tfod_tools/cli/`\n2. `tfod_tools/demo/`, `tfod_tools/evaluation/`\n"
    "3. `tfod_tools/data/`\n4. `tfod_tools/odapi/`\n\n- `demo` -> `evaluation`\n## Rules\n"
)


def _fake(**modules: str) -> list[Import]:
    sources = {
        name: (text, name.replace(".", "/") + ("/__init__.py" if name.count(".") == 1 else ".py"), False)
        for name, text in modules.items()
    }
    return collect(sources)


def test_contract_is_read_from_the_markdown() -> None:
    assert dict(CONTRACT.layers) == {"cli": 1, "demo": 2, "evaluation": 2, "data": 3, "odapi": 4}
    assert dict(CONTRACT.arrows) == {"demo": frozenset({"evaluation"})}


def test_an_upward_import_inside_a_function_is_named() -> None:
    imports = _fake(
        **{"tfod_tools.odapi.x": "def f():\n    from tfod_tools.data.y import z\n", "tfod_tools.data.y": ""}
    )
    assert layer_violations(imports, CONTRACT) == [
        "tfod_tools/odapi/x.py:2: tfod_tools.odapi.x imports tfod_tools.data.y: upward import "
        "(odapi is layer 4, data is layer 3; arrows point down only, docs/CONTRIBUTING.md)"
    ]


def test_same_layer_imports_follow_the_listed_arrows() -> None:
    imports = _fake(
        **{
            "tfod_tools.demo.a": "import tfod_tools.evaluation.b\n",
            "tfod_tools.evaluation.b": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
            "    from tfod_tools.demo import a\n",
        }
    )
    (problem,) = layer_violations(imports, CONTRACT)
    assert problem.startswith(
        "tfod_tools/evaluation/b.py:3: tfod_tools.evaluation.b imports tfod_tools.demo.a: "
    )
    assert "evaluation -> demo within layer 2 is not an allowed arrow" in problem


def test_a_cycle_is_shown_with_its_lines() -> None:
    imports = _fake(
        **{
            "tfod_tools.data.a": "from . import b\n",
            "tfod_tools.data.b": "import os\n\n\ndef f():\n    import importlib\n"
            "    importlib.import_module('tfod_tools.data.a')\n",
            "tfod_tools.data.c": "from tfod_tools.data import a\n",
        }
    )
    assert cycles(imports) == [
        "import cycle between tfod_tools.data.a, tfod_tools.data.b: "
        "tfod_tools/data/a.py:1: tfod_tools.data.a imports tfod_tools.data.b; "
        "tfod_tools/data/b.py:6: tfod_tools.data.b imports tfod_tools.data.a"
    ]


def test_tensorflow_at_module_level_or_outside_odapi_is_named() -> None:
    imports = _fake(
        **{
            "tfod_tools.odapi.ok": "def f():\n    import tensorflow\n    from object_detection import x\n",
            "tfod_tools.odapi.top": "try:\n    import tf_keras\nexcept ImportError:\n    pass\n",
            "tfod_tools.data.bad": "def g():\n    from object_detection.utils import label_map_util\n",
        }
    )
    assert tensorflow_violations(imports) == [
        "tfod_tools/data/bad.py:2: tfod_tools.data.bad imports object_detection.utils: "
        "only tfod_tools/odapi/ imports object_detection (docs/CONTRIBUTING.md)",
        "tfod_tools/data/bad.py:2: tfod_tools.data.bad imports object_detection.utils: "
        "TensorFlow is imported only in tfod_tools/odapi/ (docs/CONTRIBUTING.md)",
        "tfod_tools/odapi/top.py:2: tfod_tools.odapi.top imports tf_keras: at module level; "
        "TensorFlow is imported inside functions only (docs/CONTRIBUTING.md)",
    ]


def test_a_module_without_a_layer_is_named() -> None:
    imports = _fake(**{"tfod_tools.newpkg.m": "from tfod_tools.data import model\n"})
    assert layer_violations(imports, CONTRACT) == [
        "tfod_tools/newpkg/m.py:1: tfod_tools.newpkg.m imports tfod_tools.data: tfod_tools/newpkg has no "
        "layer (list it under '## Layers' in docs/CONTRIBUTING.md)"
    ]


def test_apache_beam_outside_beam_or_beam_at_cli_module_level_is_named() -> None:
    imports = _fake(
        **{
            "tfod_tools.beam.ok": "import apache_beam as beam\n",
            "tfod_tools.data.bad": "def g():\n    from apache_beam.io import filesystems\n",
            "tfod_tools.cli.top": "from tfod_tools.beam import options\n\n\ndef f():\n"
            "    from tfod_tools.beam import io\n",
        }
    )
    assert beam_violations(imports) == [
        "tfod_tools/cli/top.py:1: tfod_tools.cli.top imports tfod_tools.beam: at module level; the CLI "
        "imports tfod_tools.beam inside a command only, so tfod runs without the beam extra "
        "(docs/CONTRIBUTING.md)",
        "tfod_tools/data/bad.py:2: tfod_tools.data.bad imports apache_beam.io: only tfod_tools/beam/ "
        "imports apache_beam (docs/CONTRIBUTING.md)",
    ]
