"""Every public name under src/rampup has a docstring (issue 6: "docstrings on every public
name"); this keeps it so."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "src" / "rampup"

Def = ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef


def _public(name: str) -> bool:
    return not name.startswith("_")


def _decorator_names(node: Def) -> set[str]:
    names = set()
    for dec in node.decorator_list:
        if isinstance(dec, ast.Name):
            names.add(dec.id)
        elif isinstance(dec, ast.Attribute):
            names.add(dec.attr)
    return names


def _skipped(node: Def) -> bool:
    decs = _decorator_names(node)
    return "overload" in decs or "setter" in decs or "deleter" in decs


def _walk(body: list[ast.stmt], prefix: str, out: list[str], path: Path) -> None:
    for node in body:
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            # Definitions under `if TYPE_CHECKING:` / try-except at module level count too.
            if isinstance(node, (ast.If, ast.Try)):
                for sub in (
                    getattr(node, "body", []),
                    getattr(node, "orelse", []),
                    getattr(node, "finalbody", []),
                ):
                    _walk(sub, prefix, out, path)
                for handler in getattr(node, "handlers", []):
                    _walk(handler.body, prefix, out, path)
            continue
        if not _public(node.name) or _skipped(node):
            continue
        qual = f"{prefix}.{node.name}"
        if ast.get_docstring(node) is None:
            kind = "class" if isinstance(node, ast.ClassDef) else "def"
            out.append(f"{path}:{node.lineno}: {kind} {qual}")
        if isinstance(node, ast.ClassDef):
            _walk(node.body, qual, out, path)


def missing(root: Path) -> list[str]:
    out: list[str] = []
    base = root.parent
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(base).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts.pop()
        modname = ".".join(parts)
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        module_public = all(_public(p) for p in parts) or parts[-1] == "__main__"
        if module_public and ast.get_docstring(tree) is None:
            out.append(f"{path}:1: module {modname}")
        _walk(tree.body, modname, out, path)
    return out


def test_every_public_name_has_a_docstring() -> None:
    """Public modules, classes, functions and methods all carry a docstring."""
    assert missing(ROOT) == []
