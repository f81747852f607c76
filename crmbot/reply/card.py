"""A customer's scores in words that tell one story: churn risk with what moved it,
P(alive) only where the model estimates it, and what happened after the model's day.

Shared by the customer card (`/crm customer`) and `/crm why`.
"""

from __future__ import annotations

from datetime import date

from crmbot.core.models import TOUCH_OUTCOME_WORDS, CustomerScore, Touch
from crmbot.queries import CustomerCard, RunFacts, SinceModel
from crmbot.reply.format import ago, count, day, money, number, percent

# P(alive) and churn risk this far apart get a word that says why both are true.
RECONCILE_P_ALIVE = 0.9
RECONCILE_CHURN_RISK = 0.7
DEFAULT_HORIZON_DAYS = 90


def p_alive(score: CustomerScore, facts: RunFacts) -> str | None:
    """P(alive) as a percentage, or None where the model cannot estimate it."""
    if not facts.dropout_estimated or score.p_alive is None:
        return None
    if facts.purchase_model != "MBG/NBD" and score.frequency <= 1:
        # BG/NBD lets nobody drop out before a repeat purchase: 1 by construction (runs
        # trained before this was left empty stored it).
        return None
    return percent(score.p_alive)


def p_alive_text(score: CustomerScore, facts: RunFacts) -> str:
    """'P(alive) 97%', with a word where it would seem to contradict the churn risk, or
    why there is none."""
    shown = p_alive(score, facts)
    if shown is None:
        if not facts.dropout_estimated:
            return "P(alive) not estimated (dropout could not be estimated on this book)"
        return "P(alive) not estimated (no repeat purchase yet)"
    text = f"P(alive) {shown}"
    risk = score.churn_risk
    if (
        score.p_alive is not None
        and risk is not None
        and score.p_alive >= RECONCILE_P_ALIVE
        and risk >= RECONCILE_CHURN_RISK
    ):
        horizon = facts.horizon_days or DEFAULT_HORIZON_DAYS
        text += (
            " — probably has not left for good, but an order within "
            f"{count(horizon, 'day')} is unlikely"
        )
    return text


def clv_text(score: CustomerScore, facts: RunFacts) -> str:
    """CLV, with its expected purchases, and the assumption it rests on where dropout is
    unknown."""
    text = money(score.clv)
    if not facts.dropout_estimated and score.clv is not None:
        text += " if they keep buying"
    if score.expected_purchases is not None:
        text += f" · {number(score.expected_purchases)} purchases expected"
    return f"{text} · {p_alive_text(score, facts)}"


def verdict(score: CustomerScore, facts: RunFacts) -> str | None:
    """'raised by' or 'kept low by': which way the reasons point, against the typical
    customer's risk (None when the run did not record it)."""
    if score.churn_risk is None or facts.typical_risk is None:
        return None
    raised = round(score.churn_risk, 4) >= round(facts.typical_risk, 4)
    return "raised by" if raised else "kept low by"


def churn_text(score: CustomerScore, facts: RunFacts, *, reasons: int = 3) -> str:
    """'71% (typical customer 45%) — raised by: a; b; c (value at risk 5,200)'."""
    text = percent(score.churn_risk)
    if facts.typical_risk is not None and score.churn_risk is not None:
        text += f" (typical customer {percent(facts.typical_risk)})"
    listed = (score.churn_reasons or [])[:reasons]
    way = verdict(score, facts)
    if listed:
        text += " — " + (f"{way}: " if way else "") + "; ".join(listed)
    if score.value_at_risk is not None:
        text += f" (value at risk {money(score.value_at_risk)})"
    return text


def last_order_text(card: CustomerCard) -> str:
    """The last purchase up to the run's day, with the run's counts; never a refund."""
    last, score = card.last_order, card.score
    if last is None:
        return "no orders yet" if card.run is None else "no orders up to the model's day"
    text = f"{day(last.ordered_at)} · {money(last.amount)} {last.currency}"
    if score is not None:
        text += f" ({count(score.orders_count, 'order')}, {money(score.total_spend)} in all)"
    return text


def since_text(since: SinceModel | None) -> str | None:
    """What the customer did after the run's day, or None when nothing."""
    if since is None or (since.orders == 0 and since.refunds == 0):
        return None
    parts = []
    if since.orders:
        parts.append(count(since.orders, "order"))
        if since.last_order_at is not None:
            parts[-1] += f", last on {day(since.last_order_at)}"
    if since.refunds:
        parts.append(count(since.refunds, "refund"))
    return "; ".join(parts)


def touch_text(touch: Touch | None, today: date) -> str | None:
    """'call by U123, 3 days ago — reached'; None when nothing was logged. The author is
    as stored (a Slack user id or the shell user's name): a transport may show it by name."""
    if touch is None:
        return None
    text = f"{touch.kind} by {touch.author}, {ago(touch.created_at, today)}"
    if touch.outcome:
        text += f" — {TOUCH_OUTCOME_WORDS.get(touch.outcome, touch.outcome)}"
    return text
