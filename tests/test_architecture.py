"""Which way imports run (DESIGN.md): core code never imports the emulator, the emulator
never imports Siyu's database or domains, and siyu.wecom knows no domain."""

from __future__ import annotations

import ast
import gc
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "siyu"
DOMAINS = ("siyu.db", "siyu.tenancy", "siyu.customers", "siyu.intake", "siyu.notify", "siyu.jobs", "siyu.web")
# The command line and the demo sit on top of everything, emulator included.
TOP = {"cli.py", "demo.py"}


def _parse(source: str) -> ast.Module:
    # No garbage collection while CPython 3.11 builds the tree: a finalizer run in the middle
    # (an asyncio task an earlier test left, logging that it was destroyed) made it raise
    # "SystemError: AST constructor recursion depth mismatch" in a CI run.
    gc.disable()
    try:
        return ast.parse(source)
    finally:
        gc.enable()


def imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(_parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def modules(folder: str | None = None):
    root = SRC / folder if folder else SRC
    return [p for p in root.rglob("*.py") if "migrations" not in p.parts]


def test_core_never_imports_the_emulator():
    offenders = [
        str(p.relative_to(SRC))
        for p in modules()
        if "emulator" not in p.relative_to(SRC).parts
        and p.name not in TOP
        and any(m.startswith("siyu.emulator") for m in imports(p))
    ]
    assert offenders == []


def test_the_emulator_never_imports_siyus_database_or_domains():
    offenders = [
        (str(p.relative_to(SRC)), m) for p in modules("emulator") for m in imports(p) if m.startswith(DOMAINS)
    ]
    assert offenders == []


def test_wecom_knows_no_domain_and_no_database():
    offenders = [
        (str(p.relative_to(SRC)), m) for p in modules("wecom") for m in imports(p) if m.startswith(DOMAINS)
    ]
    assert offenders == []
