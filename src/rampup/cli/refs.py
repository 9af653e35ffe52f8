"""``rampup refs PATH... --flags FILE [--json]``: flag hygiene for a code base.

Scans Python files (with ``ast``) and templates (with regular expressions) for the flag keys
the code reads, and reports:

* keys read but not defined in the flag file (a typo serves the default forever): exit 1,
  so the command can gate CI;
* flags defined but never read outside tests (dead flags);
* flags that serve one variant to everyone (fully rolled out) or are killed: ready to remove.

What counts as a read: ``<...flags>.enabled/variant/value/decision("key")`` (any receiver
whose name contains "flag": ``rampup.flags``, ``g.flags``, ``request.state.flags``),
``flag_required("key")``, Django's ``{% flag "key" %}`` / ``{% flag_value "key" %}`` /
``{% flag_variant "key" %}``, ``flags.enabled('key')`` in Jinja; in tests,
``@pytest.mark.flag_variants("key")``, ``override_flags({"key": ...})`` and
``rampup_flags.force("key", ...)``. A read through another receiver (``f.enabled("key")``)
counts when the key is defined, and is never reported as a typo.

Tests may define flags of their own, outside the flag file: the keys of a dict literal given
to ``snapshot_from({...})`` or ``bound_flags({...}, ...)`` (or its ``"flags"`` table). Reads
of those keys in test files are not typos; reads in application code still are, since
production serves the flag file.
"""

from __future__ import annotations

import argparse
import ast
import difflib
import os
import re
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..engine import Snapshot
from ..model import Flag, Rule
from . import CommandError
from ._cleanup import as_json, lives
from ._common import add_env, emit_json, load_file, parse_at

PY_SUFFIXES = frozenset({".py"})
TEMPLATE_SUFFIXES = frozenset({".html", ".htm", ".jinja", ".jinja2", ".j2", ".txt", ".djhtml"})
#: Larger files are generated or vendored: skipped.
MAX_FILE = 2 * 1024 * 1024
_SKIP_DIRS = frozenset({"__pycache__", "node_modules", "site-packages"})

_READS = frozenset({"enabled", "variant", "value", "decision"})
_GUARDS = frozenset({"flag_required", "require_flag"})
#: rampup.testing helpers whose first argument may be a dict literal defining flags
_DEFINERS = frozenset({"snapshot_from", "bound_flags"})
_KEY = r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}"
_TEMPLATE = re.compile(
    rf"""\{{%-?\s*flag(?:_value|_variant)?\s+(['"])(?P<tag>{_KEY})\1"""
    rf"""|\b\w*flags\.(?:enabled|variant|value|decision)\(\s*(['"])(?P<read>{_KEY})\3"""
    rf"""|\b(?:flag_required|require_flag)\(\s*(['"])(?P<guard>{_KEY})\5"""
)


@dataclass(frozen=True, slots=True)
class Ref:
    """One place the code reads a flag key."""

    key: str
    file: str
    line: int
    #: "code", "template", "test", or "test-defined" (a flag a test defines for itself)
    kind: str
    #: False for reads through a receiver that may not be rampup's (never reported as typos)
    sure: bool = True

    def where(self) -> str:
        """The location as ``file:line``."""
        return f"{self.file}:{self.line}"


def register(sub: Any) -> None:
    """Add the ``refs`` command to the ``rampup`` subparsers."""
    p = sub.add_parser(
        "refs",
        help="find flag keys read in code: typos, dead flags, flags ready to remove",
        description="Scan Python files and templates for flag reads. Exit 1 if the code reads "
        "a key the flag file does not define.",
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="files or directories to scan")
    p.add_argument("--flags", required=True, metavar="FILE", help="the flag file")
    p.add_argument("--at", help="judge ramps at this ISO 8601 time instead of now")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument(
        "--killed-days",
        type=int,
        default=30,
        metavar="N",
        help="a flag killed this many days ago (per git blame) is a deletion candidate (30)",
    )
    add_env(p)
    p.set_defaults(run=run)


# -- scanning --------------------------------------------------------------------------------
def iter_files(paths: list[str]) -> Iterator[tuple[Path, Path]]:
    """(path, path relative to the PATH argument) of the Python files and templates under
    ``paths``, skipping hidden directories and virtualenvs."""
    for raw in paths:
        root = Path(raw)
        if root.is_file():
            yield root, Path(root.name)
            continue
        if not root.is_dir():
            raise CommandError(f"{raw}: no such file or directory", 2)
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(
                d
                for d in dirnames
                if not d.startswith(".")
                and d not in _SKIP_DIRS
                and not os.path.exists(os.path.join(dirpath, d, "pyvenv.cfg"))
            )
            for name in sorted(filenames):
                if Path(name).suffix in PY_SUFFIXES | TEMPLATE_SUFFIXES:
                    path = Path(dirpath, name)
                    yield path, path.relative_to(root)


def _is_test_file(rel: Path) -> bool:
    name = rel.name
    return (
        name.startswith("test_")
        or name.endswith("_test.py")
        or name == "conftest.py"
        or "tests" in rel.parts[:-1]
        or "test" in rel.parts[:-1]
    )


def scan_file(path: Path, rel: Path | None = None) -> list[Ref]:
    """Every flag read in one file; ``rel`` (the path below the scanned directory) tells
    whether it is a test file."""
    try:
        if path.stat().st_size > MAX_FILE:
            return []
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    file = str(path)
    if path.suffix in PY_SUFFIXES:
        kind = "test" if _is_test_file(rel or Path(path.name)) else "code"
        try:
            tree = ast.parse(text, file)
        except (SyntaxError, ValueError):
            return _scan_text(text, file, kind)  # not Python 3 (or broken): best effort
        visitor = _Visitor(file, kind)
        visitor.visit(tree)
        return visitor.refs
    return _scan_text(text, file, "template")


def _scan_text(text: str, file: str, kind: str) -> list[Ref]:
    refs = []
    for m in _TEMPLATE.finditer(text):
        key = m.group("tag") or m.group("read") or m.group("guard")
        refs.append(Ref(key, file, text.count("\n", 0, m.start()) + 1, kind))
    return refs


def _dotted(node: ast.expr) -> str:
    """``request.state.flags`` for that attribute chain; "" for calls, subscripts, ..."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return ""
    parts.append(node.id)
    return ".".join(reversed(parts))


def _literal(node: ast.expr | None) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    return None


class _Visitor(ast.NodeVisitor):
    def __init__(self, file: str, kind: str) -> None:
        self.file = file
        self.kind = kind
        self.refs: list[Ref] = []

    def add(self, node: ast.expr, kind: str | None = None, sure: bool = True) -> None:
        key = _literal(node)
        if key is not None:
            self.refs.append(Ref(key, self.file, node.lineno, kind or self.kind, sure))

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        first = node.args[0] if node.args else None
        if first is None:  # flags.enabled(key="x"), flag_required(key="x")
            first = next((kw.value for kw in node.keywords if kw.arg == "key"), None)
        if isinstance(func, ast.Attribute):
            name = func.attr
            flaggy = "flag" in _dotted(func.value).rpartition(".")[2].lower()
        else:
            name = func.id if isinstance(func, ast.Name) else ""
            flaggy = False
        if name in _READS and isinstance(func, ast.Attribute) and first is not None:
            self.add(first, sure=flaggy)
        elif name in _GUARDS and first is not None:
            self.add(first)
        elif name == "flag_variants":
            for arg in node.args:
                self.add(arg, "test")
        elif name == "override_flags" and isinstance(first, ast.Dict):
            for k in first.keys:
                if k is not None:
                    self.add(k, "test")
        elif name == "force" and flaggy and first is not None:
            self.add(first, "test")
        elif name in _DEFINERS and isinstance(first, ast.Dict):
            self.add_definitions(first)
        self.generic_visit(node)

    def add_definitions(self, table: ast.Dict) -> None:
        """The flag keys of a dict given to snapshot_from/bound_flags (or of its "flags")."""
        for k, v in zip(table.keys, table.values, strict=True):
            if _literal(k) == "flags" and isinstance(v, ast.Dict):
                self.add_definitions(v)
                return
        for k in table.keys:
            if k is not None:
                self.add(k, "test-defined")


# -- judging the flag file ----------------------------------------------------------------------
def _serves(rule: Rule, default: str, now: float) -> set[str] | None:
    """The variants ``rule`` may serve at ``now``; None when it is not active (ramp not begun)."""
    if rule.serve is not None:
        return {rule.serve}
    assert rule.split is not None
    weights = rule.split.weights
    if rule.split.ramp:
        started = [step for step in rule.split.ramp if step.start.timestamp() <= now]
        if not started:
            return None
        weights = started[-1].weights
    served = {name for name, w in weights if w > 0}
    if rule.split.bucket_by != "key":
        served.add(default)  # subjects lacking that attribute get the default
    return served


def uniform_variant(flag: Flag, now: float) -> tuple[str, str] | None:
    """(variant, why) when ``flag`` serves one variant to everyone at ``now``, else None.

    Walks the rules the way the engine does: every active rule up to the first one that
    matches everyone (no segments, no conditions) may serve its variants; without such a
    rule, the default is served too.
    """
    if any(
        step.start.timestamp() > now
        for rule in flag.rules
        if rule.split is not None
        for step in rule.split.ramp
    ):
        return None  # a scheduled ramp step is still to come: not done, whatever it serves now
    served: set[str] = set()
    for i, rule in enumerate(flag.rules):
        variants = _serves(rule, flag.default, now)
        if variants is None:
            continue
        served |= variants
        if not rule.segments and not rule.conditions:
            if len(served) != 1:
                return None
            how = "a 100 % split" if rule.split is not None else "serving everyone"
            return served.pop(), f"rule {i} is {how}"
    served.add(flag.default)
    if len(served) != 1:
        return None
    return served.pop(), (
        "the default, no rules" if not flag.rules else "every rule serves the default"
    )


@dataclass
class Report:
    """The findings of one run."""

    files: int
    refs: dict[str, list[Ref]]
    undefined: dict[str, list[Ref]]
    dead: list[str]
    rolled_out: dict[str, tuple[str, str]]
    killed: dict[str, str]
    #: keys not in the flag file that tests define for themselves, with their test reads
    test_defined: dict[str, list[Ref]] = field(default_factory=dict)


def analyze(snapshot: Snapshot, refs: list[Ref], files: int, now: float) -> Report:
    """Match the reads against the flag file."""
    by_key: dict[str, list[Ref]] = {}
    undefined: dict[str, list[Ref]] = {}
    local = {r.key for r in refs if r.kind == "test-defined" and r.key not in snapshot.flags}
    test_defined: dict[str, list[Ref]] = {key: [] for key in sorted(local)}
    for ref in refs:
        if ref.kind == "test-defined":
            continue
        if ref.key in snapshot.flags:
            by_key.setdefault(ref.key, []).append(ref)
        elif ref.kind == "test" and ref.key in local:
            test_defined[ref.key].append(ref)
        elif ref.sure:
            undefined.setdefault(ref.key, []).append(ref)
    dead = [k for k in snapshot.flags if not any(r.kind != "test" for r in by_key.get(k, ()))]
    killed = {k: f.off_variant for k, f in snapshot.flags.items() if f.killed}
    rolled_out = {}
    for key, flag in snapshot.flags.items():
        if not flag.killed:
            uniform = uniform_variant(flag, now)
            if uniform is not None:
                rolled_out[key] = uniform
    return Report(files, by_key, undefined, dead, rolled_out, killed, test_defined)


# -- output ---------------------------------------------------------------------------------------
def run(args: argparse.Namespace) -> int:
    """Scan ``args.paths`` and print the report; 1 if the code reads an undefined key, else 0."""
    snapshot = load_file(args.flags, args.env)
    now = parse_at(args.at)
    files = list(iter_files(args.paths))
    refs = [ref for path, rel in files for ref in scan_file(path, rel)]
    when = time.time() if now is None else now
    report = analyze(snapshot, refs, len(files), when)
    life = lives(snapshot, args.flags, when, report.rolled_out, args.killed_days)
    if args.json:
        data = _json(report, snapshot, args.flags)
        data["flags"] = [{**as_json(x), "refs": data["refs"][x.key]} for x in life]
        emit_json(data)
    else:
        _print(report, snapshot, args.flags)
        candidates = [x for x in life if x.reasons]
        if candidates:
            print("\nDeletion candidates (owner: why; where read):")
        for x in candidates:
            where = ", ".join(r.where() for r in report.refs.get(x.key, [])[:5]) or "not read"
            print(f"  {x.key}  ({x.owner or 'no owner'}): {'; '.join(x.reasons)}; {where}")
    return 1 if report.undefined else 0


def _suggest(key: str, snapshot: Snapshot) -> str | None:
    close = difflib.get_close_matches(key, list(snapshot.flags), n=1)
    return close[0] if close else None


def _json(report: Report, snapshot: Snapshot, flags_file: str) -> dict[str, Any]:
    def refs(items: list[Ref]) -> list[dict[str, Any]]:
        return [{k: v for k, v in asdict(r).items() if k not in ("key", "sure")} for r in items]

    return {
        "ok": not report.undefined,
        "flags_file": flags_file,
        "files_scanned": report.files,
        "undefined": [
            {"key": k, "did_you_mean": _suggest(k, snapshot), "refs": refs(v)}
            for k, v in sorted(report.undefined.items())
        ],
        "dead": [{"key": k, "test_refs": refs(report.refs.get(k, []))} for k in report.dead],
        "rolled_out": [
            {"key": k, "variant": v, "why": why, "refs": refs(report.refs.get(k, []))}
            for k, (v, why) in report.rolled_out.items()
        ],
        "killed": [
            {"key": k, "variant": v, "refs": refs(report.refs.get(k, []))}
            for k, v in report.killed.items()
        ],
        "refs": {k: refs(report.refs.get(k, [])) for k in snapshot.flags},
        "test_defined": [{"key": k, "refs": refs(v)} for k, v in report.test_defined.items()],
    }


def _print(report: Report, snapshot: Snapshot, flags_file: str) -> None:
    def at(items: list[Ref]) -> str:
        shown = ", ".join(r.where() for r in items[:5])
        return shown + (f" (+{len(items) - 5} more)" if len(items) > 5 else "")

    total = sum(len(v) for v in report.refs.values())
    print(
        f"{flags_file}: {len(snapshot.flags)} flags; {report.files} files scanned, "
        f"{total} reads of defined flags"
    )
    if report.undefined:
        print("\nRead but not defined (a typo serves the default forever):")
        for key, items in sorted(report.undefined.items()):
            close = _suggest(key, snapshot)
            hint = f"  did you mean {close!r}?" if close else ""
            print(f"  {key}  at {at(items)}{hint}")
    if report.dead:
        print("\nDefined but never read (dead flags):")
        for key in report.dead:
            tests = report.refs.get(key, [])
            print(f"  {key}" + (f"  (only tests: {at(tests)})" if tests else ""))
    if report.rolled_out or report.killed:
        print("\nReady to remove (one variant for everyone: fully rolled out, or killed):")
        for key, (variant, why) in report.rolled_out.items():
            print(
                f"  {key}  {variant!r} for everyone ({why})"
                + (f"; read at {at(report.refs[key])}" if key in report.refs else "")
            )
        for key, variant in report.killed.items():
            print(
                f"  {key}  killed: {variant!r} for everyone"
                + (f"; read at {at(report.refs[key])}" if key in report.refs else "")
            )
    if report.test_defined:
        print("\nDefined by tests themselves (snapshot_from / bound_flags), not in the flag file:")
        for key, items in report.test_defined.items():
            print(f"  {key}" + (f"  read at {at(items)}" if items else ""))
    if report.refs:
        print("\nReads:")
        for key in snapshot.flags:
            if key in report.refs:
                print(f"  {key}  {at(report.refs[key])}")
    if not report.undefined:
        print("\nOK: every key read is defined.")
