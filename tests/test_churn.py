from __future__ import annotations

import json
import re
import sqlite3
from dataclasses import replace
from datetime import date, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from threadpoolctl import threadpool_limits
from typer.testing import CliRunner

from crmbot import queries, runs
from crmbot.analytics import churn, clv, features, satisfaction
from crmbot.analytics.base import RunContext, TrainingData
from crmbot.analytics.churn import (
    BOOSTING_MIN_GAIN,
    FEATURES,
    GROUPS,
    candidate_models,
    choose_model,
    compare,
    features_as_of,
    group_contributions,
    no_purchase_label,
    reasons,
    snapshot_cutoffs,
)
from crmbot.cli.main import app
from crmbot.core.config import Settings, get_settings
from crmbot.core.db import connect, read_session, write_session
from crmbot.runs import train
from tests.support.synthetic_crm import make_company

AS_OF = date(2026, 6, 30)


def _settings(**overrides) -> Settings:
    return Settings(_env_file=None, **overrides)  # type: ignore[call-arg]


def _run_stages(data: TrainingData, settings: Settings | None = None) -> RunContext:
    ctx = RunContext.start(data, settings or _settings())
    for stage in (features, clv, satisfaction, churn):
        stage.run(ctx)  # type: ignore[attr-defined]
    return ctx


@pytest.fixture(scope="module")
def company():
    return make_company(600, seed=3, prospects=12)


@pytest.fixture(scope="module")
def trained(company) -> RunContext:
    return _run_stages(company.data)


def _with(data: TrainingData, **frames: pd.DataFrame) -> TrainingData:
    return replace(data, **frames)


# ---------------------------------------------------------------------------------------
# Labels, snapshots and leakage


def test_label_is_no_purchase_in_the_days_after_the_cutoff() -> None:
    cutoff = date(2026, 3, 1)
    customers = pd.DataFrame(
        {"signed_up_at": pd.to_datetime(["2025-01-01"] * 5)},
        index=pd.Index([1, 2, 3, 4, 5], name="customer_pk"),
    )
    orders = pd.DataFrame(
        {
            "order_pk": [1, 2, 3, 4, 5],
            "customer_pk": [1, 2, 3, 4, 5],
            "ordered_at": pd.to_datetime(
                [
                    "2026-03-01 23:59",  # on the cutoff day: before the window
                    "2026-03-02 00:00",  # first instant of the window
                    "2026-05-30 23:59",  # last day of the 90-day window
                    "2026-05-31 00:00",  # the day after the window
                    "2026-04-01 10:00",  # inside, but a refund is not a purchase
                ]
            ),
            "amount": [10.0, 10.0, 10.0, 10.0, -10.0],
        }
    )
    data = TrainingData(
        as_of=AS_OF,
        customers=customers,
        orders=orders,
        lines=pd.DataFrame(),
        products=pd.DataFrame(),
        tickets=pd.DataFrame(),
        feedback=pd.DataFrame(),
        referrals=pd.DataFrame(),
    )
    label = no_purchase_label(data, cutoff, 90)
    assert label.to_dict() == {1: 1, 2: 0, 3: 0, 4: 1, 5: 1}
    with pytest.raises(ValueError):
        no_purchase_label(data, date(2026, 5, 1), 90)  # window would end after as_of


def test_snapshot_cutoffs_end_every_label_window_by_as_of() -> None:
    cutoffs = snapshot_cutoffs(AS_OF, 90, date(2024, 7, 1))
    assert cutoffs[0] == AS_OF - timedelta(days=90)  # validation: the latest
    assert all(c + timedelta(days=90) <= AS_OF for c in cutoffs)
    assert cutoffs == sorted(cutoffs, reverse=True)
    assert all((a - b).days == 30 for a, b in zip(cutoffs, cutoffs[1:], strict=False))
    # Enough older snapshots for training windows that end before validation begins.
    assert sum(c + timedelta(days=90) <= cutoffs[0] for c in cutoffs[1:]) == 6
    assert snapshot_cutoffs(AS_OF, 90, date(2026, 5, 1)) == []


def test_features_at_a_cutoff_ignore_rows_added_after_it(company) -> None:
    data = company.data
    cutoff = date(2026, 1, 31)
    end = datetime(2026, 2, 1)  # first instant after the cutoff day
    # On the cutoff day this ticket was still open and unrated.
    tickets = data.tickets.copy()
    pending = tickets.index[tickets["opened_at"] < end][-1]
    pk = int(tickets.loc[pending, "customer_pk"])
    tickets.loc[pending, ["closed_at", "csat"]] = [pd.NaT, np.nan]
    then = _with(data, tickets=tickets)
    before, before_facts = features_as_of(then.as_of_earlier(cutoff), horizon_days=90, seed=1)

    closed = tickets.copy()
    closed.loc[pending, ["closed_at", "csat"]] = [datetime(2026, 2, 3), 1.0]
    later_orders = pd.DataFrame(
        {
            "order_pk": [10_000_001, 10_000_002],
            "customer_pk": [pk, pk],
            "ordered_at": [end, datetime(2026, 4, 1, 12)],
            "amount": [500.0, 80.0],
        }
    )
    later_feedback = pd.DataFrame(
        {
            "customer_pk": [pk],
            "submitted_at": [datetime(2026, 2, 2)],
            "nps": [0.0],
            "csat": [1.0],
            "comment": ["terrible support, nobody answers"],
        }
    )
    grown = _with(
        data,
        orders=pd.concat([data.orders, later_orders], ignore_index=True),
        tickets=closed,
        feedback=pd.concat([data.feedback, later_feedback], ignore_index=True),
    )
    after, after_facts = features_as_of(grown.as_of_earlier(cutoff), horizon_days=90, seed=1)
    pd.testing.assert_frame_equal(before, after)
    pd.testing.assert_frame_equal(before_facts, after_facts)
    # The same customer as of today does see the later rows.
    today, _ = features_as_of(grown, horizon_days=90, seed=1)
    assert today.loc[pk, "log_recency"] != before.loc[pk, "log_recency"]


# ---------------------------------------------------------------------------------------
# The trained model


def test_model_beats_recency_and_bgnbd_alone(trained) -> None:
    metrics = trained.metrics["churn"]
    assert metrics["trained"] is True
    assert metrics["model"] in ("logistic", "hist_gradient_boosting")
    assert set(metrics["candidates"]) == {"logistic", "hist_gradient_boosting"}
    for name, baseline in metrics["baselines"].items():
        assert metrics["roc_auc"] > baseline["roc_auc"], name
        assert metrics["pr_auc"] > baseline["pr_auc"], name
        assert metrics["brier"] < baseline["brier"], name
    assert metrics["beats_baselines"] is True
    # The chosen model is the better of the two on validation.
    assert metrics["roc_auc"] == max(c["roc_auc"] for c in metrics["candidates"].values())


def test_probabilities_are_calibrated_on_validation(trained) -> None:
    metrics = trained.metrics["churn"]
    assert abs(metrics["mean_predicted"] - metrics["observed_rate"]) <= 0.05
    assert metrics["calibration_gap"] <= 0.05
    assert metrics["brier"] < metrics["brier_base_rate"]
    assert metrics["lift_top_decile"] > 1.0


def test_training_never_uses_windows_that_overlap_validation(trained) -> None:
    params = trained.params["churn"]
    validation = date.fromisoformat(params["validation_cutoff"])
    assert validation == AS_OF - timedelta(days=90)
    for cutoff in params["training_cutoffs"]:
        assert date.fromisoformat(cutoff) + timedelta(days=90) <= validation
    assert trained.metrics["churn"]["training"]["label_windows_overlap_validation"] is False


def test_metrics_and_params_are_plain_json(trained) -> None:
    assert json.loads(json.dumps(trained.metrics["churn"]))["roc_auc"] > 0.5
    params = json.loads(json.dumps(trained.params["churn"]))
    assert params["features"] == FEATURES
    assert params["calibration"]["method"] in ("sigmoid", "isotonic")


def test_every_buyer_is_scored_with_reasons_and_prospects_are_not(trained, company) -> None:
    scores = trained.scores
    buyers = set(company.data.orders.loc[company.data.orders["amount"] >= 0, "customer_pk"])
    scored = scores.index.isin(list(buyers))
    assert scores.loc[scored, "churn_risk"].between(0, 1).all()
    for value in scores.loc[scored, "churn_reasons"]:
        assert isinstance(value, list) and 1 <= len(value) <= 3
        assert all(isinstance(text, str) and text for text in value)
    prospects = scores.loc[~scored]
    assert len(prospects) == 12
    assert prospects["churn_risk"].isna().all()
    assert prospects["churn_reasons"].isna().all()


def test_frustrated_customers_rank_higher(trained, company) -> None:
    risk = trained.scores["churn_risk"].dropna()
    frustrated = risk.index.isin(list(company.frustrated))
    assert risk[frustrated].mean() > risk[~frustrated].mean() + 0.2


def test_reasons_quote_the_customers_own_numbers(trained, company) -> None:
    summary = trained.features
    assert summary is not None
    checked = {"open": 0, "recency": 0}
    for pk, texts in trained.scores["churn_reasons"].dropna().items():
        for text in texts:
            match = re.fullmatch(r"(\d+) unresolved tickets? \(typical customer: [\d.]+\)", text)
            if match:
                assert int(match.group(1)) == summary.loc[pk, "tickets_open"]
                checked["open"] += 1
            match = re.match(r"no order for ([\d,]+) days", text)
            if match:
                assert int(match.group(1).replace(",", "")) == round(
                    summary.loc[pk, "recency_days"]
                )
                checked["recency"] += 1
    assert checked["open"] > 0 and checked["recency"] > 0


def test_top_reasons_of_the_riskiest_customers_speak_of_trouble(trained) -> None:
    riskiest = trained.scores.sort_values("churn_risk", ascending=False).head(30)
    texts = " | ".join(" | ".join(reasons_) for reasons_ in riskiest["churn_reasons"])
    assert re.search(r"no order for|unresolved|detractor|CSAT [12]/5|chance of no order", texts)


def test_value_at_risk_is_clv_times_risk(trained) -> None:
    scores = trained.scores.dropna(subset=["churn_risk", "clv"])
    assert len(scores) > 0
    expected = (scores["clv"] * scores["churn_risk"]).round(2)
    assert np.allclose(scores["value_at_risk"], expected, atol=0.01)


# ---------------------------------------------------------------------------------------
# Contributions and reasons


def _training_frame(seed: int = 0, rows: int = 400) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = pd.DataFrame(rng.normal(size=(rows, len(FEATURES))), columns=FEATURES)
    logit = 1.5 * x["log_overdue"] + 1.0 * x["tickets_open"] + 0.8 * x["nps_shortfall"]
    # Spend trend "helps" here, against its declared direction (more spend, less risk).
    logit += 0.6 * x["spend_trend"]
    y = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(int).to_numpy()
    return x, y


def test_logistic_contributions_are_coefficient_times_deviation_from_the_mean() -> None:
    x, y = _training_frame()
    model = candidate_models(1)["logistic"].fit(x, y)
    contributions = group_contributions("logistic", model, x.head(5), x.mean())
    per_feature = model.coef_ * (x.head(5) - x.mean()) / model.scaler_.scale_
    for group, names in GROUPS.items():
        assert np.allclose(contributions[group], per_feature[names].sum(axis=1))
    # They add up to the customer's log-odds minus the average customer's.
    ref = model.decision_function(x.mean().to_frame().T)[0]
    assert np.allclose(contributions.sum(axis=1), model.decision_function(x.head(5)) - ref)


def test_both_models_keep_every_feature_to_its_declared_direction() -> None:
    x, y = _training_frame()
    directions = np.array([churn.DIRECTIONS[name] for name in FEATURES])
    logistic = candidate_models(1)["logistic"].fit(x, y)
    assert (logistic.coef_ * directions >= 0).all()
    assert "spend_trend" in [FEATURES[i] for i in logistic.dropped_]
    assert logistic.coef_[FEATURES.index("tickets_open")] > 0
    with threadpool_limits(limits=1):
        boosting = candidate_models(1)["hist_gradient_boosting"].fit(x, y)
        grid = x.median().to_frame().T
        grid = pd.concat([grid] * 5, ignore_index=True)
        grid["spend_trend"] = np.linspace(-2, 2, 5)
        risk = boosting.decision_function(grid)
    assert (np.diff(risk) <= 1e-12).all()  # more spend never raises the risk


def test_a_feature_dropped_for_its_sign_is_fitted_as_if_it_were_not_there() -> None:
    # DirectedLogistic zeroes a dropped feature's column and refits from the last solution;
    # that must be the model fitted afresh on the remaining features alone.
    x, y = _training_frame()
    model = candidate_models(1)["logistic"].fit(x, y)
    assert model.dropped_
    kept = [i for i in range(len(FEATURES)) if i not in model.dropped_]
    z = model.scaler_.transform(x.to_numpy())[:, kept]
    afresh = LogisticRegression(C=model.C, l1_ratio=0.0, tol=1e-10).fit(z, y)
    # Equal to within the solver's tolerance.
    assert np.allclose(model.coef_[kept], afresh.coef_[0], atol=1e-4)
    assert np.allclose(model.coef_[model.dropped_], 0.0)
    assert model.intercept_ == pytest.approx(afresh.intercept_[0], abs=1e-4)


@pytest.mark.parametrize("method", ["sigmoid", "isotonic"])
def test_calibrating_on_scores_equals_calibrating_the_frozen_model(method: str) -> None:
    x, y = _training_frame(rows=600)
    model = candidate_models(1)["logistic"].fit(x.iloc[:300], y[:300])
    held_x, held_y = x.iloc[300:], y[300:]
    wrapped = CalibratedClassifierCV(FrozenEstimator(model), method=method).fit(held_x, held_y)
    calibrator = churn.calibrate(model.decision_function(held_x), held_y, method)
    new_x = x.iloc[:300]
    assert np.allclose(
        calibrator.predict(model.decision_function(new_x)),
        wrapped.predict_proba(new_x)[:, 1],
        rtol=0,
        atol=1e-12,
    )


def test_boosting_contributions_vanish_where_the_customer_matches_the_reference() -> None:
    x, y = _training_frame()
    with threadpool_limits(limits=1):  # far faster than OpenMP on a small, shared machine
        model = HistGradientBoostingClassifier(max_iter=30, random_state=0).fit(x, y)
        reference = x.median()
        customer = reference.to_frame().T.copy()
        customer["log_overdue"] = x["log_overdue"].quantile(0.95)
        contributions = group_contributions("hist_gradient_boosting", model, customer, reference)
    others = [group for group in GROUPS if group != "recency"]
    assert np.allclose(contributions[others].to_numpy(), 0.0)
    assert contributions["recency"].iloc[0] > 0  # late, so riskier in this data


def test_reasons_follow_the_verdict_and_say_it_with_a_comparison() -> None:
    groups = list(GROUPS)
    contributions = pd.DataFrame(np.zeros((3, len(groups))), columns=groups, index=[1, 2, 3])
    # Customer 1's risk is raised, by tickets and NPS; spend pushes it down, so it is no
    # reason for a raised risk.
    contributions.loc[1, ["open_tickets", "nps", "spend"]] = [0.9, 0.4, -0.6]
    # Customer 2's is kept low: recency and CSAT hold it down; tickets raise it a little.
    contributions.loc[2, ["recency", "csat", "open_tickets", "tenure"]] = [-0.7, -0.3, 0.2, -0.01]
    # Customer 3 is raised by a CSAT it never gave (read as 0 by the model) and by a purchase
    # rate that did not change: neither is a reason.
    contributions.loc[3, ["csat", "purchase_trend", "ticket_time"]] = [0.5, 0.4, 0.3]
    facts = pd.DataFrame(
        {
            "recency_days": [20.0, 4.0, 60.0],
            "gap_days": [30.0, 25.0, np.nan],
            "frequency": [5, 4, 1],
            "tenure_days": [300.0, 200.0, 90.0],
            "day_spend": [50.0, 60.0, 40.0],
            "purchase_rate_last": [1.0, 1.0, 0.7],
            "purchase_rate_before": [1.0, 1.0, 0.7],
            "spend_rate_last": [50.0, 60.0, 40.0],
            "spend_rate_before": [50.0, 60.0, 40.0],
            "p_no_purchase": [0.2, 0.3, 0.5],
            "tickets_open": [2, 0, 0],
            "tickets_last_90d": [2, 0, 0],
            "tickets_count": [3, 0, 0],
            "resolution_days": [1.0, np.nan, np.nan],
            "csat_latest": [np.nan, 5.0, np.nan],
            "nps_latest": [3.0, np.nan, np.nan],
            "sentiment": [np.nan, 0.5, np.nan],
            "segment": ["Loyal", "Champions", "New"],
        },
        index=[1, 2, 3],
    )
    typical = {
        "recency_days": 35.0,
        "frequency": 4.2,
        "gap_days": 28.0,
        "tenure_days": 250.0,
        "day_spend": 45.0,
        "p_no_purchase": 0.4,
        "tickets_open": 0.3,
        "tickets_last_90d": 0.5,
        "resolution_days": 2.0,
        "csat_latest": 4.0,
        "nps_latest": 8.0,
        "sentiment": 0.1,
    }
    result = reasons(contributions, np.array([True, False, True]), facts, typical, 90)
    assert result[0] == [
        "2 unresolved tickets (typical customer: 0.3)",
        "last NPS 3 (detractor; typical customer: 8)",
    ]
    assert result[1] == [
        "last order 4 days ago — usually orders every 25 days",
        "last CSAT 5/5 (typical customer: 4/5)",
    ]
    assert result[2] == []


# ---------------------------------------------------------------------------------------
# Champion / challenger


def test_compare_objects_only_beyond_the_margin() -> None:
    settings = _settings(churn_auc_margin=0.02)
    champion = {"roc_auc": 0.80}
    assert compare({"roc_auc": 0.79}, champion, settings) is None
    assert compare({"roc_auc": 0.85}, champion, settings) is None
    objection = compare({"roc_auc": 0.77}, champion, settings)
    assert objection is not None and "0.770" in objection and "0.800" in objection
    assert compare({"roc_auc": 0.5}, {}, settings) is None  # no champion model yet
    lost = compare({"trained": False, "note": "too little history"}, champion, settings)
    assert lost is not None and "too little history" in lost


# ---------------------------------------------------------------------------------------
# Robustness


def test_a_tiny_company_gets_no_churn_model_and_says_why() -> None:
    tiny = make_company(8, seed=2, prospects=2)
    ctx = RunContext.start(tiny.data, _settings())
    features.run(ctx)
    satisfaction.run(ctx)
    churn.run(ctx)
    metrics = ctx.metrics["churn"]
    assert metrics["trained"] is False
    assert "churn needs" in metrics["note"] or "snapshot" in metrics["note"]
    assert ctx.scores["churn_risk"].isna().all()
    assert ctx.scores["churn_reasons"].isna().all()
    json.dumps(metrics)


def test_a_short_history_gets_no_churn_model_and_says_why(company) -> None:
    data = company.data
    start = datetime(2026, 5, 1)
    recent = _with(
        data,
        orders=data.orders[data.orders["ordered_at"] >= start],
        tickets=data.tickets[data.tickets["opened_at"] >= start],
        feedback=data.feedback[data.feedback["submitted_at"] >= start],
    )
    ctx = RunContext.start(recent, _settings())
    features.run(ctx)
    churn.run(ctx)
    assert ctx.metrics["churn"]["trained"] is False
    assert "120 days" in ctx.metrics["churn"]["note"]
    assert ctx.scores["churn_risk"].isna().all()


def test_no_tickets_and_no_feedback_still_trains_with_reasons() -> None:
    plain = make_company(400, seed=4, with_tickets=False, with_feedback=False)
    ctx = RunContext.start(plain.data, _settings())
    for stage in (features, satisfaction, churn):  # churn fits its own BG/NBD per snapshot
        stage.run(ctx)  # type: ignore[attr-defined]
    metrics = ctx.metrics["churn"]
    assert metrics["trained"] is True
    assert ctx.metrics["satisfaction"]["text_model"]["trained"] is False
    scored = ctx.scores["churn_risk"].notna()
    assert scored.sum() == 400
    # A risk close to the typical customer's may have no factor that stands out.
    distinct = scored & (ctx.scores["churn_risk"] - metrics["typical_risk"]).abs().gt(0.05)
    assert distinct.sum() > 300
    assert ctx.scores.loc[distinct, "churn_reasons"].map(len).ge(1).all()


# ---------------------------------------------------------------------------------------
# The sample company, end to end through the database


def _active_scores(engine) -> pd.DataFrame:
    with read_session(engine) as session:
        return queries.scores_frame(session=session)


def test_sample_company_model_beats_both_baselines(sample_company) -> None:
    metrics = sample_company.run.metrics["churn"]
    assert metrics["trained"] is True
    for name, baseline in metrics["baselines"].items():
        assert metrics["roc_auc"] > baseline["roc_auc"] + 0.01, name
        assert metrics["brier"] < baseline["brier"], name
    assert abs(metrics["mean_predicted"] - metrics["observed_rate"]) <= 0.05
    assert metrics["brier"] < metrics["brier_base_rate"]


def test_sample_company_scores_carry_reasons_in_the_database(sample_company) -> None:
    scores = _active_scores(sample_company.engine)
    scored = scores[scores["churn_risk"].notna()]
    assert len(scored) == (scores["frequency"] > 0).sum()
    assert scored["churn_reasons"].map(lambda texts: 1 <= len(texts) <= 3).all()
    assert scores.loc[scores["frequency"] == 0, "churn_risk"].isna().all()
    with_clv = scored.dropna(subset=["clv"])
    assert np.allclose(
        with_clv["value_at_risk"], with_clv["clv"] * with_clv["churn_risk"], atol=0.01
    )
    assert scores["satisfaction"].between(0, 100).any()


def test_sample_company_planted_churners_rank_above_other_live_customers(sample_company) -> None:
    truth = sample_company.truth
    scores = _active_scores(sample_company.engine)
    live = scores[
        scores["churn_risk"].notna() & ~scores["customer_id"].isin(truth.churned_customer_ids)
    ]
    about_to_stop = live["customer_id"].isin(truth.churning_customer_ids).astype(int)
    assert about_to_stop.sum() >= 10
    # They still look fine by recency; the model reads the tickets, surveys and decline.
    model_auc = roc_auc_score(about_to_stop, live["churn_risk"])
    recency_auc = roc_auc_score(about_to_stop, live["recency_days"])
    assert model_auc > 0.6
    assert model_auc > recency_auc + 0.05


@pytest.fixture
def copied_company(sample_company, tmp_path):
    """A private copy of the trained sample company's database (the original is shared)."""
    source = sqlite3.connect(sample_company.engine.url.database)
    target = sqlite3.connect(tmp_path / "crm.db")
    source.backup(target)
    source.close()
    target.close()
    engine = connect(f"sqlite:///{tmp_path / 'crm.db'}")
    yield engine
    engine.dispose()


MODEL_STAGES = [
    ("features", "crmbot.analytics.features"),
    ("clv", "crmbot.analytics.clv"),
    ("satisfaction", "crmbot.analytics.satisfaction"),
    ("churn", "crmbot.analytics.churn"),
]


def test_a_worse_churn_model_is_recorded_but_not_activated_unless_forced(
    sample_company, copied_company
) -> None:
    engine = copied_company
    with write_session(engine) as session:
        champion = runs.active_run(session=session)
        assert champion is not None and champion.metrics is not None
        champion_id = champion.id
        # The live model is (made) far better than anything this data can give.
        metrics = json.loads(json.dumps(champion.metrics))
        metrics["churn"]["roc_auc"] = 0.999
        champion.metrics = metrics

    rejected = train(engine, sample_company.settings, sample_company.as_of, stages=MODEL_STAGES)
    assert rejected.status == "rejected" and rejected.activated is False
    assert "churn: ROC AUC" in (rejected.error or "") and "0.999" in (rejected.error or "")
    with read_session(engine) as session:
        assert runs.active_run_id(session=session) == champion_id
        run = runs.get_run(session=session, run_id=rejected.run_id)
        assert run is not None and run.status == "rejected" and run.metrics["churn"]["roc_auc"]

    forced = train(
        engine, sample_company.settings, sample_company.as_of, stages=MODEL_STAGES, force=True
    )
    assert forced.status == "succeeded" and forced.activated is True
    with read_session(engine) as session:
        assert runs.active_run_id(session=session) == forced.run_id


def test_comparison_puts_the_model_beside_baselines_and_base_rate(trained) -> None:
    header, rows = churn.comparison(trained.metrics["churn"])
    assert header[0] == "metric" and header[1].endswith("(chosen)")
    assert "recency alone" in header and "BG/NBD alone" in header and header[-1] == "base rate"
    auc = dict(zip(header, rows[0], strict=True))
    assert rows[0][0] == "ROC AUC" and auc["base rate"] == 0.5
    assert auc[header[1]] > auc["recency alone"] and auc[header[1]] > auc["BG/NBD alone"]
    assert churn.comparison({"trained": False, "note": "x"}) == ([], [])


@pytest.fixture
def cli_on_sample(sample_company, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", str(sample_company.engine.url))
    get_settings.cache_clear()
    yield lambda *args: CliRunner().invoke(app, list(args))
    get_settings.cache_clear()


def test_model_show_lists_the_churn_model_beside_its_baselines(cli_on_sample) -> None:
    result = cli_on_sample("model", "show")
    assert result.exit_code == 0, result.output
    assert "Churn risk: no purchase within 90 days" in result.output
    for column in ("(chosen)", "recency", "BG/NBD", "base rate", "ROC AUC", "Brier"):
        assert column in result.output
    document = json.loads(cli_on_sample("model", "show", "--json").output)
    assert document["churn"]["metrics"]["baselines"]["recency"]["roc_auc"] > 0.5
    assert document["satisfaction"]["metrics"]["text_model"]["trained"] is True


def test_scores_export_has_churn_and_satisfaction_columns(cli_on_sample, tmp_path) -> None:
    target = tmp_path / "scores.csv"
    result = cli_on_sample("scores", "export", str(target))
    assert result.exit_code == 0, result.output
    exported = pd.read_csv(target)
    for column in ("churn_risk", "churn_reasons", "value_at_risk", "satisfaction", "sentiment"):
        assert column in exported.columns
    reasons_ = exported.loc[exported["churn_risk"].notna(), "churn_reasons"]
    assert reasons_.notna().all() and reasons_.str.len().gt(0).all()


def test_boosting_replaces_the_logistic_model_only_when_clearly_better() -> None:
    def auc(logistic: float, boosting: float) -> dict[str, dict[str, float]]:
        return {"logistic": {"roc_auc": logistic}, "hist_gradient_boosting": {"roc_auc": boosting}}

    assert choose_model(auc(0.80, 0.80 + BOOSTING_MIN_GAIN / 2)) == "logistic"
    assert choose_model(auc(0.80, 0.79)) == "logistic"
    assert choose_model(auc(0.80, 0.80 + 2 * BOOSTING_MIN_GAIN)) == "hist_gradient_boosting"


def test_a_reason_said_of_many_customers_is_one_string(trained) -> None:
    """Equal phrases are shared, not a string per customer (a million customers' reasons
    held about 400 MB as separate strings)."""
    reasons = [text for texts in trained.scores["churn_reasons"].dropna() for text in texts]
    first_seen: dict[str, int] = {}
    for text in reasons:
        assert first_seen.setdefault(text, id(text)) == id(text), text
    assert len(first_seen) < len(reasons) / 2


def test_scores_do_not_depend_on_the_chunks_customers_are_scored_in(
    company, trained, monkeypatch: pytest.MonkeyPatch
) -> None:
    from crmbot.analytics.churn import training

    monkeypatch.setattr(training, "SCORE_CHUNK_ROWS", 37)
    chunked = _run_stages(company.data)
    assert trained.scores["churn_risk"].notna().sum() > 37 * 3
    pd.testing.assert_series_equal(chunked.scores["churn_risk"], trained.scores["churn_risk"])
    assert chunked.scores["churn_reasons"].tolist() == trained.scores["churn_reasons"].tolist()
