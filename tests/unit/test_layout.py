"""The layout's directions: which area of the package may import which.

Read top to bottom as a file travels, the package is the leaves (errors, model, logs, metrics,
exit codes, config), the user's files (``files/``), finding them and judging them complete
(``watch/``), the files of state_dir (``state/``), the Procore client (``procore/``), one
file's way to Procore (``upload/``), telling a person (``alerts/``, on the leaves alone), the
running daemon (``engine/``) and the short commands beside it (``commands/``); ``cli``
parses and dispatches; ``emulator/`` is the local Procore stand-in, which nothing of the
daemon imports. An area imports only what lies before it: ``watch/``, ``files/`` and
``state/`` never the upload, the engine or the commands; ``procore/`` nothing of the
journal; ``commands/`` never the engine. Every import counts, those inside functions too.
Read from the source (``ast``): nothing is imported to check.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "daemon" / "procore_hotfolder"

LEAVES = {"errors", "model", "exitcodes", "logs", "metrics", "config"}
#: area -> the areas it may import (besides itself).
MAY_IMPORT: dict[str, set[str]] = {
    "errors": set(),
    "exitcodes": set(),
    "model": {"errors"},
    "config": {"errors"},
    "logs": {"errors", "model"},
    "metrics": {"errors", "model"},
    "files": LEAVES,
    "watch": LEAVES | {"files"},
    "state": LEAVES,
    "procore": LEAVES,
    "upload": LEAVES | {"files", "watch", "state", "procore"},
    # Told by the engine (phase 2 of issue 22), asked by check; knows nothing of the engine.
    "alerts": LEAVES,
    "commands": LEAVES | {"files", "watch", "state", "procore", "upload", "alerts"},
    "engine": LEAVES | {"files", "watch", "state", "procore", "upload", "alerts"},
    "cli": LEAVES | {"files", "watch", "state", "procore", "upload", "commands", "engine",
                     "alerts", "emulator", "__init__"},
    "__main__": {"cli"},
    "__init__": set(),
    "emulator": set(),
}


def _area(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _imports() -> Iterator[tuple[str, str, int]]:
    """(importing module, imported module, line) for every import of the package."""
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE.parent).with_suffix("")
        module = ".".join(relative.parts).removesuffix(".__init__")
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = ([f"{node.module}.{a.name}" for a in node.names]
                         if node.module == "procore_hotfolder" else [node.module])
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            for name in names:
                if name.split(".")[0] == "procore_hotfolder":
                    yield module, name, node.lineno


def test_every_area_is_known() -> None:
    areas = {_area(module) for module, _, _ in _imports()} | {
        _area(".".join(p.relative_to(PACKAGE.parent).with_suffix("").parts))
        for p in PACKAGE.rglob("*.py")}
    assert areas <= set(MAY_IMPORT), areas - set(MAY_IMPORT)


def test_imports_point_one_way() -> None:
    wrong = [f"{module} (line {line}) imports {name}"
             for module, name, line in _imports()
             if _area(module) != _area(name) and _area(name) not in MAY_IMPORT[_area(module)]
             and name != "procore_hotfolder.__version__"]
    assert wrong == []


@pytest.mark.parametrize(("module", "name", "allowed"), [
    ("procore_hotfolder.watch.writers", "procore_hotfolder.upload.uploader", False),
    ("procore_hotfolder.state.journal", "procore_hotfolder.watch.stability", False),
    ("procore_hotfolder.procore.api", "procore_hotfolder.state.journal", False),
    ("procore_hotfolder.commands.reporting", "procore_hotfolder.engine.scheduler", False),
    ("procore_hotfolder.engine.service", "procore_hotfolder.emulator.server", False),
    ("procore_hotfolder.upload.uploader", "procore_hotfolder.state.journal", True),
    ("procore_hotfolder.cli", "procore_hotfolder.engine.compose", True),
    ("procore_hotfolder.alerts.delivery", "procore_hotfolder.upload.holds", False),
    ("procore_hotfolder.engine.service", "procore_hotfolder.alerts.delivery", True),
], ids=["watch-upload", "state-watch", "procore-journal", "commands-engine", "daemon-emulator",
        "upload-state", "cli-engine", "alerts-upload", "engine-alerts"])
def test_the_rules_say_what_they_should(module: str, name: str, allowed: bool) -> None:
    """The table itself, on examples: a rule that let everything through would pass above."""
    assert (_area(name) in MAY_IMPORT[_area(module)]) is allowed


def test_the_tests_mirror_the_package() -> None:
    """Each unit-test folder is an area of the package, each of its files named after a
    module of that area (``test_<module>.py``; ``test_<area>.py`` for its ``__init__``)."""
    unit = Path(__file__).resolve().parent
    strays = []
    for test in unit.rglob("test_*.py"):
        folder = test.parent.relative_to(unit)
        if folder == Path("."):
            continue
        module = test.stem.removeprefix("test_")
        area = PACKAGE / folder
        if not ((area / f"{module}.py").exists() or (area / module).is_dir()
                or (module == area.name and (area / "__init__.py").exists())):
            strays.append(str(test.relative_to(unit)))
    assert strays == []
