"""Churn risk on real books against what really happened, beside the simple baselines.

    python -m benchmarks.churn_real [--cutoffs 1997-09-30,1997-12-31,1998-03-31] [--json out.json]

For each real public transaction book a package ships (`benchmarks.real_books`: CDNOW) and
each cutoff, crmbot is trained through the real pipeline (`crmbot.runs.train`, on a
temporary SQLite database) as of the cutoff, and every customer with a purchase by then is
scored. The real next 90 days are held out: a customer churned when they made no purchase
(an order of amount >= 0) in them. Printed per cutoff: the realised ROC AUC and average
precision (churn the positive class) of

* crmbot's churn risk (`churn_risk`, the run's calibrated probability);
* a logistic regression on RFM: log recency, log purchase days, log spend per purchase day
  and log tenure, standardised, fitted on the same customers as of 90 days before the
  cutoff with the 90 days after that as labels (everything it sees is before the cutoff);
* BG/NBD fitted on the purchases up to the cutoff: 1 - P(alive), and P(no purchase in the
  90 days) (equivalently, fewest expected purchases first);
* recency alone (days since the last purchase);

and, as a ceiling rather than a rival, "hindsight": a logistic regression on crmbot's own
churn features as of the cutoff, fitted on the held-out 90 days themselves (5-fold
cross-validated, each customer scored by the folds that did not see them). No model
trained before the cutoff can know those labels; how far it is above crmbot's figure is
what better modelling of these features could still win.

Nothing here is timed: `crmbot train`'s stage times are in docs/performance.md.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel, col

from benchmarks.real_books import cdnow_transactions, load_cdnow
from crmbot.analytics.churn import features_as_of
from crmbot.analytics.clv import fit_bgnbd, probability_alive, probability_no_purchase
from crmbot.analytics.source.loading import load_training_data
from crmbot.core.config import Settings
from crmbot.core.db import make_engine, read_session
from crmbot.core.models import CustomerScore, ModelRun, Order
from crmbot.runs import train

HORIZON_DAYS = 90
CDNOW_CUTOFFS = (date(1997, 9, 30), date(1997, 12, 31), date(1998, 3, 31))
RFM = ["recency_days", "purchase_days", "day_spend", "tenure_days"]
MODELS = {
    "crmbot": "crmbot churn risk",
    "rfm_logistic": "logistic on RFM",
    "bgnbd_dead": "BG/NBD 1 - P(alive)",
    "bgnbd_quiet": "BG/NBD P(no purchase)",
    "recency": "recency alone",
    "hindsight": "hindsight (ceiling)",
}
BASELINES = [name for name in MODELS if name not in ("crmbot", "hindsight")]


def settings_for(url: str, directory: Path) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=url,
        slack_bot_token="xoxb-benchmark",
        slack_signing_secret="benchmark-signing-secret",
        admin_users=["UADMIN"],
        chart_dir=str(directory / "charts"),
    )


def read_orders(engine: Engine) -> pd.DataFrame:
    """Every order: customer_pk, ordered_at, amount."""
    frame = pd.read_sql(
        select(col(Order.customer_pk), col(Order.ordered_at), col(Order.amount)), engine
    )
    frame["ordered_at"] = pd.to_datetime(frame["ordered_at"])
    return frame


def _day_after(cutoff: date) -> datetime:
    return datetime.combine(cutoff + timedelta(days=1), time())


def churned(orders: pd.DataFrame, customers: pd.Index, cutoff: date) -> pd.Series:
    """1 for the customers with no purchase (amount >= 0) in the HORIZON_DAYS after the
    cutoff's day, else 0."""
    start = _day_after(cutoff)
    end = start + timedelta(days=HORIZON_DAYS)
    when = orders["ordered_at"]
    bought = orders.loc[(when >= start) & (when < end) & (orders["amount"] >= 0), "customer_pk"]
    return pd.Series((~customers.isin(bought)).astype(int), index=customers)


def rfm_as_of(orders: pd.DataFrame, cutoff: date) -> pd.DataFrame:
    """Per customer with a purchase by the end of the cutoff's day: recency, purchase days,
    spend per purchase day, tenure (days since the first purchase), and BG/NBD's x, t_x, T
    (repeat purchase days, days from the first to the last, days from the first to the
    cutoff). Counted here from the orders, independently of crmbot's summary."""
    seen = orders[(orders["ordered_at"] < _day_after(cutoff)) & (orders["amount"] >= 0)]
    day = seen["ordered_at"].dt.normalize()
    per_day = seen.assign(day=day).groupby(["customer_pk", "day"])["amount"].sum().reset_index()
    grouped = per_day.groupby("customer_pk")
    first, last = grouped["day"].min(), grouped["day"].max()
    end = pd.Timestamp(cutoff)
    table = pd.DataFrame(
        {
            "purchase_days": grouped.size(),
            "spend": grouped["amount"].sum(),
            "recency_days": (end - last).dt.days,
            "tenure_days": (end - first).dt.days,
            "t_x": (last - first).dt.days,
        }
    )
    table["day_spend"] = table["spend"] / table["purchase_days"]
    table["x"] = table["purchase_days"] - 1
    table["T"] = table["tenure_days"]
    return table


def _rfm_matrix(table: pd.DataFrame) -> np.ndarray:
    return np.log1p(table[RFM].clip(lower=0).to_numpy(dtype=float))


def baseline_scores(orders: pd.DataFrame, cutoff: date) -> pd.DataFrame:
    """Each baseline's churn score (higher: more likely to churn) of the customers with a
    purchase by the cutoff, from what was known then alone."""
    now = rfm_as_of(orders, cutoff)
    earlier_cutoff = cutoff - timedelta(days=HORIZON_DAYS)
    earlier = rfm_as_of(orders, earlier_cutoff)
    # The label window of the earlier rows ends on the cutoff: nothing after it is read.
    y_earlier = churned(orders, earlier.index, earlier_cutoff)
    logistic = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    logistic.fit(_rfm_matrix(earlier), y_earlier.to_numpy())
    x, t_x, T = (now[c].to_numpy(dtype=float) for c in ("x", "t_x", "T"))
    params = fit_bgnbd(x, t_x, T)
    return pd.DataFrame(
        {
            "rfm_logistic": logistic.decision_function(_rfm_matrix(now)),
            "bgnbd_dead": 1.0 - probability_alive(params, x, t_x, T),
            "bgnbd_quiet": probability_no_purchase(params, float(HORIZON_DAYS), x, t_x, T),
            "recency": now["recency_days"].to_numpy(dtype=float),
        },
        index=now.index,
    )


def hindsight_scores(engine: Engine, cutoff: date, y: pd.Series) -> pd.Series:
    """crmbot's churn features as of the cutoff, scored by a logistic regression fitted on
    the held-out labels `y` themselves, 5-fold cross-validated: a ceiling, not a rival."""
    data = load_training_data(engine, cutoff)
    features, _facts = features_as_of(data, horizon_days=HORIZON_DAYS, seed=7)
    labels = y.reindex(features.index).to_numpy()
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=7)
    score = cross_val_predict(model, features, labels, cv=folds, method="decision_function")
    return pd.Series(score, index=features.index)


def crmbot_risk(
    engine: Engine, settings: Settings, cutoff: date
) -> tuple[pd.Series, dict[str, Any]]:
    """The churn risk of every scored customer of a run trained as of the cutoff, and the
    run's churn metrics."""
    result = train(engine, settings, cutoff, force=True)
    if result.status != "succeeded":
        raise RuntimeError(f"training as of {cutoff} failed: {result.error}")
    scores = pd.read_sql(
        select(col(CustomerScore.customer_pk), col(CustomerScore.churn_risk)).where(
            col(CustomerScore.run_id) == result.run_id
        ),
        engine,
    ).set_index("customer_pk")
    with read_session(engine) as session:
        run = session.get(ModelRun, result.run_id)
        churn_metrics = dict((run.metrics or {}).get("churn") or {}) if run else {}
    return scores["churn_risk"].dropna().astype(float), churn_metrics


@dataclass
class Realised:
    book: str
    cutoff: date
    customers: int
    churn_rate: float
    roc_auc: dict[str, float]
    average_precision: dict[str, float]
    model: str
    validation_auc: float | None


def realised(
    book: str, cutoff: date, scores: pd.DataFrame, y: pd.Series, churn: dict[str, Any]
) -> Realised:
    """ROC AUC and average precision of each column of `scores` against `y` (churned)."""
    y = y.reindex(scores.index)
    return Realised(
        book=book,
        cutoff=cutoff,
        customers=int(len(y)),
        churn_rate=float(y.mean()),
        roc_auc={m: float(roc_auc_score(y, scores[m])) for m in scores.columns},
        average_precision={m: float(average_precision_score(y, scores[m])) for m in scores.columns},
        model=str(churn.get("model")),
        validation_auc=churn.get("roc_auc"),
    )


def evaluate_cdnow(cutoffs: tuple[date, ...], directory: Path) -> list[Realised]:
    url = f"sqlite:///{directory / 'cdnow.db'}"
    engine = make_engine(url)
    SQLModel.metadata.create_all(engine)
    load_cdnow(engine, cdnow_transactions())
    settings = settings_for(url, directory)
    orders = read_orders(engine)
    results = []
    for cutoff in cutoffs:
        risk, churn = crmbot_risk(engine, settings, cutoff)
        scores = baseline_scores(orders, cutoff)
        missing = scores.index.difference(risk.index)
        if len(missing):
            raise RuntimeError(f"{len(missing)} buyers as of {cutoff} have no churn risk")
        scores.insert(0, "crmbot", risk.reindex(scores.index))
        y = churned(orders, scores.index, cutoff)
        scores["hindsight"] = hindsight_scores(engine, cutoff, y).reindex(scores.index)
        results.append(realised("CDNOW", cutoff, scores, y, churn))
    engine.dispose()
    return results


def table(results: list[Realised]) -> str:
    header = (
        f"{'book':<7} {'cutoff':<10} {'buyers':>7} {'churn':>6}  {'metric':<7}"
        + "".join(f" {MODELS[m]:>22}" for m in MODELS)
        + f" {'margin':>7}"
    )
    lines = [header, "-" * len(header)]
    for r in results:
        for metric, values in (("ROC AUC", r.roc_auc), ("AP", r.average_precision)):
            best = max(values[m] for m in BASELINES)
            lines.append(
                f"{r.book:<7} {r.cutoff.isoformat():<10} {r.customers:>7,} {r.churn_rate:>6.1%}  "
                f"{metric:<7}"
                + "".join(f" {values[m]:>22.4f}" for m in MODELS)
                + f" {values['crmbot'] - best:>+7.4f}"
            )
    lines.append("")
    lines.append("margin: crmbot's figure minus the best baseline's (hindsight is no baseline)")
    for r in results:
        lines.append(
            f"{r.book} {r.cutoff}: crmbot chose {r.model}, its own validation ROC AUC "
            f"{r.validation_auc} (on the 90 days before the cutoff)"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cutoffs", default=",".join(c.isoformat() for c in CDNOW_CUTOFFS))
    parser.add_argument("--json", dest="json_path")
    args = parser.parse_args()
    cutoffs = tuple(date.fromisoformat(c) for c in args.cutoffs.split(","))
    with tempfile.TemporaryDirectory() as directory:
        results = evaluate_cdnow(cutoffs, Path(directory))
    print(table(results))
    if args.json_path:
        Path(args.json_path).write_text(
            json.dumps([r.__dict__ | {"cutoff": r.cutoff.isoformat()} for r in results], indent=2)
        )


if __name__ == "__main__":
    main()
