"""gunicorn settings for the lazy-watcher test: once the master has loaded the app (--preload),
it writes the names of its threads to ``LAZY_REPORT``."""

from __future__ import annotations

import os
import threading
from typing import Any


def when_ready(server: Any) -> None:
    with open(os.environ["LAZY_REPORT"], "w", encoding="utf-8") as fh:
        fh.write("\n".join(sorted(t.name for t in threading.enumerate())))
