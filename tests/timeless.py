"""The example flag file without its date ramp, for tests that assert who gets the old checkout.

examples/flags.toml ramps new-checkout by date (1 % from 2026-12-01 ... 100 % from 2026-12-10),
and nothing pins the clock of a served request, so a test that asserts an anonymous visitor (a
random ``rampup_id``) or a plain user gets the old checkout fails at random during the ramp and
always after it. These helpers give such tests a copy of the examples in which new-checkout is on
only through its QA and staff rules, so the outcome is the same on every date and for every id.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"

# the third new-checkout rule: the date ramp, from its table header to the closing bracket
_RAMP_RULE = re.compile(r"\[\[flags\.new-checkout\.rules\]\]\n[^\[]*ramp = \[.*?\n\]\n", re.S)


def timeless_flags_text() -> str:
    """examples/flags.toml with new-checkout's ramp rule removed (QA and staff rules kept)."""
    text = (EXAMPLES / "flags.toml").read_text()
    out, n = _RAMP_RULE.subn("", text)
    assert n == 1, "examples/flags.toml no longer has one new-checkout ramp rule; update me"
    return out


def timeless_flags(tmp_path: Path) -> Path:
    """A ``flags.toml`` in ``tmp_path`` holding :func:`timeless_flags_text`."""
    path = tmp_path / "flags.toml"
    path.write_text(timeless_flags_text())
    return path


def timeless_examples(tmp_path: Path) -> Path:
    """A copy of examples/ (apps, templates, the Django project) whose flags.toml is timeless."""
    target = tmp_path / "examples"
    shutil.copytree(EXAMPLES, target, ignore=shutil.ignore_patterns("__pycache__"))
    timeless_flags(target)
    return target
