"""Hostile flag documents, a mutator, and a resource-limited worker that loads them.

Shared by ``tests/test_hostile_documents.py`` (a short run in the suite) and
``bench/adversarial_load.py`` (a longer run whose figures go to docs/security.md). Every
document is loaded in a separate process limited to :data:`MEMORY_LIMIT` bytes of address
space, under a wall-clock budget of :data:`TIME_BUDGET` seconds per input: the point is "does
not hang or explode", so both limits are generous, never timing thresholds.
"""

from __future__ import annotations

import json
import os
import random
import select
import subprocess
import sys
from pathlib import Path
from typing import Any

MEMORY_LIMIT = 500 * 1024 * 1024
TIME_BUDGET = 10.0
EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "flags.toml"


def _alias_bomb(levels: int) -> str:
    lines = ['a0: &a0 "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"']
    for i in range(1, levels + 1):
        lines.append(f"a{i}: &a{i} [{','.join([f'*a{i - 1}'] * 9)}]")
    return "\n".join([*lines, "flags:", "  x:", f"    description: *a{levels}", ""])


def _many_problems(n: int) -> str:
    return "".join(f'[flags.flag-{i}]\nkilled = "yes"\n\n' for i in range(n))


def _condition(op: str, value: str) -> str:
    return (
        '[flags.f]\n[[flags.f.rules]]\nserve = "on"\n'
        f'conditions = [{{ attribute = "a", op = "{op}", value = {value} }}]\n'
    )


#: (name, suffix, text): the cases of issue 12 and their neighbours.
CASES: list[tuple[str, str, str]] = [
    ("yaml alias bomb, 9^8", ".yaml", _alias_bomb(8)),
    ("yaml alias bomb, 9^9", ".yaml", _alias_bomb(9)),
    ("yaml 2,000 aliases", ".yaml", "a: &a 1\nb: [" + ", ".join(["*a"] * 2000) + "]\nflags: {}\n"),
    ("yaml self-reference", ".yaml", "flags: &r\n  a: *r\n"),
    ("yaml duplicate flag", ".yaml", "flags:\n  a: {killed: true}\n  a: {killed: false}\n"),
    ("yaml deep nesting", ".yaml", "flags: " + "[" * 5000 + "]" * 5000 + "\n"),
    ("toml deep nesting", ".toml", "flags = " + "[" * 5000 + "]" * 5000 + "\n"),
    ("json deep nesting", ".json", '{"flags": ' + "[" * 5000 + "]" * 5000 + "}"),
    ("4,000 problems", ".toml", _many_problems(4000)),
    ("semver of 4,301 digits", ".toml", _condition("semver_gte", '"' + "9" * 4301 + '"')),
    ("integer of 5,000 digits", ".toml", _condition("gte", "9" * 5000)),
    (
        "regex nested 5,000 deep",
        ".toml",
        _condition("matches", "'" + "(" * 5000 + ")" * 5000 + "'"),
    ),
    ("regex a{99999999999}", ".toml", _condition("matches", "'a{99999999999}'")),
    ("regex (\\w+\\s?)*", ".toml", _condition("matches", "'^(\\w+\\s?)*$'")),
    ("regex backreference", ".toml", _condition("matches", "'(a)\\1'")),
    (
        "huge string value",
        ".json",
        '{"flags": {"f": {"description": ' + json.dumps("x" * 5_000_000) + "}}}",
    ),
    ("NUL bytes", ".toml", "flags = {}\n\x00\n"),
    (
        "bad date",
        ".yaml",
        "flags:\n  f:\n    rules:\n      - ramp: [{from: 2026-13-01, split: {on: 1, off: 99}}]\n",
    ),
]


def mutate(text: str, rng: random.Random, rounds: int = 3) -> str:
    """``text`` with a few random edits: slices deleted, duplicated or moved, hostile tokens
    inserted (anchors, aliases, deep brackets, long digit runs, odd bytes)."""
    tokens = [
        "&a ",
        "*a",
        "<<: *a",
        "[" * 50,
        "{" * 50,
        "9" * 500,
        "\x00",
        "\ufeff",
        "\\",
        '"',
        "'''",
        "\n  - ",
        ": ",
        " = ",
        "[[flags.x.rules]]\n",
        "!!python/object:os.system",
        "~",
        "\t",
    ]
    for _ in range(rounds):
        n = len(text)
        i, j = sorted(rng.randrange(n + 1) for _ in range(2)) if n else (0, 0)
        kind = rng.randrange(4)
        if kind == 0:
            text = text[:i] + text[j:]
        elif kind == 1:
            text = text[:j] + text[i:j] * rng.randrange(1, 5) + text[j:]
        elif kind == 2:
            text = text[:i] + rng.choice(tokens) + text[i:]
        else:
            k = rng.randrange(len(text) + 1)
            text = text[:k] + text[i:j] + text[k:]
    return text


# The limit is set by the child itself (preexec_fn is unsafe when the parent has threads).
_LIMIT = (
    f"import resource; resource.setrlimit(resource.RLIMIT_AS, ({MEMORY_LIMIT}, {MEMORY_LIMIT}))\n"
)
_WORKER = (
    _LIMIT
    + r"""
import json, sys
import rampup
from rampup.errors import ConfigError
for line in sys.stdin:
    job = json.loads(line)
    try:
        rampup.load(job["path"])
        out = "loaded"
    except ConfigError as exc:
        located = all(p.file == job["path"] for p in exc.problems)
        out = "config_error" if located else "config_error_unlocated"
    except BaseException as exc:
        out = "escaped:" + type(exc).__name__
    print(out, flush=True)
"""
)


class Worker:
    """A process that loads documents one at a time under the memory limit; a document that
    takes longer than the budget, or kills the process, is reported as such."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.count = 0
        self.proc: subprocess.Popen[str] | None = None

    def _start(self) -> subprocess.Popen[str]:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        return subprocess.Popen(
            [sys.executable, "-c", _WORKER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=env,
        )

    def load(self, suffix: str, text: str) -> str:
        """The outcome class of loading ``text`` as a file ending in ``suffix``."""
        self.count += 1
        path = self.directory / f"doc{self.count}{suffix}"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        if self.proc is None:
            self.proc = self._start()
        proc = self.proc
        assert proc.stdin is not None
        assert proc.stdout is not None
        try:
            proc.stdin.write(json.dumps({"path": str(path)}) + "\n")
            proc.stdin.flush()
        except BrokenPipeError:
            self.close()
            return "worker died"
        ready, _, _ = select.select([proc.stdout], [], [], TIME_BUDGET)
        line = proc.stdout.readline() if ready else ""
        path.unlink()
        if not ready:
            self.close()
            return "over time budget"
        if not line:
            self.close()
            return "worker died (memory limit?)"
        return line.strip()

    def close(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            for pipe in (self.proc.stdin, self.proc.stdout):
                if pipe is not None:
                    pipe.close()
            self.proc = None

    def __enter__(self) -> Worker:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def check_cli(path: Path) -> tuple[int | None, str]:
    """``rampup check PATH`` as a subprocess under the limits: (exit code or None, stderr)."""
    try:
        run_cli = _LIMIT + "import runpy, sys; runpy.run_module('rampup', run_name='__main__')"
        done = subprocess.run(
            [sys.executable, "-c", run_cli, "check", str(path)],
            capture_output=True,
            text=True,
            timeout=TIME_BUDGET,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return None, "over time budget"
    return done.returncode, done.stderr + done.stdout
