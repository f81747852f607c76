"""`/crm customer <id | email | name>`: the customer card."""

from __future__ import annotations

from typing import Any

from crmbot import queries, runs
from crmbot.chat.commandkit import Resolved, resolve_customer
from crmbot.chat.registry import Request, command
from crmbot.core.db import read_session
from crmbot.core.models import CustomerScore
from crmbot.queries import RunFacts
from crmbot.reply import Button, Reply
from crmbot.reply.acting import account_buttons
from crmbot.reply.card import churn_text, clv_text, last_order_text, since_text, touch_text
from crmbot.reply.format import clip, day, money, number, percent
from crmbot.reply.links import customer_url
from crmbot.reply.people import owner_ref

USAGE = "customer <id | email | name>"
# A link button's action id: Slack reports the click, which runs nothing.
OPEN_IN_CRM = "link_open_crm"


@command("customer", usage=USAGE, aliases=("cust", "card"))
def customer_command(request: Request) -> Reply:
    """The customer card: segment, CLV, churn risk with reasons, next best product.

    Look a customer up by their id, their email or their name; names are matched
    fuzzily, so "ada lovlace" finds Ada Lovelace. When several customers match, the
    candidates are listed with the command that opens each one.
    """
    with read_session(request.engine) as session:
        found = resolve_customer(session, request, request.text, usage=USAGE)
        if not isinstance(found, Resolved):
            return found
        card = queries.customer_card(
            session=session, customer=found.customer, run=runs.active_run(session=session)
        )
        assert found.customer.id is not None
        following = request.user_id in queries.followers_of(
            session=session, customer_pk=found.customer.id
        )
    return render_card(card, request, following=following)


def render_card(card: queries.CustomerCard, request: Request, *, following: bool = False) -> Reply:
    customer, score = card.customer, card.score
    fields: list[tuple[str, str]] = [
        ("Company", customer.company or "—"),
        ("Owner", owner_ref(customer.owner) if customer.owner else "—"),
        ("Region", customer.region or "—"),
        ("Email", customer.email or "—"),
        ("Phone", customer.phone or "—"),
    ]
    if score is None:
        fields.append(("Scores", "not scored yet — no active model covers this customer"))
    else:
        fields += _score_fields(
            score, card.facts, horizon_months=request.settings.clv_horizon_months
        )
        fields.append(("Next best product", _next_product(card.offers)))
    # Everything above is as of the run's day; so is the last order. Anything newer is
    # said to be newer.
    fields.append(("Last order", last_order_text(card)))
    since = since_text(card.since)
    if since is not None and card.run is not None:
        fields.append(
            ("Since the model", f"{since} (after {day(card.run.as_of)}: not in the scores)")
        )
    touched = touch_text(card.last_touch, request.today)
    if touched is not None:
        fields.append(("Last touch", touched))
    footer = ""
    if card.run is not None:
        footer = f"Model run {card.run.id}, data as of {card.run.as_of:%Y-%m-%d}."
    name = clip(customer.name or customer.customer_id, 100)
    return Reply(
        title=f"{name} ({clip(customer.customer_id, 40)})",
        fields=fields,
        buttons=[
            Button("Why?", "crm_why", customer.customer_id, style="primary"),
            Button("Similar customers", "crm_similar", customer.customer_id),
            Button("Order history", "crm_history", customer.customer_id),
            Button("Show at-risk", "crm_at_risk", ""),
            *_crm_link(request, customer.customer_id),
            # Log a touch, Follow-up, Follow / Unfollow, Snooze 7 days.
            *account_buttons(customer.customer_id, following=following),
        ],
        contains_pii=bool(customer.email or customer.phone),
        customer_ids=[customer.customer_id],
        footer=footer,
    )


def _crm_link(request: Request, customer_id: str) -> list[Button]:
    """ "Open in CRM", when CRMBOT_CUSTOMER_URL_TEMPLATE says where the CRM's page is."""
    url = customer_url(request.settings.customer_url_template, customer_id)
    return [Button("Open in CRM", OPEN_IN_CRM, customer_id, url=url)] if url else []


def _score_fields(
    score: CustomerScore, facts: RunFacts, *, horizon_months: int
) -> list[tuple[str, str]]:
    segment = score.segment
    if score.previous_segment and score.previous_segment != score.segment:
        segment += f" (moved from {score.previous_segment})"
    rfm = ""
    if score.r_score is not None:
        rfm = f" · RFM {score.r_score}{score.f_score}{score.m_score}"
    cluster = "—"
    if score.cluster is not None:
        cluster = (
            f"{score.cluster}: {score.cluster_label}" if score.cluster_label else str(score.cluster)
        )
    return [
        ("Segment", segment + rfm),
        ("Cluster", cluster),
        (f"CLV ({horizon_months} mo)", clv_text(score, facts)),
        ("Churn risk", churn_text(score, facts)),
        ("Satisfaction", _satisfaction(score)),
        ("Influence", _influence(score)),
    ]


def _satisfaction(score: CustomerScore) -> str:
    parts = []
    if score.csat_avg is not None:
        parts.append(f"CSAT {number(score.csat_avg)}/5")
    if score.nps_latest is not None:
        category = f" ({score.nps_category})" if score.nps_category else ""
        parts.append(f"NPS {score.nps_latest}{category}")
    if score.sentiment is not None:
        parts.append(f"sentiment {score.sentiment:+.2f}")
    if score.satisfaction is not None and not parts:
        parts.append(f"score {number(score.satisfaction, 2)}")
    return " · ".join(parts) or "no surveys or tickets"


def _influence(score: CustomerScore) -> str:
    if score.influence_rank is None and not score.referred_customers:
        return "no referrals"
    parts = []
    if score.influence_rank is not None:
        parts.append(f"rank {score.influence_rank:,}")
    if score.referred_customers:
        parts.append(
            f"referred {score.referred_customers} ({score.referred_active} active, "
            f"{money(score.referred_spend)} spent)"
        )
    if score.community_size:
        parts.append(f"community of {score.community_size:,}")
    return " · ".join(parts)


def _next_product(offers: list[dict[str, Any]]) -> str:
    if not offers:
        return "—"
    best = offers[0]
    name = clip(str(best.get("name") or best.get("product_id") or "?"), 60)
    details = []
    if best.get("confidence") is not None:
        details.append(f"confidence {percent(float(best['confidence']))}")
    if best.get("lift") is not None:
        details.append(f"lift {float(best['lift']):.1f}")
    reason = f" — {clip(str(best['reason']), 120)}" if best.get("reason") else ""
    return f"{name} ({', '.join(details)}){reason}" if details else f"{name}{reason}"
