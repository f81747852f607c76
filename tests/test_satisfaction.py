from __future__ import annotations

import json
from dataclasses import replace
from datetime import date, datetime

import numpy as np
import pandas as pd
import pytest

from crmbot.analytics import satisfaction, text_sentiment
from crmbot.analytics.base import RunContext, TrainingData
from crmbot.analytics.satisfaction import (
    customer_satisfaction,
    nps_category,
    satisfaction_score,
)
from crmbot.analytics.text_sentiment import HashedTexts, comment_labels, fit_text_model
from crmbot.core.config import Settings
from tests.support.synthetic_crm import make_company


@pytest.fixture(scope="module")
def company():
    return make_company(400, seed=5)


def test_nps_categories_follow_the_standard_bands() -> None:
    nps = pd.Series([0, 6, 7, 8, 9, 10, np.nan])
    assert nps_category(nps).tolist() == [
        "detractor",
        "detractor",
        "passive",
        "passive",
        "promoter",
        "promoter",
        None,
    ]


def test_comments_label_themselves_csat_first_then_nps() -> None:
    feedback = pd.DataFrame(
        {
            "csat": [5, 3, None, None, None, 4, None],
            "nps": [None, 10, 9, 7, 2, 0, None],
            "comment": ["good", "meh", "great", "ok", "bad", "fine", "no score"],
        }
    )
    labels = comment_labels(feedback)
    # CSAT 4+ satisfied; CSAT wins over NPS; NPS passives (7-8) and unscored stay unlabelled.
    assert labels.tolist()[:3] == [1.0, 0.0, 1.0]
    assert np.isnan(labels[3])
    assert labels[4] == 0.0 and labels[5] == 1.0
    assert np.isnan(labels[6])


def test_score_blends_the_parts_a_customer_has() -> None:
    frame = pd.DataFrame(
        {
            "csat_latest": [5.0, np.nan, np.nan, 1.0],
            "csat_avg": [5.0, np.nan, np.nan, 3.0],
            "nps_latest": [10, 0, np.nan, np.nan],
            "sentiment": [1.0, np.nan, np.nan, 0.0],
        }
    )
    score = satisfaction_score(frame)
    assert score[0] == 100.0
    assert score[1] == 0.0  # only an NPS of 0
    assert np.isnan(score[2])  # nothing known: no score rather than a made-up one
    # CSAT part (0 + 50) / 2 = 25 at weight .4, sentiment 50 at weight .2 -> 100/3
    assert score[3] == pytest.approx(33.3, abs=0.05)


def test_satisfaction_separates_frustrated_customers(company) -> None:
    result = customer_satisfaction(company.data, seed=1)
    frame = result.frame
    frustrated = frame.index.isin(company.frustrated)
    assert (
        frame.loc[frustrated, "satisfaction"].mean()
        < frame.loc[~frustrated, "satisfaction"].mean() - 20
    )
    assert frame.loc[frustrated, "sentiment"].mean() < frame.loc[~frustrated, "sentiment"].mean()
    text = result.metrics["text_model"]
    assert text["trained"] is True
    assert text["accuracy"] > text["majority_accuracy"]
    assert 0 < text["f1_unsatisfied"] <= 1
    assert set(frame["nps_category"].dropna()) <= {"promoter", "passive", "detractor"}
    json.dumps(result.metrics)


def test_customers_without_surveys_still_get_a_sentiment(company) -> None:
    frame = customer_satisfaction(company.data, seed=1).frame
    surveyed = set(company.data.feedback["customer_pk"])
    with_tickets = set(company.data.tickets["customer_pk"])
    silent = sorted(with_tickets - surveyed)
    assert silent, "the synthetic company should have customers with tickets but no survey"
    assert frame.loc[silent, "sentiment"].notna().all()
    assert frame.loc[silent, "satisfaction"].notna().all()


def _without(data: TrainingData, *, tickets: bool = False, feedback: bool = False) -> TrainingData:
    return TrainingData(
        as_of=data.as_of,
        customers=data.customers,
        orders=data.orders,
        lines=data.lines,
        products=data.products,
        tickets=data.tickets.iloc[0:0] if tickets else data.tickets,
        feedback=data.feedback.iloc[0:0] if feedback else data.feedback,
        referrals=data.referrals,
    )


def test_no_feedback_means_no_text_model_but_ticket_csat_still_counts(company) -> None:
    result = customer_satisfaction(_without(company.data, feedback=True), seed=1)
    text = result.metrics["text_model"]
    assert text["trained"] is False
    assert "not trained" in text["note"]
    assert result.frame["sentiment"].isna().all()
    assert result.frame["nps_latest"].isna().all()
    assert result.frame["csat_latest"].notna().any()  # rated tickets


def test_no_tickets_and_no_feedback_gives_empty_columns_not_a_crash(company) -> None:
    result = customer_satisfaction(_without(company.data, tickets=True, feedback=True), seed=1)
    assert result.frame[["csat_latest", "sentiment", "satisfaction"]].isna().all().all()
    assert result.metrics["customers_with_score"] == 0
    assert "nps" not in result.metrics


def test_only_one_class_of_comment_is_reported_not_fitted(company) -> None:
    data = company.data
    happy = data.feedback[comment_labels(data.feedback) == 1.0]
    model = fit_text_model(happy, seed=1)
    assert model.trained is False
    assert "0 unsatisfied" in model.metrics["note"]
    assert model.score(pd.Series(["anything"])).isna().all()


def test_satisfaction_as_of_a_cutoff_ignores_later_rows(company) -> None:
    data = company.data
    cutoff = date(2026, 1, 31)
    end_of_cutoff = datetime(2026, 2, 1)
    # A ticket opened before the cutoff and still open on it: on that day it had no rating.
    tickets = data.tickets.copy()
    pending = tickets.index[tickets["opened_at"] < end_of_cutoff][-1]
    tickets.loc[pending, ["closed_at", "csat"]] = [pd.NaT, np.nan]
    seen_then = TrainingData(
        as_of=data.as_of,
        customers=data.customers,
        orders=data.orders,
        lines=data.lines,
        products=data.products,
        tickets=tickets,
        feedback=data.feedback,
        referrals=data.referrals,
    )
    before = customer_satisfaction(seen_then.as_of_earlier(cutoff), seed=1).frame

    # Later: that ticket is closed with a rating of 1, a new ticket and a survey arrive.
    rated = tickets.copy()
    rated.loc[pending, ["closed_at", "csat"]] = [datetime(2026, 2, 10, 9), 1.0]
    pk = int(tickets.loc[pending, "customer_pk"])
    later_ticket = pd.DataFrame(
        {
            "customer_pk": [pk],
            "opened_at": [datetime(2026, 3, 1, 9)],
            "closed_at": [datetime(2026, 3, 2, 9)],
            "channel": ["email"],
            "subject": ["Cancel"],
            "body": ["terrible, cancelling"],
            "csat": [1.0],
        }
    )
    later_feedback = pd.DataFrame(
        {
            "customer_pk": [pk],
            "submitted_at": [end_of_cutoff],  # the first instant after the cutoff day
            "nps": [0.0],
            "csat": [1.0],
            "comment": ["awful experience, want to cancel"],
        }
    )
    grown = TrainingData(
        as_of=data.as_of,
        customers=data.customers,
        orders=data.orders,
        lines=data.lines,
        products=data.products,
        tickets=pd.concat([rated, later_ticket], ignore_index=True),
        feedback=pd.concat([data.feedback, later_feedback], ignore_index=True),
        referrals=data.referrals,
    )
    after = customer_satisfaction(grown.as_of_earlier(cutoff), seed=1).frame
    pd.testing.assert_frame_equal(before, after)
    # ...while as of today the new rating does count.
    today = customer_satisfaction(grown, seed=1).frame
    assert today.loc[pk, "csat_latest"] == 1.0


def test_run_fills_the_score_columns(company) -> None:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    ctx = RunContext.start(company.data, settings)
    satisfaction.run(ctx)
    for column in satisfaction.SCORE_COLUMNS:
        assert column in ctx.scores.columns
    nps = ctx.scores["nps_latest"].dropna()
    assert all(isinstance(value, int) for value in nps)
    json.dumps(ctx.metrics["satisfaction"])
    json.dumps(ctx.params["satisfaction"])


def test_texts_hashed_once_for_a_run_give_the_same_snapshot_as_hashing_afresh(company) -> None:
    data = company.data
    snapshot = data.as_of_earlier(date(2026, 2, 28))
    once = HashedTexts.of(data.feedback, data.tickets)  # every text of the run, once
    reused = customer_satisfaction(snapshot, seed=1, hashed=once).frame
    afresh = customer_satisfaction(snapshot, seed=1).frame
    pd.testing.assert_frame_equal(reused, afresh)
    with pytest.raises(KeyError):
        HashedTexts.of(snapshot.feedback, snapshot.tickets).comments_for(data.feedback.index)


def test_the_text_model_learns_from_a_seeded_sample_of_a_large_survey(
    company, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(text_sentiment, "MAX_TRAINING_COMMENTS", 80)
    first = fit_text_model(company.data.feedback, seed=1)
    again = fit_text_model(company.data.feedback, seed=1)
    assert first.trained
    assert first.metrics["trained_on_comments"] == 80
    assert first.metrics["labelled_comments"] > 80
    assert first.metrics == again.metrics
    texts = pd.Series(["the beans were stale and nobody answered", "lovely coffee, thanks"])
    pd.testing.assert_series_equal(first.score(texts), again.score(texts))


def test_texts_loaded_as_categoricals_read_as_the_plain_strings(company) -> None:
    """A run loads subjects, bodies and comments as categoricals (`read_frame`'s `texts`):
    each is joined, labelled, counted and scored as the same text in plain strings."""
    plain = company.data
    tickets = plain.tickets.copy()
    tickets.loc[tickets.index[0], "body"] = None
    tickets.loc[tickets.index[1], "subject"] = None
    feedback = plain.feedback.copy()
    feedback.loc[feedback.index[0], "comment"] = None
    plain = replace(plain, tickets=tickets, feedback=feedback)
    categorical = replace(
        plain,
        tickets=tickets.astype({"subject": "category", "body": "category"}),
        feedback=feedback.astype({"comment": "category"}),
    )
    joined = text_sentiment.ticket_texts(categorical.tickets)
    assert isinstance(joined.dtype, pd.CategoricalDtype)
    assert joined.astype(object).tolist() == text_sentiment.ticket_texts(plain.tickets).tolist()
    pd.testing.assert_series_equal(
        comment_labels(categorical.feedback), comment_labels(plain.feedback)
    )
    ours = HashedTexts.of(categorical.feedback, categorical.tickets)
    theirs = HashedTexts.of(plain.feedback, plain.tickets)
    assert (ours.tickets_for(tickets.index) != theirs.tickets_for(tickets.index)).nnz == 0
    assert (ours.comments_for(feedback.index) != theirs.comments_for(feedback.index)).nnz == 0
    assert len(ours.tickets.present) < len(tickets)  # each distinct text counted once
    pd.testing.assert_frame_equal(
        customer_satisfaction(categorical, seed=1).frame,
        customer_satisfaction(plain, seed=1).frame,
    )
