"""Live figures per (flag, variant): requests, error rate with a Wilson interval, p50 and p99.

Where they come from is labelled on the page: with the Redis store, the fleet's sums flushed by
``rampup.guard_fleet`` ("fleet-wide", read by ``Dashboard.live_outcomes``), else (or when Redis
has none or is down) the outcome book of *this process* (``rampup.outcomes.book``); pass
``outcomes=`` a function returning an :class:`~rampup.outcomes.OutcomeSnapshot` of fleet-wide
sums and a ``outcomes_label`` to show those instead. A variant is **regressing** when its
error-rate interval lies wholly above the baseline variant's (the rollout's control, else the off
variant, else the default).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..model import Flag
from ..outcomes import OutcomeSnapshot, VariantStats
from ..rollout import find_rollout

__all__ = ["Figures", "baseline", "figures", "live_json", "wilson"]

#: shown for "no figure yet"
DASH = "\N{EN DASH}"
#: z for a 95 % interval
Z95 = 1.959964

OutcomeProvider = Callable[[], OutcomeSnapshot]


def wilson(errors: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of ``errors / n`` ((0, 1) with no request)."""
    if n <= 0:
        return 0.0, 1.0
    p = errors / n
    d = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / d
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True, slots=True)
class Figures:
    """One variant's live figures."""

    requests: int
    errors: int
    rate: float
    low: float
    high: float
    p50_ms: float | None
    p99_ms: float | None
    regressing: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, with the preformatted texts the page shows."""
        return {
            "requests": self.requests,
            "errors": self.errors,
            "error_rate": self.rate,
            "interval": [self.low, self.high],
            "p50_ms": self.p50_ms,
            "p99_ms": self.p99_ms,
            "regressing": self.regressing,
            "text": texts(self),
        }


def texts(f: Figures) -> dict[str, str]:
    """The cells as shown: ``1,234``, ``0.41 % (0.30 to 0.55)`` (an en dash), ``12.3 ms``."""
    pct = _pct
    rate = DASH if not f.requests else f"{pct(f.rate)} % ({pct(f.low)}{DASH}{pct(f.high)} %)"
    return {
        "requests": f"{f.requests:,}",
        "error_rate": rate,
        "p50": _ms(f.p50_ms),
        "p99": _ms(f.p99_ms),
    }


def _pct(x: float) -> str:
    return f"{x * 100:.2f}"


def _ms(v: float | None) -> str:
    if v is None:
        return DASH
    return f"{v:.1f} ms" if v < 100 else f"{v:,.0f} ms"


def baseline(flag: Flag) -> str:
    """The variant others are compared with: a rollout's control, else ``off``, else the
    default."""
    found = find_rollout(flag)
    if found is not None:
        return found[1].control
    return flag.off_variant


def figures(flag: Flag, stats: Mapping[str, VariantStats]) -> dict[str, Figures]:
    """Each served variant's figures, in the flag's variant order, regressions marked."""
    out: dict[str, Figures] = {}
    for v in flag.variants:
        s = stats.get(v.name)
        if s is None:
            continue
        low, high = wilson(s.errors, s.requests)
        p50, p99 = s.p50, s.p99
        out[v.name] = Figures(
            s.requests,
            s.errors,
            s.error_rate,
            low,
            high,
            None if p50 is None else p50 * 1000,
            None if p99 is None else p99 * 1000,
        )
    base = out.get(baseline(flag))
    if base is not None and base.requests:
        for name, f in out.items():
            if name != baseline(flag) and f.requests and f.low > base.high:
                out[name] = dataclasses.replace(f, regressing=True)
    return out


def live_json(
    flags: Mapping[str, Flag], snap: OutcomeSnapshot, label: str, keys: list[str] | None
) -> dict[str, Any]:
    """The JSON the page's script polls: ``{"label", "at", "flags": {key: {variant: ...}}}``."""
    chosen = keys if keys is not None else list(snap.flags)
    body: dict[str, Any] = {}
    for key in chosen:
        flag = flags.get(key)
        stats = snap.read(key)
        if flag is None or not stats:
            continue
        body[key] = {v: f.to_dict() for v, f in figures(flag, stats).items()}
    return {"label": label, "at": snap.at, "flags": body}
