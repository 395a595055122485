"""The package's layers import nothing above them (DESIGN.md, "Architecture"; issue 15, item 1).

Every module of ``stereo_hand_mesh`` is parsed (never imported) and each of its
``stereo_hand_mesh.*`` imports, at module level or inside a function, is checked against the
rule: the library layers (``hand``, ``geometry``, ``render``, ``losses``, ``model``, ``data``,
``train``, ``runtime``, ``pipeline``) and the top-level support modules (``errors``,
``_check``, ...) import neither ``ros`` nor ``cli``, none of them but ``train`` itself
imports ``train``, and no layer from ``hand`` to ``data`` (DESIGN.md 1-5) imports ``pipeline``
(8). ``ros`` may import the library; ``cli`` may import anything.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

from conftest import REPO

PACKAGE = "stereo_hand_mesh"
PACKAGE_DIR = REPO / PACKAGE

#: Library layers, top (lowest) to bottom; DESIGN.md numbers them 1-8.
LIBRARY_LAYERS = (
    "hand",
    "geometry",
    "render",
    "losses",
    "model",
    "data",
    "train",
    "runtime",
    "pipeline",
)
#: Layers that must not import ``pipeline``: ``hand`` to ``data`` (DESIGN.md 1-5). ``train``,
#: ``runtime`` and ``pipeline`` itself may.
BELOW_PIPELINE = LIBRARY_LAYERS[: LIBRARY_LAYERS.index("data") + 1]
#: Packages above the library: no library module imports them.
APPLICATION_LAYERS = ("ros", "cli")

#: Known upward edges, each with the item that removes it: (importing module, imported module).
#: Anything not listed here fails; an entry allows exactly one (importer, imported module) pair.
#: Delete an entry as soon as its edge is gone, so that the edge cannot come back.
KNOWN_UPWARD_IMPORTS: dict[tuple[str, str], str] = {}


@dataclass(frozen=True)
class Import:
    """One ``stereo_hand_mesh.*`` import: who imports what, and where."""

    module: str  # the importing module, dotted
    where: str  # its file and the line of the import
    name: str  # the imported module, dotted
    names: tuple[str, ...] = ()  # what ``from name import ...`` takes from it

    def __str__(self) -> str:
        taken = f" ({', '.join(self.names)})" if self.names else ""
        return f"{self.where}: {self.module} imports {self.name}{taken}"


def module_name(path: Path) -> str:
    """``stereo_hand_mesh/pipeline/fit.py`` -> ``stereo_hand_mesh.pipeline.fit``."""
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def package_imports(
    source: str, module: str, filename: str, is_package: bool = False
) -> list[Import]:
    """Every import of ``stereo_hand_mesh.*`` in ``source``, at any depth (ast, no importing).

    Args:
        source: the module's text.
        module: its dotted name (resolves relative imports; names the importer).
        filename: where it lives, for the messages.
        is_package: whether it is a package's ``__init__``.
    """
    package = module if is_package else module.rpartition(".")[0]
    found: list[Import] = []
    for node in ast.walk(ast.parse(source, filename=filename)):
        where = f"{filename}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Import):
            found += [Import(module, where, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the importing package
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                origin = ".".join(base + ([node.module] if node.module else []))
            else:
                origin = node.module or ""
            if origin == PACKAGE:  # ``from stereo_hand_mesh import ros`` imports a subpackage
                found += [Import(module, where, f"{PACKAGE}.{a.name}") for a in node.names]
            else:
                found.append(Import(module, where, origin, tuple(a.name for a in node.names)))
    return [imp for imp in found if imp.name == PACKAGE or imp.name.startswith(PACKAGE + ".")]


def layer_of(dotted: str) -> str | None:
    """The first component below the package (``stereo_hand_mesh.ros.sync`` -> ``ros``)."""
    parts = dotted.split(".")
    return parts[1] if len(parts) > 1 else None


def is_upward(imp: Import) -> bool:
    """Whether ``imp`` breaks the layer rule."""
    source, target = layer_of(imp.module), layer_of(imp.name)
    if source in APPLICATION_LAYERS:  # ros and cli sit on top of the library
        return False
    # ``source`` is a library layer or a top-level support module (errors, _check, ...).
    if target in APPLICATION_LAYERS:
        return True
    if target == "pipeline" and source in BELOW_PIPELINE:
        return True
    return target == "train" and source != "train"


def all_imports() -> list[Import]:
    """The imports of every module of the package."""
    return [
        imp
        for path in sorted(PACKAGE_DIR.rglob("*.py"))
        for imp in package_imports(
            path.read_text(),
            module_name(path),
            str(path.relative_to(REPO)),
            is_package=path.name == "__init__.py",
        )
    ]


def test_every_subpackage_has_a_layer():
    """A new subpackage must be placed in the rule before the rule can check it."""
    subpackages = {p.parent.name for p in PACKAGE_DIR.glob("*/__init__.py")}
    unplaced = subpackages - set(LIBRARY_LAYERS) - set(APPLICATION_LAYERS)
    assert not unplaced, f"add {sorted(unplaced)} to LIBRARY_LAYERS or APPLICATION_LAYERS"


def test_the_walk_sees_imports_at_every_depth():
    imports = all_imports()
    assert len({imp.module for imp in imports}) > 50, "too few modules; did the package move?"
    # Module level, and inside a function body (cli imports its subcommands lazily).
    assert any(imp.module == f"{PACKAGE}.pipeline.fit" for imp in imports)
    assert any(
        imp.module == f"{PACKAGE}.cli" and imp.name == f"{PACKAGE}.cli.synth" for imp in imports
    )


def test_no_layer_imports_a_layer_above_it():
    upward = [imp for imp in all_imports() if is_upward(imp)]
    unexpected = [imp for imp in upward if (imp.module, imp.name) not in KNOWN_UPWARD_IMPORTS]
    assert not unexpected, "upward imports (DESIGN.md, Architecture):\n" + "\n".join(
        f"  {imp}" for imp in unexpected
    )


def test_the_rule_flags_upward_imports():
    """The checker itself: each forbidden kind of edge is reported, allowed ones are not."""
    cases = [
        ("stereo_hand_mesh.pipeline.x", "import stereo_hand_mesh.ros.messages\n", True),
        ("stereo_hand_mesh.data.x", "def f():\n    from stereo_hand_mesh.cli import main\n", True),
        (
            "stereo_hand_mesh.runtime.x",
            "from stereo_hand_mesh.train.common import NetworkPass\n",
            True,
        ),
        ("stereo_hand_mesh.model.x", "from stereo_hand_mesh import train\n", True),
        ("stereo_hand_mesh.pipeline.x", "from ..ros import sync\n", True),
        ("stereo_hand_mesh.errors", "from stereo_hand_mesh.ros import sync\n", True),
        (
            "stereo_hand_mesh.data.x",
            "def f():\n    from stereo_hand_mesh.pipeline.locator import locate_hand\n",
            True,
        ),
        ("stereo_hand_mesh.model.x", "from ..pipeline import locator\n", True),
        (
            "stereo_hand_mesh.train.x",
            "from stereo_hand_mesh.train.common import hand_topology\n",
            False,
        ),
        (
            "stereo_hand_mesh.train.x",
            "from stereo_hand_mesh.pipeline import PipelineSettings\n",
            False,
        ),
        (
            "stereo_hand_mesh.ros.x",
            "from stereo_hand_mesh.pipeline import PipelineSettings\n",
            False,
        ),
        (
            "stereo_hand_mesh.runtime.x",
            "from stereo_hand_mesh.pipeline.locator import locate_hand\n",
            False,
        ),
        ("stereo_hand_mesh.pipeline.x", "from stereo_hand_mesh.data import bags\n", False),
        (
            "stereo_hand_mesh.cli.x",
            "from stereo_hand_mesh.ros.system_bench import peak_rate\n",
            False,
        ),
    ]
    for module, source, expected in cases:
        imports = package_imports(source, module, "<case>")
        assert len(imports) == 1, (module, source, imports)
        assert is_upward(imports[0]) is expected, (module, source)
    (imp,) = package_imports(
        "\n\ndef f():\n    import stereo_hand_mesh.cli\n", "stereo_hand_mesh.data.x", "data/x.py"
    )
    assert str(imp) == "data/x.py:4: stereo_hand_mesh.data.x imports stereo_hand_mesh.cli"
