"""BG/NBD and Gamma-Gamma: likelihoods against independent references, published values,
analytic gradients, parameter recovery, and the failures a run must survive."""

from __future__ import annotations

import math
from datetime import date

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, special
from scipy.optimize import check_grad

from crmbot.analytics import clv
from crmbot.analytics.base import RunContext, StageFailed, TrainingData
from crmbot.analytics.clv import (
    BgNbdLikelihood,
    BgNbdParams,
    GammaGammaLikelihood,
    GammaGammaParams,
)
from crmbot.core.config import Settings
from tests.support.bgnbd_integrals import integrate_over_population, mixing

# Fader, Hardie & Lee (2005), CDNOW sample, weeks.
CDNOW = BgNbdParams(r=0.243, alpha=4.414, a=0.793, b=2.426, time_unit="weeks")
CDNOW_SPEND = GammaGammaParams(p=6.25, q=3.74, gamma=15.44)
ROWS = [  # (x, t_x, T) in weeks
    (0, 0.0, 38.86),
    (1, 20.0, 38.86),
    (2, 30.43, 38.86),
    (7, 35.86, 38.86),
    (3, 5.0, 30.0),
    (12, 28.0, 29.0),
]


# ---------------------------------------------------------------------------------------
# Independent references: the formulas written out plainly, and numerical integration over
# the individual-level model (lambda ~ Gamma(r, alpha), p ~ Beta(a, b)).


def reference_bgnbd_likelihood(params: BgNbdParams, x: int, t_x: float, T: float) -> float:
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    a1 = special.gamma(r + x) * alpha**r / special.gamma(r)
    a2 = special.beta(a, b + x) / special.beta(a, b)
    a3 = (1 / (alpha + T)) ** (r + x)
    a4 = (a / (b + x - 1)) * (1 / (alpha + t_x)) ** (r + x) if x > 0 else 0.0
    return a1 * a2 * (a3 + a4)


def _individual(x: int, t_x: float, T: float, lam: float, p: float) -> tuple[float, float]:
    """(P(data, alive at T | lambda, p), P(data, dropped out | lambda, p))."""
    alive = (1 - p) ** x * lam**x * math.exp(-lam * T)
    dropped = p * (1 - p) ** (x - 1) * lam**x * math.exp(-lam * t_x) if x > 0 else 0.0
    return alive, dropped


def _scale(params: BgNbdParams, x: int, T: float) -> float:
    return (params.r + x) / (params.alpha + T)


def integrated_likelihood(params: BgNbdParams, x: int, t_x: float, T: float) -> float:
    return integrate_over_population(
        lambda lam, p: sum(_individual(x, t_x, T, lam, p)) * mixing(params, lam, p),
        _scale(params, x, T),
    )


def integrated_expectations(
    params: BgNbdParams, t: float, x: int, t_x: float, T: float
) -> tuple[float, float, float]:
    """(P(alive), E[purchases in t], P(no purchase in t)) given the history."""
    likelihood = integrated_likelihood(params, x, t_x, T)
    scale = _scale(params, x, T)
    alive_mass = integrate_over_population(
        lambda lam, p: _individual(x, t_x, T, lam, p)[0] * mixing(params, lam, p), scale
    )
    # Alive at T: purchases in the next t follow E[Y(t) | lambda, p] = (1 - e^(-lambda p t)) / p
    expected = integrate_over_population(
        lambda lam, p: (
            _individual(x, t_x, T, lam, p)[0]
            * (1 - math.exp(-lam * p * t))
            / p
            * mixing(params, lam, p)
        ),
        scale,
    )
    quiet = integrate_over_population(
        lambda lam, p: (
            _individual(x, t_x, T, lam, p)[0] * math.exp(-lam * t) * mixing(params, lam, p)
        ),
        scale,
    )
    dropped_mass = likelihood - alive_mass
    return alive_mass / likelihood, expected / likelihood, (dropped_mass + quiet) / likelihood


def reference_gamma_gamma_likelihood(params: GammaGammaParams, x: int, m: float) -> float:
    p, q, g = params.p, params.q, params.gamma
    return (
        special.gamma(p * x + q)
        / (special.gamma(p * x) * special.gamma(q))
        * g**q
        * m ** (p * x - 1)
        * x ** (p * x)
        / (g + m * x) ** (p * x + q)
    )


# ---------------------------------------------------------------------------------------
# BG/NBD


def test_bgnbd_log_likelihood_matches_the_plain_formula_and_integration() -> None:
    x, t_x, T = (np.array(column, dtype=float) for column in zip(*ROWS, strict=True))
    vectorised = clv.bgnbd_log_likelihood(CDNOW, x, t_x, T)
    plain = sum(math.log(reference_bgnbd_likelihood(CDNOW, *row)) for row in ROWS)
    assert vectorised == pytest.approx(plain, rel=1e-10)
    for row in ROWS[:4]:
        one = clv.bgnbd_log_likelihood(CDNOW, *(np.array([v], dtype=float) for v in row))
        assert math.exp(one) == pytest.approx(integrated_likelihood(CDNOW, *row), rel=1e-5)


def test_conditional_expectation_matches_the_published_cdnow_example() -> None:
    # FHL (2005): a customer with x = 2, t_x = 30.43, T = 38.86 weeks is expected to make
    # 1.226 purchases in the next 39 weeks.
    expected = clv.conditional_expected_purchases(CDNOW, 39, [2], [30.43], [38.86])
    assert expected[0] == pytest.approx(1.226, abs=5e-4)


@pytest.mark.parametrize("row", ROWS[1:5])
def test_p_alive_expected_purchases_and_p_no_purchase_match_integration(row) -> None:
    x, t_x, T = row
    alive, expected, quiet = integrated_expectations(CDNOW, 39.0, x, t_x, T)
    assert clv.probability_alive(CDNOW, [x], [t_x], [T])[0] == pytest.approx(alive, rel=1e-4)
    assert clv.conditional_expected_purchases(CDNOW, 39.0, [x], [t_x], [T])[0] == pytest.approx(
        expected, rel=1e-4
    )
    assert clv.probability_no_purchase(CDNOW, 39.0, [x], [t_x], [T])[0] == pytest.approx(
        quiet, rel=1e-4
    )


def test_quadrature_fallback_agrees_with_the_closed_form() -> None:
    x = np.array([0.0, 2.0, 7.0, 12.0])
    T = np.array([38.86, 38.86, 38.86, 29.0])
    t_x = np.array([0.0, 30.43, 35.86, 28.0])
    closed = clv.conditional_expected_purchases(CDNOW, 52.0, x, t_x, T)
    quadrature = clv._expected_purchases_quadrature(CDNOW, 52.0, x, T) * clv.probability_alive(
        CDNOW, x, t_x, T
    )
    np.testing.assert_allclose(quadrature, closed, rtol=1e-6)


def test_a_book_where_nobody_leaves_and_everyone_buys_alike_predicts_finitely() -> None:
    # Poisson buyers at one rate, no drop-out: the fit ends at the limits (a -> 0, r and
    # alpha -> infinity), where the closed form's hypergeometric function breaks down.
    rng = np.random.default_rng(12)
    T = rng.integers(60, 700, 4000).astype(float)
    x = rng.poisson(T / 60.0).astype(float)
    t_x = np.where(x > 0, np.minimum(T, np.ceil(T * rng.beta(x + 1e-9, 1.0))), 0.0)
    fitted = clv.fit_bgnbd(x, np.maximum(t_x, (x > 0) * 1.0), T)
    expected = clv.conditional_expected_purchases(fitted, 365.0, x, t_x, T)
    assert np.isfinite(expected).all()
    assert float(np.median(expected)) == pytest.approx(365.0 / 60.0, rel=0.1)


def test_bgnbd_gradient_is_the_derivative_of_the_likelihood() -> None:
    rng = np.random.default_rng(5)
    T = rng.uniform(20, 80, 500)
    x, t_x = clv.simulate_bgnbd(CDNOW, T, rng)
    (ux, ut, uT), weights = clv.group_rows(x, t_x / 50, T / 50)
    likelihood = BgNbdLikelihood(ux, ut, uT, weights)
    for point in (np.zeros(4), np.log([0.3, 0.1, 0.8, 2.4]), np.log([2.0, 3.0, 0.2, 9.0])):
        error = check_grad(
            lambda p: likelihood.objective(p)[0], lambda p: likelihood.objective(p)[1], point
        )
        assert error < 1e-5


def test_grouping_rows_gives_the_same_likelihood_as_one_row_per_customer() -> None:
    x = np.array([0, 0, 2, 2, 2, 5, 0], dtype=float)
    t_x = np.array([0, 0, 10, 10, 10, 30, 0], dtype=float)
    T = np.array([40, 40, 40, 40, 40, 40, 12], dtype=float)
    grouped = clv.bgnbd_log_likelihood(CDNOW, x, t_x, T)
    one_by_one = sum(
        clv.bgnbd_log_likelihood(CDNOW, *(np.array([v]) for v in row))
        for row in zip(x, t_x, T, strict=True)
    )
    assert grouped == pytest.approx(one_by_one, rel=1e-12)
    assert clv.group_rows(x, t_x, T)[1].tolist() == [1.0, 2.0, 3.0, 1.0]


def test_bgnbd_recovers_the_parameters_it_was_simulated_from() -> None:
    rng = np.random.default_rng(2024)
    T = rng.uniform(27, 78, 20_000)
    x, t_x = clv.simulate_bgnbd(CDNOW, T, rng)
    fitted = clv.fit_bgnbd(x, t_x, T, time_unit="weeks")
    for name in ("r", "alpha", "a", "b"):
        assert getattr(fitted, name) == pytest.approx(getattr(CDNOW, name), rel=0.2), name
    # It is a maximum: at least as likely as the truth, and the reported LL is the real one.
    truth_ll = clv.bgnbd_log_likelihood(CDNOW, x, t_x, T)
    assert fitted.log_likelihood >= truth_ll
    assert fitted.log_likelihood == pytest.approx(
        clv.bgnbd_log_likelihood(fitted, x, t_x, T), rel=1e-9
    )
    assert fitted.customers == 20_000


def test_bgnbd_fit_is_the_same_in_days_and_weeks() -> None:
    rng = np.random.default_rng(11)
    T = rng.uniform(27, 78, 3000)
    x, t_x = clv.simulate_bgnbd(CDNOW, T, rng)
    weeks = clv.fit_bgnbd(x, t_x, T, time_unit="weeks")
    days = clv.fit_bgnbd(x, t_x * 7, T * 7)
    assert days.r == pytest.approx(weeks.r, rel=1e-4)
    assert days.alpha == pytest.approx(weeks.alpha * 7, rel=1e-4)
    assert days.a == pytest.approx(weeks.a, rel=1e-3)
    assert days.b == pytest.approx(weeks.b, rel=1e-3)


def test_bgnbd_without_repeat_purchases_says_why_it_cannot_fit() -> None:
    with pytest.raises(StageFailed, match="BG/NBD: no customer has a repeat purchase"):
        clv.fit_bgnbd(np.zeros(5), np.zeros(5), np.arange(5.0) + 10)
    with pytest.raises(StageFailed, match="BG/NBD: no customer has a purchase"):
        clv.fit_bgnbd(np.zeros(0), np.zeros(0), np.zeros(0))


def test_bgnbd_on_identical_customers_ends_at_the_homogeneous_limit() -> None:
    # Everyone bought 3 more times in 60 days and was seen for 90: no spread to estimate.
    # The fit runs to the limit (everyone buys at the same rate and nobody seems to leave)
    # and says so, instead of crashing or inventing a spread.
    n = 50
    fitted = clv.fit_bgnbd(np.full(n, 3.0), np.full(n, 60.0), np.full(n, 90.0))
    assert "r->inf" in fitted.at_limit
    assert fitted.r / fitted.alpha == pytest.approx(3 / 90, rel=0.01)  # repeat purchases / T
    expected = clv.conditional_expected_purchases(fitted, 90.0, [3.0], [60.0], [90.0])
    assert np.isfinite(expected).all() and expected[0] == pytest.approx(3.0, rel=0.05)


# ---------------------------------------------------------------------------------------
# Gamma-Gamma


def test_gamma_gamma_log_likelihood_matches_the_plain_formula() -> None:
    x = np.array([1, 2, 2, 5, 9], dtype=float)
    m = np.array([10.0, 35.5, 35.5, 12.0, 80.0])
    vectorised = clv.gamma_gamma_log_likelihood(CDNOW_SPEND, x, m)
    plain = sum(
        math.log(reference_gamma_gamma_likelihood(CDNOW_SPEND, int(xi), mi))
        for xi, mi in zip(x, m, strict=True)
    )
    assert vectorised == pytest.approx(plain, rel=1e-10)


def test_gamma_gamma_likelihood_integrates_to_one_over_spend() -> None:
    # A density of the mean spend m for each x: it must integrate to 1.
    for x in (1, 3):
        total, _ = integrate.quad(
            lambda m, x=x: reference_gamma_gamma_likelihood(CDNOW_SPEND, x, m), 0, np.inf
        )
        assert total == pytest.approx(1.0, abs=1e-6)


def test_gamma_gamma_gradient_is_the_derivative_of_the_likelihood() -> None:
    rng = np.random.default_rng(8)
    x = rng.integers(1, 8, 400).astype(float)
    m = clv.simulate_gamma_gamma(CDNOW_SPEND, x, rng)
    likelihood = GammaGammaLikelihood(x, m / m.mean(), np.ones(len(x)))
    for point in (np.zeros(3), np.log([6.0, 3.0, 0.5]), np.log([0.5, 8.0, 4.0])):
        error = check_grad(
            lambda p: likelihood.objective(p)[0], lambda p: likelihood.objective(p)[1], point
        )
        assert error < 1e-5


def test_gamma_gamma_recovers_the_parameters_it_was_simulated_from() -> None:
    rng = np.random.default_rng(31)
    x = rng.integers(1, 10, 20_000).astype(float)
    m = clv.simulate_gamma_gamma(CDNOW_SPEND, x, rng)
    fitted = clv.fit_gamma_gamma(x, m)
    assert fitted.p == pytest.approx(CDNOW_SPEND.p, rel=0.15)
    assert fitted.q == pytest.approx(CDNOW_SPEND.q, rel=0.15)
    assert fitted.gamma == pytest.approx(CDNOW_SPEND.gamma, rel=0.2)
    assert fitted.log_likelihood >= clv.gamma_gamma_log_likelihood(CDNOW_SPEND, x, m)


def test_expected_spend_shrinks_towards_the_population_mean() -> None:
    spend = clv.conditional_expected_spend(CDNOW_SPEND, [0, 1, 50], [0.0, 100.0, 100.0])
    population = CDNOW_SPEND.mean_spend
    assert spend[0] == pytest.approx(population)
    assert population < spend[1] < spend[2] < 100.0 + 1e-9
    # Published CDNOW example (FHL 2005 note): x = 2 repeat purchases averaging 35 -> ~ 34.92
    # E[M] = (p (gamma + x m)) / (p x + q - 1)
    assert clv.conditional_expected_spend(CDNOW_SPEND, [2], [35.0])[0] == pytest.approx(
        6.25 * (15.44 + 70.0) / (12.5 + 2.74)
    )


def test_gamma_gamma_on_spend_that_does_not_differ_between_customers() -> None:
    # Every purchase drawn from the same Gamma: q and gamma head for the limit where
    # everyone's expected spend is the population mean; no failure either way.
    rng = np.random.default_rng(3)
    x = rng.integers(1, 6, 3000).astype(float)
    m = rng.gamma(4.0 * x, 25.0) / x
    fitted = clv.fit_gamma_gamma(x, m)
    assert fitted.q > 50
    assert fitted.mean_spend == pytest.approx(100.0, rel=0.05)
    spend = clv.conditional_expected_spend(fitted, [1.0, 5.0], [60.0, 150.0])
    np.testing.assert_allclose(spend, fitted.mean_spend, rtol=0.05)
    # Exactly equal means per purchase count leave no spread at all: the limit itself.
    exact = clv.fit_gamma_gamma(
        np.array([1.0, 1.0, 2.0, 2.0]), np.array([90.0, 110.0, 95.0, 105.0])
    )
    assert exact.mean_spend == pytest.approx(100.0, rel=0.05)


def test_gamma_gamma_refuses_data_it_cannot_fit() -> None:
    with pytest.raises(StageFailed, match="Gamma-Gamma: fewer than two"):
        clv.fit_gamma_gamma(np.array([0.0, 1.0]), np.array([0.0, 20.0]))
    with pytest.raises(StageFailed, match="Gamma-Gamma: every repeat customer spends the same"):
        clv.fit_gamma_gamma(np.array([1.0, 2.0, 3.0]), np.array([20.0, 20.0, 20.0]))


# ---------------------------------------------------------------------------------------
# CLV and the stage


def test_clv_discounts_monthly_expected_margin() -> None:
    x, t_x, T = np.array([2.0]), np.array([200.0]), np.array([300.0])
    params = BgNbdParams(r=0.8, alpha=40.0, a=0.7, b=3.0)
    spend = np.array([100.0])
    one_month, expected = clv.customer_lifetime_value(
        params, spend, x, t_x, T, months=1, monthly_discount_rate=0.0, margin=0.5
    )
    month = clv.conditional_expected_purchases(params, clv.DAYS_PER_MONTH, x, t_x, T)
    assert one_month[0] == pytest.approx(0.5 * 100.0 * month[0])
    assert expected[0] == pytest.approx(month[0])
    undiscounted, year = clv.customer_lifetime_value(
        params, spend, x, t_x, T, months=12, monthly_discount_rate=0.0, margin=0.5
    )
    discounted, _ = clv.customer_lifetime_value(
        params, spend, x, t_x, T, months=12, monthly_discount_rate=0.02, margin=0.5
    )
    assert undiscounted[0] == pytest.approx(0.5 * 100.0 * year[0])
    assert one_month[0] < discounted[0] < undiscounted[0]


def _training_data(
    orders: list[tuple[int, str, float]], customers: int, as_of: date
) -> TrainingData:
    frame = pd.DataFrame(orders, columns=["customer_pk", "ordered_at", "amount"])
    frame["ordered_at"] = pd.to_datetime(frame["ordered_at"], format="ISO8601")
    frame.insert(0, "order_pk", range(1, len(frame) + 1))
    empty = pd.DataFrame
    return TrainingData(
        as_of=as_of,
        customers=pd.DataFrame(
            {"customer_id": [f"C{i}" for i in range(1, customers + 1)], "signed_up_at": pd.NaT},
            index=pd.Index(range(1, customers + 1), name="customer_pk"),
        ),
        orders=frame,
        lines=empty(columns=["order_pk", "product_pk", "quantity", "unit_price"]),
        products=empty(columns=["product_id", "name", "category", "price", "margin"]),
        tickets=empty(
            columns=["customer_pk", "opened_at", "closed_at", "channel", "subject", "body", "csat"]
        ),
        feedback=empty(columns=["customer_pk", "submitted_at", "nps", "csat", "comment"]),
        referrals=empty(columns=["referrer_pk", "referred_pk", "referred_at"]),
    )


def _run_stage(data: TrainingData, settings: Settings) -> RunContext:
    from crmbot.analytics import features

    ctx = RunContext.start(data, settings)
    features.run(ctx)
    clv.run(ctx)
    return ctx


def test_stage_fills_clv_columns_and_records_params(settings: Settings) -> None:
    rng = np.random.default_rng(4)
    orders = []
    for customer in range(1, 121):
        day = pd.Timestamp("2024-01-01") + pd.Timedelta(days=int(rng.integers(0, 300)))
        while day <= pd.Timestamp("2025-06-30"):
            orders.append((customer, day.isoformat(), float(rng.gamma(3, 30))))
            if rng.random() < 0.15:
                break
            day += pd.Timedelta(days=int(rng.integers(5, 90)))
    orders.append((1, "2025-06-01", -40.0))  # a refund
    orders.append((2, "2025-06-02", 0.0))  # a free order
    ctx = _run_stage(_training_data(orders, 122, date(2025, 6, 30)), settings)
    scores = ctx.scores
    buyers = scores.index[:120]
    assert scores.loc[buyers, ["clv", "expected_purchases", "expected_spend"]].notna().all().all()
    assert scores.loc[[121, 122], "clv"].isna().all()  # customers without purchases
    # BG/NBD's P(alive) is 1 by construction without a repeat purchase: not an estimate.
    repeat = ctx.features.loc[buyers, "repeat_purchases"] > 0
    assert scores.loc[buyers[~repeat], "p_alive"].isna().all() and (~repeat).any()
    alive = scores.loc[buyers[repeat], "p_alive"]
    assert ((alive > 0) & (alive <= 1)).all()
    assert (scores.loc[buyers, "clv"] >= 0).all()
    params = ctx.params["clv"]
    assert set(params["bgnbd"]) == {"r", "alpha", "a", "b", "time_unit"}
    assert params["bgnbd"]["time_unit"] == "days"
    assert set(params["gamma_gamma"]) == {"p", "q", "gamma"}
    metrics = ctx.metrics["clv"]
    assert metrics["bgnbd"]["customers"] == 120
    assert metrics["bgnbd"]["holdout"]["holdout_days"] == clv.HOLDOUT_DAYS
    assert metrics["total_clv"] == pytest.approx(float(scores["clv"].sum()), rel=1e-6)


def test_stage_with_only_one_time_buyers_fails_naming_the_model(settings: Settings) -> None:
    orders = [(c, f"2025-0{1 + c % 5}-1{c % 9}", 50.0 + c) for c in range(1, 30)]
    with pytest.raises(StageFailed, match="^BG/NBD: no customer has a repeat purchase"):
        _run_stage(_training_data(orders, 29, date(2025, 6, 30)), settings)


def test_stage_with_a_single_customer_fails_with_a_reason(settings: Settings) -> None:
    orders = [(1, "2025-01-05", 20.0), (1, "2025-02-05", 30.0), (1, "2025-04-01", 25.0)]
    with pytest.raises(StageFailed, match="^(BG/NBD|Gamma-Gamma): "):
        _run_stage(_training_data(orders, 1, date(2025, 6, 30)), settings)
