"""Churn risk: the probability that a customer makes no purchase within the horizon after
`as_of` (CRMBOT_CHURN_HORIZON_DAYS, default 90), with the reasons in words.

Only customers who have bought at least once are scored; everyone else has no risk (None).

Labels come from time-split snapshots. A snapshot at cutoff c sees the data as of c
(`TrainingData.as_of_earlier`), computes every feature from that alone, and is labelled
1 when the customer made no purchase in (c, c + horizon]. Cutoffs step back 30 days from
as_of - horizon, so every label window ends on or before `as_of`:

* validation: the latest snapshot, c0 = as_of - horizon;
* training: the snapshots whose label windows end on or before c0 (c0 - horizon, then 30
  days further back each, up to six of them). Nothing the model is trained on happened
  after the validation cutoff, just as nothing known at as_of lies after as_of; when the
  history is too short for that gap, the nearest earlier snapshots are used and the
  metrics say `label_windows_overlap_validation: true`.

On a large book the snapshots are of a seeded sample of the customers who had bought by the
validation cutoff (up to 100,000 for validation, 25,000 of them for the training snapshots,
at most 100,000 training rows); every customer is still scored at `as_of`.

Features (`FEATURES`): recency and how overdue the customer is against their own usual gap,
purchase frequency and gap, tenure, spend per purchase day, purchase and spend trends (last
90 days against before), BG/NBD's probability of no purchase in the horizon (fitted afresh
on each snapshot), support tickets (open, last 90 days, time to close) and satisfaction
(latest CSAT, latest NPS, text sentiment, each with a "has one" flag), and the RFM segment
as of the cutoff (one-hot).

Models: a regularised (L2) logistic regression on standardised features and a
HistGradientBoostingClassifier are fitted on the training snapshots; boosting is kept when
its ROC AUC on the validation snapshot beats the logistic model's by at least
`BOOSTING_MIN_GAIN` (0.005), else the logistic model, whose reasons are exact and cheap.
Its probabilities are then calibrated on the validation snapshot with the model itself
frozen: Platt's sigmoid for the logistic model, which keeps its ranking (isotonic
regression, a step function, tied thousands of risks on the real CDNOW book), and for
boosting isotonic regression from 5,000 rows up. Why there: churn base rates drift with
season and the economy, and the latest labelled window is the nearest to today; the
ranking was learned from older windows, and only the mapping from score to probability is
taken from the newest one. The Brier score and calibration figures reported are
cross-fitted — each half of the validation snapshot is calibrated on the other half — so
they are not measured on the rows that were used to calibrate.

Two baselines get exactly the same treatment (fitted on the training snapshots, calibrated
on validation): recency alone, and BG/NBD's P(no purchase in the horizon) alone. Every run
records ROC AUC, PR AUC, Brier (beside the base rate's Brier), lift in the top decile and
mean predicted vs observed churn for the model and both baselines. How the stored risk
ranks the real future of a real book, beside logistic regression on RFM, BG/NBD and
recency, is measured by `python -m benchmarks.churn_real` (docs/models.md).

Reasons: each feature group's contribution to the customer's log-odds, measured against a
reference customer — for the logistic model coef * (x - mean) (exact), for gradient
boosting the change in the model's output when the group's features are set to the
reference (median) customer's values (one vectorised prediction per group). A customer
whose risk is at least the reference customer's (`typical_risk`, in the run's metrics) is
explained by the groups that push it up, one below it by those that keep it low ("what
keeps the risk low"); a group counts when it moves the log-odds by `MIN_PUSH` or more and
its words say so truthfully: the customer's own figure beside a comparison on the right
side of it ("no order for 140 days — usually orders every 30 days", "last CSAT 2/5
(typical customer: 4/5)"). Equal figures, missing answers read as 0 and segments whose
names say the opposite are never reasons (see `reasons`). Up to three per customer; a
customer whose risk is close to the typical one may have none.

The modules, lowest first (none imports one above it):

* `features`: the feature groups and their directions; each buyer's features and facts;
* `snapshots`: the cutoffs, a snapshot's features as of its cutoff, and its labels;
* `model`: the candidate estimators (`DirectedLogistic`, boosting), the baselines, the choice;
* `calibration`: score -> probability on the validation snapshot, cross-fitted for Brier;
* `evaluation`: validation metrics, and the champion/challenger check (`compare`);
* `contributions`: each feature group's push on a customer's log-odds;
* `reasons`: the top pushes towards the verdict, in English with the customer's own numbers;
* `training`: `train_churn_model` and the `ChurnModel` it returns;
* `stage`: `run`, the training run's churn stage;
* `table`: the model beside its rival, baselines and the base rate, for `crmbot model show`.
"""

from crmbot.analytics.churn.calibration import (
    ISOTONIC_MIN_ROWS,
    Calibrator,
    calibrate,
    calibration_method,
    cross_fitted_probabilities,
)
from crmbot.analytics.churn.contributions import group_contributions, reference_customer
from crmbot.analytics.churn.evaluation import compare, evaluate, lift_top_decile
from crmbot.analytics.churn.features import (
    BUYER_SEGMENTS,
    DIRECTIONS,
    FEATURES,
    GROUPS,
    churn_features,
    features_as_of,
    p_no_purchase,
)
from crmbot.analytics.churn.model import (
    BASELINES,
    BOOSTING_MIN_GAIN,
    DirectedLogistic,
    candidate_models,
    choose_model,
)
from crmbot.analytics.churn.reasons import (
    MIN_PUSH,
    PHRASERS,
    TOP_REASONS,
    reasons,
    typical_figures,
)
from crmbot.analytics.churn.snapshots import (
    MAX_TRAINING_SNAPSHOTS,
    MIN_SNAPSHOT_CUSTOMERS,
    SNAPSHOT_STEP_DAYS,
    Snapshot,
    labels,
    no_purchase_label,
    snapshot_at,
    snapshot_cutoffs,
)
from crmbot.analytics.churn.stage import run
from crmbot.analytics.churn.table import COMPARED_METRICS, MODEL_TITLES, comparison
from crmbot.analytics.churn.training import (
    MAX_TRAINING_ROWS,
    MIN_OUTCOME_ROWS,
    TRAINING_CUSTOMERS,
    VALIDATION_CUSTOMERS,
    ChurnModel,
    NotEnoughHistory,
    train_churn_model,
)

__all__ = [
    "BASELINES",
    "BOOSTING_MIN_GAIN",
    "BUYER_SEGMENTS",
    "COMPARED_METRICS",
    "DIRECTIONS",
    "FEATURES",
    "GROUPS",
    "ISOTONIC_MIN_ROWS",
    "MAX_TRAINING_ROWS",
    "MAX_TRAINING_SNAPSHOTS",
    "MIN_OUTCOME_ROWS",
    "MIN_PUSH",
    "MIN_SNAPSHOT_CUSTOMERS",
    "MODEL_TITLES",
    "PHRASERS",
    "SNAPSHOT_STEP_DAYS",
    "TOP_REASONS",
    "TRAINING_CUSTOMERS",
    "VALIDATION_CUSTOMERS",
    "Calibrator",
    "ChurnModel",
    "DirectedLogistic",
    "NotEnoughHistory",
    "Snapshot",
    "calibrate",
    "calibration_method",
    "candidate_models",
    "choose_model",
    "churn_features",
    "compare",
    "comparison",
    "cross_fitted_probabilities",
    "evaluate",
    "features_as_of",
    "group_contributions",
    "labels",
    "lift_top_decile",
    "no_purchase_label",
    "p_no_purchase",
    "reasons",
    "reference_customer",
    "run",
    "snapshot_at",
    "snapshot_cutoffs",
    "train_churn_model",
    "typical_figures",
]
