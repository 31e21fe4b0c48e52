"""The layout keeps the architecture: the domain never stands on the local supervisor."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "lambdapipe"
# the only modules that may start and stop local processes
SUPERVISOR_USERS = ("cli.py", "demo/")


def imported_modules(path: Path) -> set[str]:
    """Every module `path` imports, at any depth (imports inside functions count too)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_only_the_cli_and_the_demo_import_the_runtime() -> None:
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE).as_posix()
        if relative.startswith(("runtime/", *SUPERVISOR_USERS)):
            continue
        uses = sorted(m for m in imported_modules(path) if m.startswith("lambdapipe.runtime"))
        if uses:
            offenders.append(f"{relative}: {', '.join(uses)}")
    assert not offenders, "the runtime is a leaf; these modules import it:\n" + "\n".join(offenders)


def test_the_check_sees_imports_inside_functions(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from lambdapipe.runtime.stack import Stack\n")
    assert "lambdapipe.runtime.stack" in imported_modules(module)
