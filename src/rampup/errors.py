"""Every exception rampup raises, in one hierarchy rooted at :class:`RampupError`.

Errors are raised at load and configuration time only; the request path logs and
falls back to defaults instead of raising (see ``_request.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "ConfigError",
    "MissingDependency",
    "Problem",
    "RampupError",
    "StoreConflict",
    "StoreError",
    "UnboundFlagsError",
]


class RampupError(Exception):
    """Base class of every rampup exception.

    .. versionadded:: 0.1.0
    """


@dataclass(frozen=True, slots=True)
class Problem:
    """One located problem in a flag file.

    ``where`` is the dotted path inside the file (``flags.new-checkout.rules[1].serve``);
    ``line`` is 1-based when the parser or the locator could find one.
    """

    file: str
    where: str
    message: str
    hint: str = ""
    line: int | None = None

    def __str__(self) -> str:
        loc = self.file + (f":{self.line}" if self.line else "")
        text = f"{loc}: {self.where}: {self.message}" if self.where else f"{loc}: {self.message}"
        return f"{text} (hint: {self.hint})" if self.hint else text


class ConfigError(RampupError, ValueError):
    """A flag file (or mapping) is invalid; ``problems`` lists every located problem.

    .. versionadded:: 0.1.0
    """

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems: tuple[Problem, ...] = tuple(problems)
        count = len(self.problems)
        head = f"{count} problem{'s' if count != 1 else ''} in flag configuration:"
        super().__init__("\n".join([head, *(f"  - {p}" for p in self.problems)]))


class MissingDependency(RampupError, ImportError):
    """An optional integration was imported without its extra installed.

    The message says what to ``pip install``.

    .. versionadded:: 0.1.0
    """


class UnboundFlagsError(RampupError, RuntimeError):
    """``rampup.flags`` was used outside a request that went through a rampup middleware.

    .. versionadded:: 0.1.0
    """


class StoreError(RampupError):
    """The flag store (Redis) cannot do what was asked: unreachable, empty, or an unknown
    version or flag. The message says what to check.

    .. versionadded:: 0.1.0
    """


class StoreConflict(StoreError):
    """A compare-and-set write lost: the live document is not at the version expected.

    ``current`` is the live version, ``by`` and ``reason`` who wrote it and why.

    .. versionadded:: 0.1.0
    """

    def __init__(self, message: str, current: int, by: str = "", reason: str = "") -> None:
        super().__init__(message)
        self.current = current
        self.by = by
        self.reason = reason
