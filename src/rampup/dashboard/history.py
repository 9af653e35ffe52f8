"""The store's versions as the page shows them: who wrote each, when, why, and what changed.

The diff compares two raw flag documents per flag and per field. Rules are compared in words
(``rule_text``), and a segment's listed keys only as a count, so no subject id reaches the page.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..config import load
from ..engine import Snapshot
from ..rule_text import rule_words, segment_words

__all__ = ["diff", "touches"]

_SCALARS = ("description", "default", "killed", "overridable", "salt")

# a document is loaded once per sha (history entries repeat across pages)
_loaded: dict[str, Snapshot] = {}


def _snapshot(sha: str, data: Mapping[str, Any]) -> Snapshot | None:
    snap = _loaded.get(sha)
    if snap is None:
        try:
            snap = load(data)
        except Exception:  # an old version the loader no longer accepts: show raw fields only
            return None
        if len(_loaded) > 64:
            _loaded.clear()
        _loaded[sha] = snap
    return snap


def _flags(data: Mapping[str, Any]) -> Mapping[str, Any]:
    flags = data.get("flags")
    return flags if isinstance(flags, Mapping) else {}


def _show(v: Any) -> str:
    if v is None:
        return "(unset)"
    if isinstance(v, bool):
        return "true" if v else "false"
    return repr(v) if isinstance(v, str) else str(v)


def diff(old: Any | None, new: Any) -> list[tuple[str, str]]:
    """(kind, line) pairs: kind is "add", "del", "kill", "unkill" or "change".

    ``old`` and ``new`` are store documents (``version``, ``sha``, ``data``); ``old`` None for
    the first version.
    """
    if old is None:
        n = len(_flags(new.data))
        return [("add", f"first version: {n} flag{'s' if n != 1 else ''}")]
    out: list[tuple[str, str]] = []
    a, b = _flags(old.data), _flags(new.data)
    sa, sb = _snapshot(old.sha, old.data), _snapshot(new.sha, new.data)
    for key in sorted({*a, *b}):
        if key not in a:
            out.append(("add", f"{key}: added"))
            continue
        if key not in b:
            out.append(("del", f"{key}: removed"))
            continue
        fa, fb = a[key], b[key]
        if fa == fb:
            continue
        for field in _SCALARS:
            va, vb = fa.get(field), fb.get(field)
            if va == vb:
                continue
            if field == "killed":
                kind = "kill" if vb is True else "unkill"
                out.append((kind, f"{key}: {'killed' if vb is True else 'kill switch lifted'}"))
            else:
                out.append(("change", f"{key}: {field} {_show(va)} → {_show(vb)}"))
        if fa.get("variants") != fb.get("variants"):
            out.append(("change", f"{key}: variants {fa.get('variants')} → {fb.get('variants')}"))
        if fa.get("rules") != fb.get("rules"):
            out += _rules(key, sa, sb)
    segs_a, segs_b = old.data.get("segments") or {}, new.data.get("segments") or {}
    for name in sorted({*segs_a, *segs_b}):
        if segs_a.get(name) == segs_b.get(name):
            continue
        if sb is not None and name in sb.segments:
            out.append(("change", f"segment {name}: now {segment_words(sb.segments[name])}"))
        else:
            out.append(("del", f"segment {name}: removed"))
    return out


def _rules(key: str, sa: Snapshot | None, sb: Snapshot | None) -> list[tuple[str, str]]:
    if sa is None or sb is None or key not in sa.flags or key not in sb.flags:
        return [("change", f"{key}: rules changed")]
    ra = [rule_words(r) for r in sa.flags[key].rules]
    rb = [rule_words(r) for r in sb.flags[key].rules]
    out = []
    for i in range(max(len(ra), len(rb))):
        before = ra[i] if i < len(ra) else None
        after = rb[i] if i < len(rb) else None
        if before == after:
            continue
        if before is None:
            out.append(("add", f"{key}: rule {i + 1} added: {after}"))
        elif after is None:
            out.append(("del", f"{key}: rule {i + 1} removed: {before}"))
        else:
            out.append(("change", f"{key}: rule {i + 1}: {before} → {after}"))
    return out or [("change", f"{key}: rules reordered or reformatted")]


def touches(lines: list[tuple[str, str]], key: str) -> bool:
    """True when a diff mentions flag ``key``."""
    return any(line.startswith(f"{key}: ") for _, line in lines)
