"""When BG/NBD's fit runs to the limit where nobody drops out: the modified BG/NBD against
its individual-level model, parameter recovery, and the fallback a run takes."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.optimize import check_grad

from crmbot.analytics.clv import (
    BgNbdParams,
    MbgNbdLikelihood,
    conditional_expected_purchases,
    fit_mbgnbd,
    fit_purchases,
    probability_alive,
    probability_no_purchase,
    simulate_bgnbd,
)
from tests.support.bgnbd_integrals import integrate_over_population, mixing

MBG = BgNbdParams(r=0.5, alpha=6.0, a=0.8, b=2.5, time_unit="weeks", modified=True)
ROWS = [(0, 0.0, 38.0), (1, 20.0, 38.0), (2, 30.4, 38.9), (5, 10.0, 40.0), (7, 35.9, 38.9)]


def _individual(x: int, t_x: float, T: float, lam: float, p: float) -> tuple[float, float]:
    """MBG/NBD for one customer: (P(data, alive at T), P(data, dropped out at t_x)). The
    first purchase is a chance to drop out too, so x repeats mean x + 1 such chances."""
    alive = (1 - p) ** (x + 1) * lam**x * math.exp(-lam * T)
    dropped = p * (1 - p) ** x * lam**x * math.exp(-lam * t_x)
    return alive, dropped


def _integrate(function, scale: float) -> float:
    # Ten times tighter than test_clv's integrals (its rel=1e-6 checks need the room).
    return integrate_over_population(function, scale, epsabs=1e-13, epsrel=1e-9)


@pytest.mark.parametrize("row", ROWS)
def test_mbgnbd_matches_its_individual_level_model(row) -> None:
    x, t_x, T = row
    scale = (MBG.r + x) / (MBG.alpha + T)
    both = _integrate(
        lambda lam, p: sum(_individual(x, t_x, T, lam, p)) * mixing(MBG, lam, p), scale
    )
    alive = _integrate(
        lambda lam, p: _individual(x, t_x, T, lam, p)[0] * mixing(MBG, lam, p), scale
    )
    likelihood = MbgNbdLikelihood(np.array([x]), np.array([t_x]), np.array([T]), np.ones(1))
    assert likelihood.log_likelihood(MBG.r, MBG.alpha, MBG.a, MBG.b) == pytest.approx(
        math.log(both), rel=1e-6
    )
    assert float(probability_alive(MBG, x, t_x, T)) == pytest.approx(alive / both, rel=1e-6)
    t = 20.0
    expected = _integrate(
        lambda lam, p: (
            _individual(x, t_x, T, lam, p)[0]
            * (1 - math.exp(-lam * p * t))
            / p
            * mixing(MBG, lam, p)
        ),
        scale,
    )
    quiet = _integrate(
        lambda lam, p: _individual(x, t_x, T, lam, p)[0] * math.exp(-lam * t) * mixing(MBG, lam, p),
        scale,
    )
    assert conditional_expected_purchases(MBG, t, x, t_x, T)[0] == pytest.approx(
        expected / both, rel=1e-5
    )
    assert probability_no_purchase(MBG, t, x, t_x, T) == pytest.approx(
        (both - alive + quiet) / both, rel=1e-5
    )


def test_mbgnbd_gradient_is_the_likelihoods() -> None:
    x = np.array([0.0, 1.0, 2.0, 5.0, 7.0])
    t_x = np.array([0.0, 0.5, 0.8, 0.3, 0.95])
    T = np.array([1.0, 1.0, 1.1, 1.2, 1.0])
    likelihood = MbgNbdLikelihood(x, t_x, T, np.array([3.0, 2.0, 1.0, 1.0, 4.0]))
    for point in ([0.1, -0.2, 0.3, 0.5], [-1.0, 0.5, -0.7, 1.2]):
        error = check_grad(
            lambda p: likelihood.objective(p)[0],
            lambda p: likelihood.objective(p)[1],
            np.array(point),
        )
        assert error < 1e-5


def test_mbgnbd_recovers_known_parameters() -> None:
    truth = BgNbdParams(r=0.4, alpha=20.0, a=0.9, b=3.0, modified=True)
    rng = np.random.default_rng(11)
    T = rng.uniform(200, 500, 30_000).round()
    x, t_x = simulate_bgnbd(truth, T, rng)
    fitted = fit_mbgnbd(x, np.round(t_x, 3), T)
    assert fitted.modified and fitted.name == "MBG/NBD" and not fitted.at_limit
    for name in ("r", "alpha", "a", "b"):
        assert getattr(fitted, name) == pytest.approx(getattr(truth, name), rel=0.15), name


def _never_lapsing_book(lapsed: int, seed: int = 3) -> tuple[np.ndarray, ...]:
    """300 one-time buyers and 200 regular buyers who never lapse within the year, plus
    `lapsed` repeat buyers silent for four of their intervals or more."""
    rng = np.random.default_rng(seed)
    x, t_x, T = [], [], []
    for _ in range(300):
        x.append(0), t_x.append(0), T.append(int(rng.integers(30, 365)))
    for _ in range(200):
        gap, age = int(rng.integers(10, 40)), int(rng.integers(120, 365))
        x.append(age // gap), t_x.append(age // gap * gap), T.append(age)
    for _ in range(lapsed):
        gap, k = int(rng.integers(10, 30)), int(rng.integers(2, 6))
        x.append(k), t_x.append(k * gap), T.append(int(rng.integers(k * gap + 4 * gap, 365)))
    return tuple(np.array(column, dtype=float) for column in (x, t_x, T))


def test_a_book_without_lapses_drives_bgnbd_to_its_limit_and_mbgnbd_takes_over() -> None:
    x, t_x, T = _never_lapsing_book(lapsed=10)
    fit = fit_purchases(x, t_x, T)
    assert fit.bgnbd.dropout_at_limit  # BG/NBD: nobody ever leaves
    assert fit.fell_back and fit.params.name == "MBG/NBD" and fit.dropout_estimated
    assert fit.note is not None and "MBG/NBD" in fit.note
    lapsed = (x > 0) & (T - t_x > 3 * t_x / np.maximum(x, 1))
    assert lapsed.sum() == 10
    assert probability_alive(fit.bgnbd, x, t_x, T)[lapsed].min() >= 0.99  # the limit's answer
    assert probability_alive(fit.params, x, t_x, T)[lapsed].max() < 0.99


def test_when_no_model_can_estimate_dropout_the_fit_says_so() -> None:
    x, t_x, T = _never_lapsing_book(lapsed=0)
    x, t_x, T = x[x > 0], t_x[x > 0], T[x > 0]  # repeat buyers only, none lapsed
    fit = fit_purchases(x, t_x, T)
    assert not fit.dropout_estimated and not fit.fell_back
    assert fit.note is not None and fit.note.startswith("dropout could not be estimated")


def test_a_sound_bgnbd_fit_is_kept() -> None:
    truth = BgNbdParams(r=0.25, alpha=30.0, a=0.8, b=2.4)
    rng = np.random.default_rng(5)
    T = rng.uniform(100, 600, 5000).round()
    x, t_x = simulate_bgnbd(truth, T, rng)
    fit = fit_purchases(x, np.round(t_x, 3), T)
    assert fit.params is fit.bgnbd and fit.mbgnbd is None and fit.note is None
