"""The package layers: every import inside pipglr points down (or sideways within a layer).

Order, lowest first (also in ``pipglr/__init__.py``'s docstring):

0. ``image``: the shared top modules (layout, errors, settings, subids, runnerconfig,
   netsettings, chain, ...) and ``pipglr.guest`` — what the image carries;
1. ``pipglr.build``: computing and building the image;
2. ``pipglr.release``: publishing it, downstream triggers;
3. ``pipglr.ops``: the ``pipglr`` command and what it drives;
4. ``pipglr.bench``: benchmarks (drive an outer podman and build images).

Imports inside functions count too: a deferred import is still a dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "pipglr"
#: Host packages in layer order; anything else under pipglr/ is layer 0.
LAYERS = ("build", "release", "ops", "bench")
MODULES = sorted(str(p.relative_to(PACKAGE.parent)) for p in PACKAGE.rglob("*.py"))


def layer(dotted: str) -> int:
    """The layer of module ``pipglr.X[.Y]`` (0 for the shared modules and the guest)."""
    parts = dotted.split(".")
    return LAYERS.index(parts[1]) + 1 if len(parts) > 1 and parts[1] in LAYERS else 0


def imported(source: str) -> list[str]:
    """Every ``pipglr...`` module an import statement of ``source`` names."""
    names: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # `from pipglr import build` names a package; `from pipglr.x import f` a module.
            names += [f"{node.module}.{alias.name}" for alias in node.names]
    return [name for name in names if name.split(".")[0] == "pipglr"]


def test_the_layers_are_the_packages_there_are() -> None:
    """Each host package is in the order; no other subpackage but ``guest`` exists."""
    packages = {p.parent.name for p in PACKAGE.glob("*/__init__.py")}
    assert packages == {*LAYERS, "guest"}


@pytest.mark.parametrize("module", MODULES)
def test_imports_only_go_downwards(module: str) -> None:
    """A module imports from its own layer or a lower one, never from a higher one."""
    own = layer(module.removesuffix(".py").replace("/", "."))
    for name in imported((PACKAGE.parent / module).read_text()):
        assert layer(name) <= own, f"{module} (layer {own}) imports {name} (layer {layer(name)})"


def test_relative_imports_are_not_used() -> None:
    """The check above reads absolute imports only, so none may be relative."""
    for module in MODULES:
        tree = ast.parse((PACKAGE.parent / module).read_text())
        relative = [n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level]
        assert not relative, module
