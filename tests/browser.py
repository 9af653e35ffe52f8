"""Debian's chromium as the browser tests launch it: through playwright's ``executable_path``
(never a browser playwright downloads), headless, with the flags that keep it off the network
(this machine reaches nothing beyond 127.0.0.1)."""

from __future__ import annotations

import shutil

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
