"""Every example in the docs runs, so a page cannot drift from the code.

Each fenced block of ``docs/**/*.md`` is a test, run in a fresh temp dir that holds a copy of
``examples/flags.toml`` as ``flags.toml`` and a copy of ``examples/`` (as ``examples/``):

* ```` ```python ````: executed as a standalone script (``python block.py``). Preceded by
  ``<!-- docs-test: pytest -->`` it is a test module instead, run with ``python -m pytest``.
  A block made only of ``--8<-- "examples/x.py"`` includes is not run here: the included file
  must exist and be exercised by ``tests/test_examples.py``.
* ```` ```console ````: each ``$ rampup ...`` line runs (``python -m rampup ...``) and must
  exit 0; ``$ echo $?`` followed by a number states the previous command's expected status
  instead (``rampup check broken.toml`` exits 1). The lines printed under a command must each
  appear in its output; ``...`` in such a line stands for any text. ``$ export NAME=value``
  and ``NAME=value rampup ...`` set the environment; other ``$`` lines (curl, python) are
  shown, not run.
* ```` ```toml ````: parsed; a flag-file fragment (only ``flags``, ``segments``, ``version``)
  must load with ``rampup.load``.

``<!-- docs-test: skip (reason; covered by tests/path.py::test_name) -->`` on the line before a
block leaves it out (no test item, so CI shows no skips): only for a block that needs a running
service. The marker must give the reason and name the test that exercises the block instead;
``test_every_skipped_block_names_the_test_that_runs_it`` checks that test exists.
"""

from __future__ import annotations

import ast
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

import rampup

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
MARKER = re.compile(r"^<!--\s*docs-test:\s*(?P<what>\w+)\s*(?:\((?P<reason>[^)]*)\))?\s*-->$")
#: a skip marker's reason: why, then the test that runs the block instead
COVERED = re.compile(
    r"^(?P<why>[^;]*\S[^;]*);\s*covered by\s+(?P<path>tests/\S+\.py)::(?P<test>\w+)$"
)
INCLUDE = re.compile(r"""^--8<--\s+["'](?P<path>[^"']+)["']\s*$""")
RUN = {"python", "console", "toml"}


@dataclass(frozen=True)
class Block:
    """One fenced block of a docs page."""

    page: str
    line: int
    lang: str
    text: str
    #: the docs-test marker on the line before, if any: ("skip", reason) or ("pytest", None)
    marker: tuple[str, str | None] | None

    @property
    def id(self) -> str:
        return f"{self.page}:{self.line}"


def _blocks(path: Path) -> list[Block]:
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks, i = [], 0
    page = str(path.relative_to(DOCS)) if path.is_relative_to(DOCS) else path.name
    while i < len(lines):
        stripped = lines[i].strip()
        if stripped.startswith("```") and len(stripped) > 3:
            indent = len(lines[i]) - len(lines[i].lstrip())
            lang = stripped[3:].split()[0].split("{")[0]
            start = i
            body = []
            i += 1
            while i < len(lines) and lines[i].strip() != "```":
                body.append(lines[i][indent:] if lines[i][:indent].strip() == "" else lines[i])
                i += 1
            prev = next(
                (lines[j].strip() for j in range(start - 1, -1, -1) if lines[j].strip()), ""
            )
            m = MARKER.match(prev)
            marker = (m.group("what"), m.group("reason")) if m else None
            blocks.append(Block(page, start + 1, lang, "\n".join(body) + "\n", marker))
        i += 1
    return blocks


def _skipped(block: Block) -> bool:
    return block.marker is not None and block.marker[0] == "skip"


PAGES = sorted(DOCS.rglob("*.md"))
ALL_BLOCKS = [b for page in PAGES for b in _blocks(page)]
#: console blocks without a rampup command (curl, python ...) have nothing to run here; a
#: skipped block is run by the test its marker names (checked below), so it is no item here
BLOCKS = [
    b
    for b in ALL_BLOCKS
    if b.lang in RUN
    and not _skipped(b)
    and (b.lang != "console" or re.search(r"^\$ (\S+=\S+ )*rampup ", b.text, re.M))
]


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A temp dir with flags.toml (examples/flags.toml) and a copy of examples/."""
    shutil.copyfile(ROOT / "examples" / "flags.toml", tmp_path / "flags.toml")
    shutil.copytree(
        ROOT / "examples", tmp_path / "examples", ignore=shutil.ignore_patterns("__pycache__")
    )
    return tmp_path


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAMPUP_")}
    env.update(extra or {})
    return env


def _run_python(block: Block, workdir: Path) -> None:
    includes = [INCLUDE.match(line.strip()) for line in block.text.splitlines() if line.strip()]
    if includes and all(includes):
        tested = (ROOT / "tests" / "test_examples.py").read_text()
        for m in includes:
            assert m is not None
            included = ROOT / m.group("path")
            assert included.is_file(), f"{block.id}: {m.group('path')} does not exist"
            assert included.stem in tested, f"{included.name} is run by no test_examples test"
        return
    source = _included(block.text)
    pytest_mode = block.marker is not None and block.marker[0] == "pytest"
    script = workdir / ("test_block.py" if pytest_mode else "block.py")
    script.write_text(source)
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", script.name]
    result = subprocess.run(
        cmd if pytest_mode else [sys.executable, script.name],
        cwd=workdir,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        env=_env(),
    )
    assert result.returncode == 0, f"{block.id}\n{result.stdout}\n{result.stderr}"
    if pytest_mode:
        assert re.search(r"\d+ passed", result.stdout), result.stdout


def _commands(text: str) -> list[tuple[str, list[str], int]]:
    """(command line, expected output lines, expected status) for each `$ ` line."""
    out: list[tuple[str, list[str], int]] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("$ echo $?"):
            assert out, "`$ echo $?` with no command before it"
            status = int(lines[i + 1].strip())
            cmd, expected, _ = out[-1]
            out[-1] = (cmd, expected, status)
            i += 2
            continue
        if line.startswith("$ "):
            expected = []
            i += 1
            while i < len(lines) and not lines[i].startswith("$ "):
                if lines[i].strip():
                    expected.append(lines[i].rstrip())
                i += 1
            out.append((line[2:].strip(), expected, 0))
            continue
        i += 1
    return out


def _matches(expected: str, actual: list[str]) -> bool:
    if "..." in expected:
        pattern = ".*".join(re.escape(part) for part in expected.split("..."))
        return any(re.fullmatch(pattern, line) for line in actual)
    return expected in actual


def _run_console(block: Block, workdir: Path) -> None:
    env: dict[str, str] = {}
    ran = 0
    for cmd, expected, status in _commands(block.text):
        words = shlex.split(cmd, comments=True)
        if words[:1] == ["export"]:
            for word in words[1:]:
                name, _, value = word.partition("=")
                env[name] = value
            continue
        assigned = {}
        while words and re.match(r"^[A-Z_][A-Z0-9_]*=", words[0]):
            name, _, value = words.pop(0).partition("=")
            assigned[name] = value
        if words[:1] != ["rampup"]:
            continue
        result = subprocess.run(
            [sys.executable, "-m", "rampup", *words[1:]],
            cwd=workdir,
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
            env=_env({**env, **assigned}),
        )
        ran += 1
        where = f"{block.id}: $ {cmd}\n{result.stdout}{result.stderr}"
        assert result.returncode == status, where
        assert "Traceback" not in result.stderr, where
        actual = [line.rstrip() for line in (result.stdout + result.stderr).splitlines()]
        for line in expected:
            assert _matches(line, actual), f"{where}\nnot printed: {line!r}"
    assert ran, f"{block.id}: no rampup command ran"


def _included(text: str) -> str:
    """The text with each ``--8<-- "path"`` line replaced by the file, as mkdocs renders it."""
    return "\n".join(
        (ROOT / m.group("path")).read_text() if (m := INCLUDE.match(line.strip())) else line
        for line in text.splitlines()
    )


def _run_toml(block: Block, workdir: Path) -> None:
    data = tomllib.loads(_included(block.text))
    if data and set(data) <= {"flags", "segments", "version"}:
        rampup.load({"flags": {}, **data})  # a segments-only fragment needs an empty [flags]


@pytest.mark.parametrize("block", BLOCKS, ids=[b.id for b in BLOCKS])
def test_docs_example(block: Block, workdir: Path) -> None:
    """The block runs as the page says it does (see the module docstring for the rules)."""
    if block.marker is not None:
        assert block.marker[0] == "pytest", f"{block.id}: unknown docs-test marker"
    {"python": _run_python, "console": _run_console, "toml": _run_toml}[block.lang](block, workdir)


def _skip_problem(block: Block) -> str | None:
    """Why ``block``'s skip marker is not acceptable (None: it is)."""
    reason = (block.marker[1] if block.marker else None) or ""
    m = COVERED.match(reason.strip())
    if m is None:
        return (
            f"{block.id}: write <!-- docs-test: skip (reason; covered by tests/x.py::test_name) -->"
            f", naming the test that runs this block (got {reason!r})"
        )
    path = ROOT / m.group("path")
    if not path.is_file():
        return f"{block.id}: {m.group('path')} does not exist"
    tree = ast.parse(path.read_text(encoding="utf-8"))
    defined = {
        node.name
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    }
    if m.group("test") not in defined:
        return f"{block.id}: {m.group('path')} defines no {m.group('test')}"
    return None


def test_every_skipped_block_names_the_test_that_runs_it() -> None:
    """Each docs-test skip marker gives a reason and names an existing test that runs the
    block; every marker-like line parses (a typo would let a block escape both tests)."""
    skipped = [b for b in ALL_BLOCKS if _skipped(b)]
    assert skipped, "no skip marker found: the parser or the pattern is broken"
    problems = [p for b in skipped if (p := _skip_problem(b)) is not None]
    for page in PAGES:
        for n, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1):
            marker_like = line.strip().startswith("<!--") and "docs-test" in line
            if marker_like and not MARKER.match(line.strip()):
                problems.append(f"{page.name}:{n}: unreadable docs-test marker {line!r}")
    assert not problems, "\n".join(problems)


def test_the_docs_have_runnable_examples() -> None:
    """The extraction finds the pages and their blocks (a broken parser would test nothing)."""
    langs = {b.lang for b in BLOCKS}
    assert {"python", "console", "toml"} <= langs
    assert len([b for b in BLOCKS if b.lang == "python"]) >= 20


def test_every_docs_page_is_in_the_nav() -> None:
    """mkdocs.yml lists every page under docs/, and every page it lists exists."""
    nav = re.findall(r":\s*([\w/.-]+\.md)\s*$", (ROOT / "mkdocs.yml").read_text(), re.M)
    on_disk = {str(p.relative_to(DOCS)) for p in PAGES}
    assert set(nav) == on_disk


def _readme_block(title: str) -> list[str]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split(f"## {title}", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```(?:bash|console|sh)\n(.*?)\n```", section, re.S)


def test_readme_quickstart_is_two_commands_and_ci_runs_the_second_verbatim() -> None:
    """README's Quickstart: exactly two commands, the demo then the tests; .ci/run runs the
    second one character for character."""
    commands = _readme_block("Quickstart")
    assert len(commands) == 2, commands
    demo, tests = (c.strip() for c in commands)
    assert "\n" not in demo
    assert "\n" not in tests
    assert demo.endswith("rampup demo")
    assert tests.endswith(("python -m pytest )", "python -m pytest"))
    ci = (ROOT / ".ci" / "run").read_text()
    assert f"\n{tests} 2>&1 | tee" in ci


def test_readme_is_short_and_links_into_the_docs() -> None:
    """README stays a few KB and its links to docs/ point at pages that exist."""
    readme = (ROOT / "README.md").read_text()
    assert len(readme.encode()) < 8_000
    links = re.findall(r"\]\((docs/[^)#]+)", readme)
    assert links
    for link in links:
        assert (ROOT / link).is_file(), link


def test_readme_ten_lines_run_with_its_flag_file(tmp_path: Path) -> None:
    """README's example app and flag file work together: QA gets the new checkout."""
    readme = (ROOT / "README.md").read_text()
    (app,) = re.findall(r"```python\n(.*?)```", readme, re.S)
    (toml,) = re.findall(r"```toml\n(.*?)```", readme, re.S)
    assert len(app.strip().splitlines()) <= 12
    (tmp_path / "flags.toml").write_text(toml)
    check = "\nc = app.test_client()\n"
    check += 'assert c.get("/checkout", headers={"X-User-Id": "qa-alice"}).text == '
    check += '"the new checkout"\n'
    (tmp_path / "app.py").write_text(app + check)
    result = subprocess.run(
        [sys.executable, "app.py"], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr


def test_the_conventions_of_the_docs_test(tmp_path: Path) -> None:
    """A skip marker needs a reason and an existing covering test; `$ echo $?` sets the previous
    command's expected status; `...` in expected output stands for any text."""
    page = tmp_path / "page.md"
    here = "tests/test_docs.py::test_the_conventions_of_the_docs_test"
    page.write_text(
        "<!-- docs-test: skip () -->\n```python\nraise SystemExit(1)\n```\n\n"
        "<!-- docs-test: skip (needs redis) -->\n\n```python\nraise SystemExit(1)\n```\n\n"
        f"<!-- docs-test: skip (needs redis; covered by {here}) -->\n```python\n```\n\n"
        "<!-- docs-test: skip (x; covered by tests/test_docs.py::test_nothing) -->\n"
        "```python\n```\n"
        "<!-- docs-test: skip (x; covered by tests/nowhere.py::test_x) -->\n```python\n```\n"
        "  ```console\n  $ rampup check broken.toml\n  rampup: 4 problems ...\n"
        "  $ echo $?\n  1\n  $ rampup check flags.toml\n  ```\n"
    )
    blocks = _blocks(page)
    assert [b.marker for b in blocks][:3] == [
        ("skip", ""),
        ("skip", "needs redis"),
        ("skip", f"needs redis; covered by {here}"),
    ]
    assert blocks[5].marker is None
    assert "naming the test that runs this block" in (_skip_problem(blocks[0]) or "")
    assert "naming the test that runs this block" in (_skip_problem(blocks[1]) or "")
    assert _skip_problem(blocks[2]) is None
    assert "defines no test_nothing" in (_skip_problem(blocks[3]) or "")
    assert "tests/nowhere.py does not exist" in (_skip_problem(blocks[4]) or "")
    assert _commands(blocks[5].text) == [
        ("rampup check broken.toml", ["rampup: 4 problems ..."], 1),
        ("rampup check flags.toml", [], 0),
    ]
    assert _matches("rampup: 4 problems ...", ["rampup: 4 problems in flag configuration:"])
    assert not _matches("rampup: 5 problems ...", ["rampup: 4 problems in flag configuration:"])
