"""Customer lifetime value: BG/NBD for purchases, Gamma-Gamma for spend.

BG/NBD (Fader, Hardie & Lee 2005, "Counting your customers the easy way"): while alive, a
customer buys as a Poisson process with rate lambda ~ Gamma(r, alpha); after each purchase
they drop out with probability p ~ Beta(a, b). Its inputs per customer are x (repeat
purchases = distinct purchase days after the first), t_x (days from the first to the last
purchase day) and T (days from the first purchase day to as_of); times are in days
(`time_unit`).

Gamma-Gamma (Fader, Hardie & Lee 2005, "RFM and CLV: using iso-value curves"): the spend of
a customer's purchases is Gamma(p, nu) with nu ~ Gamma(q, gamma) across customers; it is
fitted on customers with at least one repeat purchase and positive mean repeat spend m_x.

Both are fitted by maximum likelihood: the log-likelihood is vectorised over the distinct
(x, t_x, T) (and (x, m_x)) rows, weighted by how many customers share each, with analytic
gradients, minimised by L-BFGS-B over log-parameters, on times (and amounts) divided by
their mean so the optimiser sees numbers near 1. Terms that depend on x alone are summed
once per distinct x.

Per customer (`run`): expected purchases over the CLV horizon, P(alive), expected spend
per purchase, and CLV = sum over months m = 1..H of
margin * expected spend * (E[purchases by month m] - E[purchases by month m-1]) / (1+d)^m.
`probability_no_purchase` gives P(no purchase within t | history) for the churn model.

When BG/NBD's fit runs to the limit where nobody ever drops out (a -> 0, or b -> inf),
its P(alive) is 1 for everyone by construction and CLV would assume no one leaves: the run
falls back to the modified BG/NBD (`mbgnbd`), which also lets a customer drop out after
the first purchase; when that cannot estimate dropout either, the run says so
(`dropout_estimated: false`) and P(alive) is left empty. BG/NBD's P(alive) of a customer
without a repeat purchase is 1 by construction too, and is left empty as well.

A model that cannot be fitted (no purchases or no repeat purchases, a parameter running to
zero, a fit that does not converge) raises `StageFailed` saying which model and why; the run
then fails and the previous model stays active. Parameters that grow without bound in pairs
(r with alpha, a with b, q with gamma) are a meaningful limit — customers do not differ in
that respect — so the fit stops at a large value and records it (`at_limit`,
`homogeneous`).

The modules, lowest first (none imports one above it):

* `fitting`: identical rows grouped, and the bounded L-BFGS-B fit both models share;
* `bgnbd`, `gamma_gamma`: each model's parameters, likelihood, fit, predictions and
  simulator;
* `mbgnbd`: the modified BG/NBD's likelihood and fit, and `fit_purchases`, the choice
  between the two;
* `lifetime_value`: CLV from the two models' predictions;
* `stage`: `run`, the training run's CLV stage, with its holdout check.
"""

from crmbot.analytics.clv.bgnbd import (
    QUADRATURE_NODES,
    BgNbdLikelihood,
    BgNbdParams,
    bgnbd_log_likelihood,
    conditional_expected_purchases,
    fit_bgnbd,
    probability_alive,
    probability_no_purchase,
    simulate_bgnbd,
)

# Private, but the tests hold it against the closed form of `conditional_expected_purchases`.
from crmbot.analytics.clv.bgnbd import (
    _expected_purchases_quadrature as _expected_purchases_quadrature,
)
from crmbot.analytics.clv.fitting import EDGE_TOLERANCE, LOG_BOUND, group_rows
from crmbot.analytics.clv.gamma_gamma import (
    GammaGammaLikelihood,
    GammaGammaParams,
    conditional_expected_spend,
    fit_gamma_gamma,
    gamma_gamma_log_likelihood,
    simulate_gamma_gamma,
)
from crmbot.analytics.clv.lifetime_value import DAYS_PER_MONTH, customer_lifetime_value
from crmbot.analytics.clv.mbgnbd import MbgNbdLikelihood, PurchaseFit, fit_mbgnbd, fit_purchases
from crmbot.analytics.clv.stage import HOLDOUT_DAYS, run

__all__ = [
    "DAYS_PER_MONTH",
    "EDGE_TOLERANCE",
    "HOLDOUT_DAYS",
    "LOG_BOUND",
    "QUADRATURE_NODES",
    "BgNbdLikelihood",
    "BgNbdParams",
    "GammaGammaLikelihood",
    "GammaGammaParams",
    "MbgNbdLikelihood",
    "PurchaseFit",
    "bgnbd_log_likelihood",
    "conditional_expected_purchases",
    "conditional_expected_spend",
    "customer_lifetime_value",
    "fit_bgnbd",
    "fit_gamma_gamma",
    "fit_mbgnbd",
    "fit_purchases",
    "gamma_gamma_log_likelihood",
    "group_rows",
    "probability_alive",
    "probability_no_purchase",
    "run",
    "simulate_bgnbd",
    "simulate_gamma_gamma",
]
