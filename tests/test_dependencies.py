"""pyproject.toml declares what the code imports, and nothing it does not need."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: Declared but never imported by name: each is loaded by another package at run time.
LOADED_BY_NAME = {
    "aiosqlite": "SQLAlchemy's sqlite+aiosqlite driver",
    "cryptography": "pypdf's AES for encrypted PDFs",
    "lxml": 'BeautifulSoup\'s "lxml" parser',
    "jinja2": "FastAPI's Jinja2Templates",
    "python-multipart": "FastAPI's Form()",
}


def _name(requirement: str) -> str:
    return re.split(r"[\[<>=!~; ]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def _declared() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = [r for group in project["optional-dependencies"].values() for r in group]
    return {_name(r) for r in project["dependencies"] + extras}


def _imported_distributions() -> set[str]:
    modules: set[str] = set()
    for path in [
        *(ROOT / "copilot").rglob("*.py"),
        ROOT / "app.py",
        *ROOT.glob("migrations/**/*.py"),
    ]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                modules |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                modules.add(node.module.split(".")[0])
    third_party = modules - set(sys.stdlib_module_names) - {"copilot"}
    owners = packages_distributions()
    return {_name(d) for module in third_party for d in owners.get(module, [module])}


def test_every_imported_package_is_declared() -> None:
    undeclared = _imported_distributions() - _declared()
    assert undeclared == set()


def test_every_declared_package_is_imported_or_loaded_by_name() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = {_name(r) for r in project["dependencies"]}
    unused = runtime - _imported_distributions() - set(LOADED_BY_NAME)
    assert unused == set()


def test_the_product_does_not_import_its_test_and_bench_harness() -> None:
    """The socket.io chat client and serving() live in copilot.bench: only `copilot bench`
    (copilot/cli/bench.py) may import it."""
    allowed = {ROOT / "copilot" / "cli" / "bench.py"}
    importers = []
    for path in [*(ROOT / "copilot").rglob("*.py"), ROOT / "app.py"]:
        if path in allowed or (ROOT / "copilot" / "bench") in path.parents:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [alias.name for alias in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            if any(name == "copilot.bench" or name.startswith("copilot.bench.") for name in names):
                importers.append(str(path.relative_to(ROOT)))
    assert importers == []
