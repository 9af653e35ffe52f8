"""Every example under examples/ runs, each through its framework's own test client, and the
`examples` extra installs everything they import (the Starlette and FastAPI examples need
Jinja2, which none of the framework extras brings)."""

from __future__ import annotations

import ast
import importlib.metadata
import importlib.util
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from types import ModuleType

import pytest

from timeless import timeless_examples

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
STDLIB = set(sys.stdlib_module_names) | {"__future__"}


def _load(name: str, monkeypatch: pytest.MonkeyPatch, where: Path = EXAMPLES) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"example_{name}", where / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # dataclasses and Flask look it up
    spec.loader.exec_module(module)
    return module


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name.partition(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.partition(".")[0])
    return names - STDLIB - {"rampup", "shop"}


def _extra_closure(extra: str) -> set[str]:
    """Distribution names (normalised) that `pip install rampup[extra]` installs directly."""
    seen: set[str] = set()
    todo = [extra]
    dists: set[str] = set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for req in importlib.metadata.requires("rampup") or []:
            if not re.search(rf"""extra == ["']{name}["']""", req):
                continue
            target = re.split(r"[\s<>=!~;\[]", req, maxsplit=1)[0]
            if target == "rampup":
                todo += re.search(r"\[(.*?)\]", req).group(1).split(",")  # type: ignore[union-attr]
            else:
                dists.add(target.lower().replace("_", "-"))
    return dists


def test_the_examples_extra_installs_every_import_of_every_example() -> None:
    """Each third-party module an example imports comes from a distribution the `examples`
    extra requires (directly or through rampup[all])."""
    provided = _extra_closure("examples")
    by_module = importlib.metadata.packages_distributions()
    files = [*EXAMPLES.glob("*.py"), *(EXAMPLES / "django_project").rglob("*.py")]
    missing = {}
    for path in files:
        for module in _imports(path):
            dists = {d.lower().replace("_", "-") for d in by_module.get(module, [module])}
            if not dists & provided:
                missing[f"{path.name}: {module}"] = sorted(dists)
    assert not missing, f"not in the examples extra: {missing}"
    assert {"jinja2", "uvicorn"} <= provided


def test_flask_example(monkeypatch: pytest.MonkeyPatch) -> None:
    """examples/flask_app.py through Flask's test client: staff get the new checkout."""
    pytest.importorskip("flask")
    client = _load("flask_app", monkeypatch).app.test_client()
    assert client.get("/").status_code == 200
    assert client.get("/admin").status_code == 404
    assert client.get("/flags.json", headers={"X-User-Id": "alice"}).json["new-checkout"] is True


@pytest.mark.parametrize("name", ["starlette_app", "fastapi_app"])
def test_asgi_examples(name: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """examples/starlette_app.py and fastapi_app.py through Starlette's TestClient."""
    pytest.importorskip("jinja2")
    from starlette.testclient import TestClient

    # without the date ramp: the minted anonymous id gets the 404 on any date
    with TestClient(_load(name, monkeypatch, timeless_examples(tmp_path)).app) as client:
        page = client.get("/")
        assert page.status_code == 200
        assert "rampup_id" in page.cookies
        assert client.get("/checkout/new").status_code == 404


def test_otel_example_runs() -> None:
    """examples/otel_app.py serves its three requests in-process and prints the spans."""
    pytest.importorskip("opentelemetry.sdk")
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "otel_app.py")],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert '"name": "feature_flag.evaluation"' in result.stdout
    assert "checkout-button per variant" in result.stdout


def test_django_example_project(tmp_path: Path) -> None:
    """examples/django_project through Django's test client (its own settings, a subprocess)."""
    pytest.importorskip("django")
    # without the date ramp: the minted anonymous id gets the 404 on any date
    project = timeless_examples(tmp_path) / "django_project"
    script = f"""
        import os, sys
        sys.path.insert(0, {str(project)!r})
        os.environ["DJANGO_SETTINGS_MODULE"] = "shop.settings"
        import django
        django.setup()
        from django.test import Client
        c = Client(SERVER_NAME="localhost")
        home = c.get("/")
        assert home.status_code == 200
        assert "rampup_id" in home.cookies
        assert c.get("/checkout/", headers={{"X-Demo-User": "qa-alice"}}).status_code == 200
        assert c.get("/checkout/").status_code == 404
        print("ok")
    """
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_example_flag_file_is_valid_and_is_the_one_the_demo_serves() -> None:
    """examples/flags.toml checks clean; it is the file `rampup demo` serves from a checkout,
    and the copy bundled for installed packages has the same bytes."""
    import rampup
    from rampup.demo import demo_flags_path

    result = subprocess.run(
        [sys.executable, "-m", "rampup", "check", "examples/flags.toml"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "5 flags, 3 segments" in result.stdout
    if Path(rampup.__file__).resolve().is_relative_to(ROOT / "src"):  # not a built wheel (tox)
        assert demo_flags_path() == EXAMPLES / "flags.toml"
    else:
        assert demo_flags_path().read_bytes() == (EXAMPLES / "flags.toml").read_bytes()
    bundled = ROOT / "src" / "rampup" / "data" / "flags.toml"
    assert (EXAMPLES / "flags.toml").read_bytes() == bundled.read_bytes()
