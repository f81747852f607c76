"""Support tickets and survey feedback whose words follow the customer's mood.

A customer's mood at a moment is their latent satisfaction, minus a penalty while they are
declining towards churn, plus noise. Tickets: unhappy customers write more, more of them
negative, slower to close, more often left unresolved; declining customers write extra
ones. Surveys: NPS 0-10 and CSAT 1-5 follow the mood, and the comment's words follow the
scores, so a text model trained on scored comments can read the unscored ones.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from crmbot.demo import catalog
from crmbot.demo.lifecycle import Lifecycles

MOODS = ("negative", "neutral", "positive")
TICKETS_PER_DAY = 0.0035  # ~1.3 a year for a customer of average satisfaction
PROSPECT_TICKETS_PER_DAY = 0.001
DECLINE_EXTRA_TICKETS = 4.0
SURVEYS_PER_YEAR = 1.5
COMMENT_LABEL_NOISE = 0.05
SENTENCE_START = re.compile(r"(?:^|[.!?]\s+)[a-z]")


@dataclass
class Events:
    customer: np.ndarray
    t: np.ndarray


def _uniform_events(
    rng: np.random.Generator,
    customers: np.ndarray,
    start: np.ndarray,
    end: np.ndarray,
    expected: np.ndarray,
) -> Events:
    """Poisson(expected) events per customer, uniform in [start, end)."""
    length = np.maximum(end - start, 0.0)
    counts = rng.poisson(np.where(length > 0, expected, 0.0))
    customer = np.repeat(customers, counts)
    t = np.repeat(start, counts) + rng.random(counts.sum()) * np.repeat(length, counts)
    return Events(customer=customer, t=t)


def _mood(score: np.ndarray, low: float, high: float) -> np.ndarray:
    return np.where(score < low, 0, np.where(score > high, 2, 1))


def make_tickets(
    rng: np.random.Generator, life: Lifecycles, signup_t: np.ndarray, period_days: float
) -> pd.DataFrame:
    """Columns: customer (position), opened_t, closed_t (NaN: open), channel, subject,
    body, csat (NaN: not answered)."""
    customers = np.arange(len(signup_t))
    buyer = life.first_t < period_days
    end = np.minimum(np.where(buyer, life.churn_t + 30.0, period_days), period_days)
    rate = np.where(
        buyer, TICKETS_PER_DAY * np.exp(-0.35 * life.satisfaction), PROSPECT_TICKETS_PER_DAY
    )
    usual = _uniform_events(rng, customers, signup_t, end, rate * (end - signup_t))

    declining = customers[buyer & life.shows_signals & (life.decline_t < period_days)]
    decline_start = life.decline_t[declining]
    decline_end = np.minimum(life.churn_t[declining] + 20.0, period_days)
    full_span = life.churn_t[declining] + 20.0 - decline_start
    visible = (decline_end - decline_start) / np.maximum(full_span, 1e-9)
    extra = _uniform_events(
        rng, declining, decline_start, decline_end, DECLINE_EXTRA_TICKETS * visible
    )

    customer = np.concatenate([usual.customer, extra.customer])
    opened = np.concatenate([usual.t, extra.t])
    in_decline = np.concatenate([np.zeros(len(usual.t), bool), np.ones(len(extra.t), bool)])
    count = len(customer)
    mood_score = life.satisfaction_at(customer, opened) + rng.normal(0.0, 0.9, size=count)
    mood = _mood(mood_score, -0.4, 1.0)

    close_days = np.array([3.5, 1.2, 0.6])[mood]
    closed = opened + 0.02 + rng.exponential(close_days)
    open_p = np.where(in_decline, 0.35, np.where(mood == 0, 0.10, 0.03))
    left_open = (rng.random(count) < open_p) | (closed >= period_days)
    closed = np.where(left_open, np.nan, closed)
    csat_score = np.clip(np.rint(3.5 + 0.9 * mood_score + rng.normal(0, 0.6, count)), 1, 5)
    answered = ~left_open & (rng.random(count) < 0.55)
    csat = np.where(answered, csat_score, np.nan)

    channel_names = [name for name, _w in catalog.TICKET_CHANNELS]
    channel_weights = np.array([w for _n, w in catalog.TICKET_CHANNELS])
    channel = rng.choice(channel_names, size=count, p=channel_weights)
    subject, body = _ticket_texts(rng, mood)
    frame = pd.DataFrame(
        {
            "customer": customer,
            "opened_t": opened,
            "closed_t": closed,
            "channel": channel,
            "subject": subject,
            "body": body,
            "csat": csat,
        }
    )
    return frame.sort_values(["opened_t", "customer"], kind="stable").reset_index(drop=True)


def _pick_text(
    rng: np.random.Generator, mood: np.ndarray, texts: dict[str, list[str]]
) -> np.ndarray:
    """One entry of `texts[mood]` per row, uniformly at random."""
    picked = np.empty(len(mood), dtype=object)
    for number, name in enumerate(MOODS):
        rows = np.flatnonzero(mood == number)
        choices = np.array(texts[name], dtype=object)
        picked[rows] = choices[rng.integers(0, len(choices), size=len(rows))]
    return picked


def _ticket_texts(rng: np.random.Generator, mood: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Subject and body per ticket: an issue of the ticket's mood told in one of its templates."""
    subject = np.empty(len(mood), dtype=object)
    body = np.empty(len(mood), dtype=object)
    for number, name in enumerate(MOODS):
        rows = np.flatnonzero(mood == number)
        issues = catalog.TICKET_ISSUES[name]
        templates = catalog.TICKET_BODIES[name]
        subjects = np.array([title for title, _what in issues], dtype=object)
        # Every (issue, template) body written once; tickets pick from the table.
        bodies = np.array(
            [[_sentence_case(t.format(topic=what)) for t in templates] for _s, what in issues],
            dtype=object,
        )
        issue = rng.integers(0, len(issues), size=len(rows))
        template = rng.integers(0, len(templates), size=len(rows))
        subject[rows] = subjects[issue]
        body[rows] = bodies[issue, template]
    return subject, body


def _sentence_case(text: str) -> str:
    return SENTENCE_START.sub(lambda m: m.group(0).upper(), text)


def make_feedback(rng: np.random.Generator, life: Lifecycles, period_days: float) -> pd.DataFrame:
    """Columns: customer, submitted_t, nps, csat (NaN when not given), comment ("" if none)."""
    customers = np.flatnonzero(life.first_t < period_days)
    start = life.first_t[customers]
    end = np.minimum(life.churn_t[customers] + 15.0, period_days)
    usual = _uniform_events(rng, customers, start, end, SURVEYS_PER_YEAR * (end - start) / 365)
    # Customers on the way out are asked "how are we doing?" more often.
    declining = customers[life.shows_signals[customers] & (life.decline_t[customers] < period_days)]
    asked = declining[rng.random(len(declining)) < 0.5]
    d_start = life.decline_t[asked]
    d_end = np.minimum(life.churn_t[asked], period_days)
    extra = _uniform_events(rng, asked, d_start, d_end, np.ones(len(asked)))

    customer = np.concatenate([usual.customer, extra.customer])
    submitted = np.concatenate([usual.t, extra.t])
    count = len(customer)
    mood_score = life.satisfaction_at(customer, submitted) + rng.normal(0.0, 0.7, size=count)
    nps = np.clip(np.rint(7.7 + 1.8 * mood_score + rng.normal(0, 1.0, count)), 0, 10)
    csat = np.clip(np.rint(3.7 + 0.85 * mood_score + rng.normal(0, 0.5, count)), 1, 5)

    form = rng.random(count)
    no_scores = form < 0.12
    nps_only = (form >= 0.12) & (form < 0.20)
    csat_only = (form >= 0.20) & (form < 0.28)
    nps = np.where(no_scores | csat_only, np.nan, nps)
    csat = np.where(no_scores | nps_only, np.nan, csat)

    # The comment's words follow the scores the customer gave (or their mood if none).
    from_csat = np.where(csat <= 2, 0, np.where(csat >= 4, 2, 1))
    from_nps = np.where(nps <= 6, 0, np.where(nps >= 9, 2, 1))
    from_mood = _mood(mood_score, -0.3, 0.9)
    sentiment = np.where(~np.isnan(csat), from_csat, np.where(~np.isnan(nps), from_nps, from_mood))
    noisy = rng.random(count) < COMMENT_LABEL_NOISE
    sentiment = np.where(noisy, rng.integers(0, 3, size=count), sentiment)
    has_comment = no_scores | (rng.random(count) < 0.75)
    comment = _comments(rng, sentiment)
    comment = np.where(has_comment, comment, "")
    frame = pd.DataFrame(
        {
            "customer": customer,
            "submitted_t": submitted,
            "nps": nps,
            "csat": csat,
            "comment": comment,
        }
    )
    return frame.sort_values(["submitted_t", "customer"], kind="stable").reset_index(drop=True)


def _comments(rng: np.random.Generator, sentiment: np.ndarray) -> np.ndarray:
    first = _pick_text(rng, sentiment, catalog.COMMENT_PHRASES)
    second = _pick_text(rng, sentiment, catalog.COMMENT_PHRASES)
    two = (rng.random(len(sentiment)) < 0.6) & (first != second)
    return np.where(two, first + " " + second, first)
