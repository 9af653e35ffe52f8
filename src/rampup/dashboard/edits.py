"""With a read-only source (a flag file, an HTTP document) the dashboard cannot act; it shows the
exact edit to make instead, in the file's own syntax, ready to copy."""

from __future__ import annotations

import re
from typing import Any

from ..model import Flag
from ..rollout import find_rollout

__all__ = ["Edit", "held_edit", "kill_edit", "stage_edit", "where"]

_BARE = re.compile(r"^[A-Za-z0-9_-]+$")


class Edit:
    """Where to edit and the text to put there."""

    __slots__ = ("target", "text")

    def __init__(self, target: str, text: str) -> None:
        self.target = target
        self.text = text


def where(source: Any) -> tuple[str, str]:
    """(format, place) of a read-only source: ``("toml", "/srv/flags.toml")``."""
    path = getattr(source, "path", None)
    if path is not None:
        suffix = str(path).rsplit(".", 1)[-1].lower()
        fmt = {"yaml": "yaml", "yml": "yaml", "json": "json"}.get(suffix, "toml")
        return fmt, str(path)
    url = getattr(source, "url", None)
    if isinstance(url, str):
        return "toml", f"the document served at {url}"
    return "toml", "the flags given to the app in code"


def _toml_key(key: str) -> str:
    return key if _BARE.match(key) else '"' + key.replace("\\", "\\\\").replace('"', '\\"') + '"'


def kill_edit(source: Any, flag: Flag, kill: bool) -> Edit:
    """The edit that kills (or unkills) ``flag``."""
    fmt, place = where(source)
    value = "true" if kill else "false"
    if fmt == "yaml":
        text = f"flags:\n  {flag.key}:\n    killed: {value}"
    elif fmt == "json":
        text = f'"flags": {{ "{flag.key}": {{ "killed": {value}, ... }} }}'
    else:
        text = f"[flags.{_toml_key(flag.key)}]\nkilled = {value}"
    verb = "set" if kill else "remove the line, or set"
    return Edit(f"In {place}, {verb}:", text)


def stage_edit(source: Any, flag: Flag, stage: int) -> Edit | None:
    """The edit that moves ``flag``'s guarded rollout to ``stage`` (0-based), None without one."""
    return _rollout_edit(source, flag, "stage", str(stage))


def held_edit(source: Any, flag: Flag) -> Edit | None:
    """The edit that holds (or, if held, releases) ``flag``'s guarded rollout, None without
    one."""
    found = find_rollout(flag)
    if found is None:
        return None
    return _rollout_edit(source, flag, "held", "false" if found[1].held else "true")


def _rollout_edit(source: Any, flag: Flag, field: str, value: str) -> Edit | None:
    found = find_rollout(flag)
    if found is None:
        return None
    index, _ = found
    fmt, place = where(source)
    if fmt == "yaml":
        text = f"flags:\n  {flag.key}:\n    rules:\n      - # rule {index + 1}\n" + (
            f"        rollout: {{ {field}: {value}, ... }}"
        )
    elif fmt == "json":
        text = f'"flags": {{ "{flag.key}": {{ "rules": [ ... rule {index + 1}: '
        text += f'{{ "rollout": {{ "{field}": {value}, ... }} }} ] }} }}'
    else:
        text = (
            f"# rule {index + 1} of [flags.{_toml_key(flag.key)}]\n"
            f"rollout = {{ {field} = {value}, ... }}"
        )
    return Edit(f"In {place}, set:", text)
