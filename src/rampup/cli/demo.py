"""``rampup demo``: serve the demo app on 127.0.0.1.

It serves ``examples/flags.toml`` when rampup runs from a checkout (an editable install), else the
copy bundled in the package; ``--flags`` picks another file. The path is printed at start-up and
shown on the page: edit that file and reload.
"""

from __future__ import annotations

import argparse
import sys
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from . import CommandError


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        sys.stderr.write(f"  {self.command} {self.path} -> {args[1] if len(args) > 1 else ''}\n")


def register(sub: Any) -> None:
    """Add the ``demo`` command to the ``rampup`` subparsers."""
    p = sub.add_parser(
        "demo",
        help="serve the demo app (examples/flags.toml from a checkout)",
        description="Serve the demo app (standard library WSGI server).",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 picks a free one)")
    p.add_argument(
        "--flags",
        help="flag file to serve (default: examples/flags.toml in a checkout, else the copy "
        "bundled in the package)",
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Serve the demo app on ``args.host``:``args.port`` until interrupted."""
    from ..demo import demo_flags_path, make_app

    flags_path = args.flags or str(demo_flags_path())
    app = make_app(flags_path)
    try:
        server = make_server(
            args.host, args.port, app, server_class=_Server, handler_class=_QuietHandler
        )
    except OSError as exc:
        raise CommandError(
            f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}. "
            "Try --port 0 or another port."
        ) from None
    url = f"http://{args.host}:{server.server_port}"
    print(f"rampup demo serving {flags_path}\n  on {url}  (Ctrl-C to stop)", flush=False)
    print(f"  open {url}/ in a browser; edit {flags_path} and reload the page\n", flush=False)
    print(_TRY.format(url=url, flags=flags_path), flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("\nbye")
    finally:
        server.server_close()
    return 0


_TRY = """Try:
  # an anonymous visitor: gets a rampup_id cookie (a split was read), stays in their bucket
  curl -i {url}/api/flags
  # a staff member (segment "staff"): new-checkout is on
  curl -s {url}/api/flags -H 'X-User-Id: 42' -H 'X-User-Email: ann@example.com'
  # a QA tester (segment "qa", listed by id)
  curl -s {url}/checkout -H 'X-User-Id: qa-alice'
  # a beta customer on app 4.3: checkout-button is green
  curl -s {url}/api/flags -H 'X-User-Id: 7' -H 'X-Beta: true' -H 'X-App-Version: 4.3.0'
  # force a variant with a QA override (unsigned overrides are honoured in debug mode)
  curl -si {url}/api/flags -H 'X-Rampup-Override: new-checkout=on, checkout-button=orange'
  # why a subject gets a variant
  rampup explain {flags} new-checkout --id 42 --attr email=ann@example.com
  # edit the flag file above (or run `rampup demo --flags my-flags.toml`): the change is
  # served within about a second, a bad edit keeps the last good flags
"""
