"""`/crm history <customer>`: a customer's order history, as a chart and the last orders."""

from __future__ import annotations

from collections import OrderedDict
from datetime import date, datetime

from crmbot import queries
from crmbot.chat.commandkit import Resolved, resolve_customer
from crmbot.chat.registry import Request, command
from crmbot.core.db import read_session
from crmbot.reply import Button, Chart, Reply, Table
from crmbot.reply.format import clip, money

USAGE = "history <id | email | name>"
MONTHS = 24
LAST_ORDERS = 10


@command("history", usage=USAGE, aliases=("orders",))
def history_command(request: Request) -> Reply:
    """A customer's order history: monthly spend over two years (chart) and the last orders."""
    with read_session(request.engine) as session:
        found = resolve_customer(session, request, request.text, usage=USAGE)
        if not isinstance(found, Resolved):
            return found
        customer = found.customer
        months = _month_starts(request.today, MONTHS)
        orders = queries.order_history(
            session=session,
            customer=customer,
            since=datetime.combine(months[0], datetime.min.time()),
        )
    name = clip(customer.name or customer.customer_id, 60)
    if not orders:
        return Reply(
            title=f"Order history — {name}",
            text=f"No orders in the last {MONTHS} months.",
            customer_ids=[customer.customer_id],
        )
    spend: OrderedDict[str, float] = OrderedDict((f"{m:%Y-%m}", 0.0) for m in months)
    for order in orders:
        key = f"{order.ordered_at:%Y-%m}"
        if key in spend:
            spend[key] += order.amount
    last = list(reversed(orders))[:LAST_ORDERS]
    return Reply(
        title=f"Order history — {name} ({customer.customer_id})",
        text=f"{len(orders):,} order{'s' if len(orders) != 1 else ''}, "
        f"{money(sum(o.amount for o in orders))} in the last {MONTHS} months.",
        table=Table(
            columns=["Order", "Date", "Amount"],
            rows=[
                [
                    clip(o.order_id, 20),
                    f"{o.ordered_at:%Y-%m-%d}",
                    f"{money(o.amount)} {o.currency}",
                ]
                for o in last
            ],
        ),
        chart=Chart(
            kind="bar",
            title=f"Monthly spend — {name}",
            labels=list(spend.keys()),
            values=list(spend.values()),
            y_label="spend",
        ),
        buttons=[Button("Customer card", "crm_customer", customer.customer_id)],
        customer_ids=[customer.customer_id],
    )


def _month_starts(today: date, count: int) -> list[date]:
    year, month = today.year, today.month
    starts = []
    for _ in range(count):
        starts.append(date(year, month, 1))
        month -= 1
        if month == 0:
            year, month = year - 1, 12
    return list(reversed(starts))
