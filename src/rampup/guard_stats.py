"""The statistics of guarded rollouts: always-valid tests on plain sums (standard library only).

Everything here is a pure function of counts, and works in log space so that thousands of errors
never overflow a float. The method is the one of the guarded-rollouts issue (docs/guard.md):

* **Halt on errors.** Condition on the errors seen: each one lands in the treatment with
  probability ``p(r) = r*p0 / (r*p0 + 1 - p0)``, where ``p0 = Nt / (Nt + Nc)`` and ``r`` is the
  ratio of the two error rates. ``E = 1/2 * sum_{r in {2, 5}} LR(r)`` against ``r = 1`` is a test
  supermartingale under "the treatment is no worse", so by Ville's inequality halting when
  ``E >= 1/alpha`` keeps false halts under ``alpha`` however often it is looked at.
  :func:`log_lrs` returns each ``r``'s log-likelihood ratio so a caller can carry them across
  stages (one alpha for the whole rollout).
* **Advance.** ``E_adv = 1/3 * sum_{r in {0.5, 1, 1.5}} LR(r)`` against ``r = 2``: evidence that
  the ratio is below 2.
* **Sample-ratio mismatch.** A chi-square test (1 degree of freedom) of ``Nt`` against the
  configured share; the tail is ``erfc(sqrt(x / 2))``.
* **Latency.** An mSPRT on the difference of mean log-latencies (normal mixture prior on the
  difference, plug-in pooled variance), and the rate-ratio test above applied to the requests
  slower than the control's p99.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

__all__ = [
    "ADVANCE_RATIOS",
    "HALT_RATIOS",
    "advance_e",
    "halt_e",
    "log_lrs",
    "log_mean_exp",
    "msprt_log",
    "share_of",
    "srm_p_value",
]

#: the alternatives the halt e-process mixes over (error-rate ratios treatment / control)
HALT_RATIOS: tuple[float, ...] = (2.0, 5.0)
#: the alternatives the advance e-value mixes over, each against a ratio of 2
ADVANCE_RATIOS: tuple[float, ...] = (0.5, 1.0, 1.5)
#: the ratio the advance e-value tests against ("at least twice as bad")
ADVANCE_NULL = 2.0


def share_of(r: float, p0: float) -> float:
    """``p(r)``: the chance an error lands in the treatment when its rate is ``r`` times the
    control's and it gets a share ``p0`` of the requests."""
    return r * p0 / (r * p0 + 1.0 - p0)


def _log_lr(r: float, null: float, p0: float, xt: int, xc: int) -> float:
    """log of ``(p(r)/p(null))^xt * ((1-p(r))/(1-p(null)))^xc``."""
    pr, pn = share_of(r, p0), share_of(null, p0)
    # log1p keeps precision for the small shares of the first stages (1 % and below)
    return xt * (math.log(pr) - math.log(pn)) + xc * (math.log1p(-pr) - math.log1p(-pn))


def log_lrs(
    xt: int, xc: int, nt: int, nc: int, ratios: Sequence[float] = HALT_RATIOS, *, null: float = 1.0
) -> tuple[float, ...]:
    """Each ratio's log-likelihood ratio against ``null`` given ``xt``/``xc`` errors among
    ``nt``/``nc`` requests; all zeros while either variant has no request (nothing to compare)."""
    if nt <= 0 or nc <= 0:
        return tuple(0.0 for _ in ratios)
    p0 = nt / (nt + nc)
    return tuple(_log_lr(r, null, p0, xt, xc) for r in ratios)


def log_mean_exp(values: Iterable[float]) -> float:
    """``log(mean(exp(v)))`` without overflow (the log of an equal-weight mixture)."""
    vs = list(values)
    top = max(vs)
    if top == -math.inf:
        return top
    return top + math.log(sum(math.exp(v - top) for v in vs) / len(vs))


def halt_e(
    xt: int, xc: int, nt: int, nc: int, carried: Sequence[float] | None = None
) -> tuple[float, tuple[float, ...]]:
    """(log E, each ratio's total log-likelihood) for the halt test; ``carried`` holds the
    log-likelihoods of earlier stages, added per ratio before mixing."""
    lrs = log_lrs(xt, xc, nt, nc, HALT_RATIOS)
    if carried is not None:
        lrs = tuple(a + b for a, b in zip(lrs, carried, strict=True))
    return log_mean_exp(lrs), lrs


def advance_e(xt: int, xc: int, nt: int, nc: int) -> float:
    """log E_adv: evidence that the error-rate ratio is below 2 (0 while nothing is known)."""
    return log_mean_exp(log_lrs(xt, xc, nt, nc, ADVANCE_RATIOS, null=ADVANCE_NULL))


def srm_p_value(nt: int, nc: int, share: float) -> float:
    """p-value of a chi-square test (1 degree of freedom) that ``nt`` of ``nt + nc`` requests
    went to a treatment configured to get ``share`` (0 < share < 1) of them."""
    n = nt + nc
    if n <= 0 or not 0.0 < share < 1.0:
        return 1.0
    et, ec = n * share, n * (1.0 - share)
    chi2 = (nt - et) ** 2 / et + (nc - ec) ** 2 / ec
    # chi-square(1) is the square of a standard normal: P(Z^2 > x) = erfc(sqrt(x/2))
    return math.erfc(math.sqrt(chi2 / 2.0))


def _mean_var(n: float, s: float, ss: float) -> tuple[float, float]:
    mean = s / n
    return mean, max(ss - n * mean * mean, 0.0)


def msprt_log(
    t: tuple[float, float, float], c: tuple[float, float, float], tau: float = 0.1
) -> tuple[float, float]:
    """(log Lambda, d): a mixture SPRT on the difference ``d`` of mean log-latencies
    (treatment minus control), from each side's ``(n, sum ln s, sum (ln s)^2)``.

    ``d`` is about normal with variance ``V = sigma^2 (1/nt + 1/nc)`` (pooled plug-in sigma);
    with a normal prior N(0, tau^2) on the true difference the mixture likelihood ratio is
    ``sqrt(V / (V + tau^2)) * exp(tau^2 * d^2 / (2 V (V + tau^2)))`` (Johari et al., "Always
    valid inference", 2017). It is two-sided; a caller that halts only when also ``d > 0``
    (a slower treatment) halts on a subset of its alarms, so its error bound still holds.
    ``tau`` is in log units: 0.1 is about a 10 % change. (0, 0) until each side has 2 values.
    """
    nt, st, sst = t
    nc, sc, ssc = c
    if nt < 2 or nc < 2:
        return 0.0, 0.0
    mt, qt = _mean_var(nt, st, sst)
    mc, qc = _mean_var(nc, sc, ssc)
    d = mt - mc
    var = (qt + qc) / (nt + nc - 2)
    if var <= 0.0:
        return 0.0, d
    v = var * (1.0 / nt + 1.0 / nc)
    t2 = tau * tau
    return 0.5 * math.log(v / (v + t2)) + t2 * d * d / (2.0 * v * (v + t2)), d
