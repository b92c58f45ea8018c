"""The package's layers, read from its source: every import, lazy ones included, goes to the
module's own layer or a lower one, and the top-level parts import each other in no circle."""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import REPO

PACKAGE = REPO / "axondeepsynth"
LAYERS = [  # lowest first: each top-level part of the package, by what it may build on
    {"errors", "io", "strategies", "nets", "lightning_internals", "run_dir", "schema"},
    {"data", "detection", "translator_check", "findings"},  # files -> samples; scores of results
    {"morphometrics", "postprocess", "training"},  # measuring labels; the networks' training
    {"config", "validation", "moved"},  # the run's schema, its checks, the old layout's keys
    {"inference"},  # trained models applied to whole images
    {"pipeline"},  # the stages of a run
    {"run", "segment", "inspect", "report"},  # entry points
]


def part(module: str) -> str:
    """`axondeepsynth.data.layouts.bids` -> `data`."""
    return module.split(".")[1]


def imports(path: Path) -> set[str]:
    """Top-level parts of the package that `path` imports, anywhere in the file."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("axondeepsynth"):
            if node.module == "axondeepsynth":  # from axondeepsynth import io, report
                found |= {alias.name for alias in node.names}
            else:
                found.add(part(node.module))
        elif isinstance(node, ast.Import):
            found |= {part(a.name) for a in node.names if a.name.startswith("axondeepsynth.")}
    return found


def graph() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE).with_suffix("")
        if rel.parts == ("__init__",):
            continue
        name = rel.parts[0]
        edges.setdefault(name, set()).update(imports(path) - {name})
    return edges


def test_every_part_has_a_layer() -> None:
    assert set(graph()) == set().union(*LAYERS)


def test_imports_go_down_the_layers() -> None:
    layer = {name: i for i, names in enumerate(LAYERS) for name in names}
    upward = sorted(
        f"{a} (layer {layer[a]}) imports {b} (layer {layer[b]})"
        for a, deps in graph().items()
        for b in deps
        if layer[b] > layer[a]
    )
    assert upward == []


def test_no_import_circle_between_parts() -> None:
    edges = graph()
    state: dict[str, str] = {}

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = "open"
        for dep in sorted(edges.get(node, ())):
            if state.get(dep) == "open":
                return [*path, node, dep]
            if dep not in state and (circle := visit(dep, [*path, node])):
                return circle
        state[node] = "done"
        return None

    circles = [c for n in sorted(edges) if n not in state and (c := visit(n, []))]
    assert circles == []


def test_the_layer_check_sees_a_lazy_upward_import(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from axondeepsynth.training import translators\n")
    assert imports(module) == {"training"}


def test_segment_shares_inference_with_the_pipeline_not_its_stages() -> None:
    edges = graph()
    assert "inference" in edges["segment"] and "inference" in edges["pipeline"]
    assert "pipeline" not in edges["segment"]
