"""The import structure: no cycles, the twin never imports the learners, and every twin module imports
only from its own layer or the layers below it (the data flow of DESIGN.md)."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO

# Bottom to top. A module may import modules of its own layer and of the layers before it.
TWIN_LAYERS: tuple[tuple[str, ...], ...] = (
    ("twin", "twin.errors", "twin.validation", "twin.modalities", "twin.plugins", "twin.rt_backend"),
    ("twin.scenario",),  # configuration: what a scenario file may say
    ("twin.radio",),  # array, codebook and the RSRP measurement model
    ("twin.store",),  # the sample schema, HDF5 store, deployment and sensor readers
    ("twin.trace",),  # the ray-traced world: meshes, traffic, scene, channels
    ("twin.sensors",),  # camera, LiDAR, radar, GPS rendered from the traced world
    ("twin.replay",),  # recorded datasets into the store
    ("twin.dataset",),  # scenario -> store (generation), or whichever store an entry point asks for
    ("twin.loop",),  # drives, faults, environment, policies, metrics, evaluation
    ("twin.report", "twin.fidelity"),  # what people look at: tables, figures, twin-versus-real
    ("twin.cli", "twin.run", "twin.generate", "twin.compare", "twin.benchmarks", "twin.examples"),
)


def project_modules() -> dict[str, Path]:
    modules = {}
    for package in ("twin", "learners"):
        for path in sorted((REPO / package).rglob("*.py")):
            parts = list(path.relative_to(REPO).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join(parts)] = path
    return modules


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def imports_of(module: str, path: Path, modules: dict[str, Path]) -> Iterator[str]:
    """Project modules imported anywhere in `path` (function-level imports included: they still run)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            targets = [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for target in targets:
            resolved = _resolve(target, modules)
            if resolved and resolved != module:
                yield resolved


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    modules = project_modules()
    return {m: set(imports_of(m, p, modules)) for m, p in modules.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_analysis_sees_imports_and_cycles() -> None:
    modules = {"a": Path(), "a.b": Path(), "a.c": Path()}
    assert _resolve("a.b.Thing", modules) == "a.b" and _resolve("numpy", modules) is None
    assert _cycles({"a": set(), "a.b": {"a.c"}, "a.c": {"a.b"}}) == [["a.b", "a.c"]]
    assert _cycles({"a": {"a.b"}, "a.b": {"a.c"}, "a.c": set()}) == []


def test_no_import_cycles(graph: dict[str, set[str]]) -> None:
    assert _cycles(graph) == []


def test_the_twin_never_imports_the_learners(graph: dict[str, set[str]]) -> None:
    edges = sorted((m, t) for m, targets in graph.items() if m.startswith("twin") for t in targets)
    assert [(m, t) for m, t in edges if t.startswith("learners")] == []


def _layer(module: str) -> int:
    best, length = -1, -1
    for i, names in enumerate(TWIN_LAYERS):
        for name in names:
            if (module == name or module.startswith(name + ".")) and len(name) > length:
                best, length = i, len(name)
    assert best >= 0, f"{module}: in no layer of TWIN_LAYERS (add its folder there)"
    return best


def test_twin_imports_point_down_the_data_flow(graph: dict[str, set[str]]) -> None:
    upward = [
        f"{m} -> {t}"
        for m, targets in sorted(graph.items())
        if m.startswith("twin")
        for t in sorted(targets)
        if t.startswith("twin") and _layer(t) > _layer(m)
    ]
    assert upward == []
