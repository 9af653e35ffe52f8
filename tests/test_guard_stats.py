"""The guard's statistics: hand-checked values and properties of the e-values."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as s

from rampup import guard_stats as st

counts = s.integers(min_value=0, max_value=5000)
requests = s.integers(min_value=1, max_value=10**7)


def test_halt_e_by_hand_all_errors_in_treatment() -> None:
    """Equal traffic (p0 = 1/2), 2 treatment errors, none in control.

    p(2) = 2*(1/2) / (2*(1/2) + 1/2) = 2/3 and p(5) = 5/6, so LR(2) = (4/3)^2 = 16/9 and
    LR(5) = (5/3)^2 = 25/9; E = (16/9 + 25/9) / 2 = 41/18.
    """
    log_e, lrs = st.halt_e(2, 0, 100, 100)
    assert math.exp(log_e) == pytest.approx(41 / 18)
    assert [math.exp(x) for x in lrs] == pytest.approx([16 / 9, 25 / 9])


def test_halt_e_by_hand_one_error_each() -> None:
    """p0 = 1/2, one error each: LR(2) = (4/3)(2/3) = 8/9, LR(5) = (5/3)(1/3) = 5/9, E = 13/18."""
    log_e, _ = st.halt_e(1, 1, 50, 50)
    assert abs(math.exp(log_e) - 13 / 18) < 1e-12


def test_advance_e_by_hand() -> None:
    """p0 = 1/2, no treatment error and 2 control errors, against r = 2 (p(2) = 2/3):
    ((1-p(r)) / (1/3))^2 is 4 (r = 0.5, p = 1/3), 2.25 (r = 1) and 1.44 (r = 1.5, p = 0.6);
    E_adv = (4 + 2.25 + 1.44) / 3 = 2.5633..."""
    assert abs(math.exp(st.advance_e(0, 2, 10, 10)) - 7.69 / 3) < 1e-12


def test_srm_p_value_by_hand() -> None:
    """60 of 100 requests where 50 were expected: chi2 = 100/50 * 2 = 4, p = P(|Z| > 2) =
    erfc(sqrt 2) = 0.0455."""
    assert abs(st.srm_p_value(60, 40, 0.5) - 0.04550026389635842) < 1e-12
    assert st.srm_p_value(50, 50, 0.5) == 1.0
    assert st.srm_p_value(0, 0, 0.5) == 1.0


def test_msprt_by_hand() -> None:
    """Treatment logs {1, 3}, control {0, 2}: d = 1, pooled variance (2 + 2) / 2 = 2,
    V = 2 * (1/2 + 1/2) = 2; with tau = 1, log Lambda = ln(2/3)/2 + 1/(2*2*3) = -0.1194."""
    log_l, d = st.msprt_log((2, 4, 10), (2, 2, 4), tau=1.0)
    assert d == 1.0
    assert abs(log_l - (0.5 * math.log(2 / 3) + 1 / 12)) < 1e-12


def test_msprt_grows_with_a_real_slowdown() -> None:
    """10,000 requests a side, 10 % slower in the geometric mean (sigma 0.5): overwhelming."""
    n, sd = 10_000, 0.5
    mc, mt = math.log(0.1), math.log(0.11)
    t = (n, n * mt, n * (mt * mt + sd * sd))
    c = (n, n * mc, n * (mc * mc + sd * sd))
    log_l, d = st.msprt_log(t, c)
    assert d > 0
    assert log_l > math.log(200)
    assert st.msprt_log(c, c)[0] < 0  # identical samples: evidence against a difference


def test_nothing_to_compare_is_neutral() -> None:
    """No requests on one side, or fewer than 2 latencies: every test reads 1 (log 0)."""
    assert st.halt_e(3, 0, 0, 100)[0] == 0.0
    assert st.advance_e(0, 3, 100, 0) == 0.0
    assert st.msprt_log((1, 0.0, 0.0), (5, 1.0, 1.0)) == (0.0, 0.0)


def test_huge_counts_do_not_overflow() -> None:
    """Millions of errors stay finite in log space."""
    log_e, _ = st.halt_e(2_000_000, 1_000_000, 10**8, 10**8)
    assert math.isfinite(log_e)
    assert log_e > 1000


@given(requests, requests)
def test_e_is_one_without_errors(nt: int, nc: int) -> None:
    """Xt = Xc = 0: no evidence either way, E = E_adv = 1."""
    assert st.halt_e(0, 0, nt, nc)[0] == 0.0
    assert st.advance_e(0, 0, nt, nc) == 0.0


@given(counts, counts, requests, requests)
def test_e_is_monotone_in_the_treatments_errors(xt: int, xc: int, nt: int, nc: int) -> None:
    """One more treatment error raises E and lowers E_adv; one more control error lowers E."""
    e = st.halt_e(xt, xc, nt, nc)[0]
    assert st.halt_e(xt + 1, xc, nt, nc)[0] > e
    assert st.halt_e(xt, xc + 1, nt, nc)[0] < e
    assert st.advance_e(xt + 1, xc, nt, nc) < st.advance_e(xt, xc, nt, nc)


@given(counts, counts, requests, requests)
def test_carried_evidence_adds_per_ratio(xt: int, xc: int, nt: int, nc: int) -> None:
    """Carrying a stage's log-likelihoods equals adding them per ratio before mixing."""
    _, first = st.halt_e(xt, xc, nt, nc)
    log_e, total = st.halt_e(xt, xc, nt, nc, first)
    assert total == tuple(2 * x for x in first)
    assert abs(log_e - st.log_mean_exp(total)) < 1e-9


@given(s.integers(0, 10**6), s.integers(0, 10**6), s.floats(0.001, 0.999))
def test_srm_p_is_a_probability(nt: int, nc: int, share: float) -> None:
    """The sample-ratio p-value is within [0, 1]."""
    assert 0.0 <= st.srm_p_value(nt, nc, share) <= 1.0


def test_log_mean_exp_matches_the_naive_sum() -> None:
    """For small values it is log(mean(exp)); for huge ones it does not overflow."""
    assert abs(st.log_mean_exp([0.0, math.log(3)]) - math.log(2)) < 1e-12
    assert st.log_mean_exp([1000.0, 1000.0]) == 1000.0
    assert st.log_mean_exp([-math.inf]) == -math.inf
