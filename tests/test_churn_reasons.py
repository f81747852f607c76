"""Every churn reason the sample company and the real CDNOW book (`cdnow_book`: 23,570 real
customers, most of whom bought once) get is a reason: it compares unequal figures, counts
in the right number, is built on a figure the customer has, and points the way of the
customer's verdict."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd
import pytest

from crmbot import queries
from crmbot.analytics.source.loading import load_training_data
from crmbot.analytics.source.pandas_summary import customer_summary
from crmbot.core.db import read_session

# "1" followed by a plural: "1 purchase days", "1 days", "1 purchases", "1 support tickets".
ONE_PLURAL = re.compile(r"(?<![\d.,])1 (?:\w+ )?(?:days|purchases|tickets|months|years|hours)\b")
# Two figures the reason compares: (the customer's, the comparison).
COMPARISONS = [
    re.compile(r"^(?:only )?([\d.,]+) purchase days? in .* \(typical customer: ([\d.,]+)\)$"),
    re.compile(r"^no order for ([\d,]+) days? — usually orders every ([\d,]+) days$"),
    re.compile(r"^last order ([\d,]+) days? ago — usually orders every ([\d,]+) days$"),
    re.compile(r"^no order for ([\d,]+) days?.* \(typical customer: ([\d,]+) days?\)$"),
    re.compile(r"^last order ([\d,]+) days? ago \(typical customer: ([\d,]+) days? ago\)$"),
    re.compile(r"^customer for (.+) \(typical customer: (.+)\)$"),
    re.compile(r"^orders every ([\d,]+) days on average \(typical customer: every ([\d,]+) days\)"),
    re.compile(r"^spends ([\d.,]+) per purchase day \(typical customer: ([\d.,]+)\)$"),
    re.compile(r"^([\d.]+) purchase days? a month in the last 90 days, (?:down|up) from ([\d.]+)"),
    re.compile(r"^purchase pattern: (?:only )?(.+) chance .* \(typical customer: (.+)\)$"),
    re.compile(r"^(\d+|no) (?:unresolved|support) tickets?.* \(typical customer: (.+)\)$"),
    re.compile(
        r"^tickets (?:took|closed in) (.+?) (?:to close )?on average \(typical customer: (.+)\)$"
    ),
    re.compile(r"^last CSAT (\d)/5 \(typical customer: ([\d.]+)/5\)$"),
    re.compile(r"^last NPS (\d+) \(\w+; typical customer: ([\d.]+)\)$"),
    re.compile(
        r"^\w+ tone in tickets and comments \(([-+][\d.]+) on -1\.\.1; typical customer: (.+)\)$"
    ),
]
# Words a reason used to say about a figure the customer does not have.
UNDEFINED = re.compile(
    r"no CSAT rating yet|never answered|no support ticket closed|no tickets or comments|"
    r"nothing before|\(0 per purchase day\)|orders every 0\b|every 1\b"
)


@pytest.fixture(scope="module", params=["sample_company", "cdnow_book"])
def reasons_with_facts(request: pytest.FixtureRequest) -> list[tuple[int, str, pd.Series, bool]]:
    """(customer, reason, the customer's summary and scores, raised?) for every reason of
    the book (the sample company, then CDNOW)."""
    book: Any = request.getfixturevalue(request.param)
    with read_session(book.engine) as session:
        scores = queries.scores_frame(session=session)
    summary = customer_summary(load_training_data(book.engine, book.as_of))
    typical_risk = book.run.metrics["churn"]["typical_risk"]
    answers = scores[["csat_latest", "nps_latest", "sentiment", "segment", "churn_risk"]]
    facts = summary.drop(columns=answers.columns, errors="ignore").join(answers, how="inner")
    rows = []
    for pk, texts in scores["churn_reasons"].dropna().items():
        for text in texts:
            raised = bool(round(scores.loc[pk, "churn_risk"], 4) >= typical_risk)
            rows.append((int(pk), text, facts.loc[pk], raised))
    return rows


def test_the_book_has_reasons_both_ways(
    reasons_with_facts: list[tuple[int, str, pd.Series, bool]],
) -> None:
    raised = {pk for pk, _, _, up in reasons_with_facts if up}
    kept_low = {pk for pk, _, _, up in reasons_with_facts if not up}
    assert len(raised) > 100 and len(kept_low) > 100
    assert len(reasons_with_facts) > 1000


def test_no_reason_compares_equal_figures(
    reasons_with_facts: list[tuple[int, str, pd.Series, bool]],
) -> None:
    compared = 0
    for pk, text, _, _ in reasons_with_facts:
        for pattern in COMPARISONS:
            plain = text.replace("every day", "every 1 days").replace("today", "0 days ago")
            match = pattern.match(plain)
            if match:
                mine, theirs = match.groups()
                assert mine.replace("no", "none") != theirs, (pk, text)
                compared += 1
                break
        else:
            # The rest compare with the customer's own past or name their segment.
            assert re.match(r"spend (down|up) [1-9]\d*% |\w[\w' ]* segment: ", text), (pk, text)
    # Most reasons compare two figures; on CDNOW a fifth name the segment (most of its
    # customers are one-time buyers who went quiet: "Lost segment: ...").
    assert compared > 0.75 * len(reasons_with_facts)


def test_no_reason_gets_its_plural_wrong(
    reasons_with_facts: list[tuple[int, str, pd.Series, bool]],
) -> None:
    for pk, text, _, _ in reasons_with_facts:
        assert not ONE_PLURAL.search(text), (pk, text)
        assert not re.search(r"(?<![\d.,])1 purchases\b|\bevery 1\b", text), (pk, text)


def test_no_reason_is_built_on_an_undefined_zero(
    reasons_with_facts: list[tuple[int, str, pd.Series, bool]],
) -> None:
    for pk, text, row, _ in reasons_with_facts:
        assert not UNDEFINED.search(text), (pk, text)
        if text.startswith("last CSAT"):
            assert not np.isnan(row["csat_latest"]), (pk, text)
        if text.startswith("last NPS"):
            assert not np.isnan(row["nps_latest"]), (pk, text)
        if " tone in tickets and comments" in text:
            assert not np.isnan(row["sentiment"]), (pk, text)
        if text.startswith("tickets "):
            assert row["tickets_count"] > 0, (pk, text)
        if " a month in the last 90 days" in text or text.startswith("spend "):
            # Only a customer who bought before the last 90 days has a "before".
            assert not np.isnan(row["purchase_rate_before_90d"]), (pk, text)
        if "usually orders every" in text:
            assert row["frequency"] > 1, (pk, text)  # a rhythm needs two purchase days
        if text.startswith("spends "):
            assert row["frequency"] > 0, (pk, text)


def test_every_reason_points_the_way_of_the_verdict(
    reasons_with_facts: list[tuple[int, str, pd.Series, bool]],
) -> None:
    raising = re.compile(r"^(no order for|only |[1-9]\d* (unresolved|support) ticket|spend down)")
    lowering = re.compile(r"^(last order |no (unresolved|support) tickets|spend up)")
    for pk, text, _, raised in reasons_with_facts:
        if raising.match(text):
            assert raised, (pk, text)
        if lowering.match(text):
            assert not raised, (pk, text)
        if text.startswith("purchase pattern: only"):
            assert not raised, (pk, text)
        answer = re.match(
            r"last (?:CSAT (\d)/5 \(|NPS (\d+) \(\w+; )typical customer: ([\d.]+)", text
        )
        if answer:
            mine = float(answer.group(1) or answer.group(2))
            assert (mine < float(answer.group(3))) == raised, (pk, text)
