"""The layering rules and the module size limit, checked rather than remembered.

Dependency direction (docs/architecture.md): ``storage/`` imports nothing of ours but itself;
``api/`` and ``replication/`` import ``storage/`` and never each other; ``node/`` wires
everything and nothing imports ``node/``. Inside storage, the write path (``storage/*.py``) imports
neither of its two rooms above it: ``storage/sync/`` (what replication needs from the store) is
imported only by itself, ``storage/ops/``, ``replication/`` and ``node/``; ``storage/ops/``
(operator tools) only by itself and ``node/``, the composition root that runs them. The
command line (``node/cli/``) is imported only by itself and ``node/__main__.py``: the rest of
``node/`` does not depend on it. Imports are read with ``ast``, so an import inside a function
counts too.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("node", "api", "storage", "replication")
# Which of our top-level packages each package may import (itself always).
ALLOWED: dict[str, frozenset[str]] = {
    "storage": frozenset(),
    "api": frozenset({"storage"}),
    "replication": frozenset({"storage"}),
    "node": frozenset({"api", "storage", "replication"}),
}
# Rooms closed to the rest of their package, and who may import each besides itself.
ROOMS: dict[str, tuple[str, ...]] = {
    "storage.sync": ("storage.ops", "replication", "node"),
    "storage.ops": ("node",),
    "node.cli": ("node.__main__",),
}
MODULE_LINES_MAX = 600


def _modules() -> Iterator[Path]:
    for package in PACKAGES:
        yield from sorted((ROOT / package).rglob("*.py"))


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(source: str, importer: str) -> set[str]:
    """Absolute names of everything ``source`` (module ``importer``) imports."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against the importer's package
                package = importer.split(".")[: -node.level]
                base = ".".join([*package, base] if base else package)
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def layering_violations(importer: str, imported: set[str]) -> list[str]:
    """What ``importer`` may not import among ``imported`` (pure, so it can be tested)."""
    own = importer.split(".")[0]
    violations: list[str] = []
    reported: list[str] = []
    for name in sorted(imported):  # a parent sorts first: "from a.b import c" reports a.b once
        top = name.split(".")[0]
        if any(_within(name, parent) for parent in reported):
            continue
        reported_before = len(violations)
        room = next((room for room in ROOMS if _within(name, room)), None)
        if room is not None and not _may_enter(importer, room):
            violations.append(
                f"{importer} imports {name} ({room.replace('.', '/')} is closed to it)"
            )
        elif top in PACKAGES and top != own and top not in ALLOWED[own]:
            violations.append(f"{importer} imports {name}")
        if len(violations) > reported_before:
            reported.append(name)
    return violations


def _may_enter(importer: str, room: str) -> bool:
    return any(_within(importer, allowed) for allowed in (room, *ROOMS[room]))


def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def test_every_import_follows_the_layering() -> None:
    violations = []
    for path in _modules():
        importer = _module_name(path)
        violations += layering_violations(importer, imported_modules(path.read_text(), importer))
    assert violations == []


@pytest.mark.parametrize(
    ("importer", "source", "expected"),
    [
        ("storage.store", "from api.errors import S3Error", ["storage.store imports api.errors"]),
        (
            "storage.store",
            "import replication.client",
            ["storage.store imports replication.client"],
        ),
        ("api.app", "from replication import routes", ["api.app imports replication"]),
        ("replication.puller", "import api.sigv4", ["replication.puller imports api.sigv4"]),
        ("api.app", "from node.config import X", ["api.app imports node.config"]),
        ("storage.ops.gc", "def f():\n    import node.app\n", ["storage.ops.gc imports node.app"]),
        (
            "api.objects",
            "from storage.ops import gc",
            ["api.objects imports storage.ops (storage/ops is closed to it)"],
        ),
        (
            "storage.catalog",
            "from .ops.gc import run",
            ["storage.catalog imports storage.ops.gc (storage/ops is closed to it)"],
        ),
        (
            "storage.sync.apply",
            "from storage.ops import usage",
            ["storage.sync.apply imports storage.ops (storage/ops is closed to it)"],
        ),
        (
            "storage.catalog",
            "from storage.sync.feed import Change",
            ["storage.catalog imports storage.sync.feed (storage/sync is closed to it)"],
        ),
        (
            "api.objects",
            "from storage.sync import feed",
            ["api.objects imports storage.sync (storage/sync is closed to it)"],
        ),
        ("storage.ops.gc", "from storage.sync import retention", []),
        ("replication.puller", "from storage.sync.feed import Change", []),
        (
            "node.app",
            "from node.cli.repl import SERVE_RECORD",
            ["node.app imports node.cli.repl (node/cli is closed to it)"],
        ),
        ("node.__main__", "from node.cli.main import main", []),
        ("node.cli.ops", "from storage.ops import fsck", []),
        ("storage.ops.gc", "from storage import catalog", []),
        ("node.app", "from api.app import S3Dispatcher\nimport replication.routes", []),
        ("api.objects", "from storage.store import Store\nimport json", []),
    ],
)
def test_the_rule_catches_wrong_imports(importer: str, source: str, expected: list[str]) -> None:
    assert layering_violations(importer, imported_modules(source, importer)) == expected


def test_no_module_passes_the_size_limit() -> None:
    over = {}
    for path in _modules():
        lines = len(path.read_text().splitlines())
        relative = path.relative_to(ROOT).as_posix()
        if lines > MODULE_LINES_MAX:
            over[relative] = lines
    assert over == {}, f"modules over {MODULE_LINES_MAX} lines: {over}"


def test_the_architecture_doc_has_a_line_for_every_module() -> None:
    """docs/architecture.md describes the tree one module per row: a new module gets its row."""
    doc = (ROOT / "docs" / "architecture.md").read_text()
    missing = [
        relative
        for path in _modules()
        if path.name != "__init__.py"
        and f"`{(relative := path.relative_to(ROOT).as_posix())}`" not in doc
    ]
    assert missing == []
