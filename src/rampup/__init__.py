"""rampup: progressive delivery for Python web apps.

Load flags with :func:`load`, add the middleware for your framework, read
``rampup.flags.enabled("key")`` in views. This module imports no web framework and no
OpenTelemetry; adapters live in ``rampup.flask``, ``rampup.django``, ``rampup.asgi`` and
``rampup.wsgi``.
"""

from __future__ import annotations

from .config import load as load
from .context import Flags as Flags
from .context import flags as flags
from .engine import Snapshot as Snapshot
from .errors import ConfigError as ConfigError
from .errors import MissingDependency as MissingDependency
from .errors import RampupError as RampupError
from .errors import UnboundFlagsError as UnboundFlagsError
from .model import Decision as Decision
from .model import Reason as Reason
from .model import Subject as Subject
from .options import Options as Options

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "Decision",
    "Flags",
    "MissingDependency",
    "Options",
    "RampupError",
    "Reason",
    "Snapshot",
    "Subject",
    "UnboundFlagsError",
    "__version__",
    "flags",
    "load",
]
