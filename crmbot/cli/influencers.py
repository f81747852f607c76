"""`crmbot influencers [N] [--segment S] [--region R]`: the active run's influence ranking,
with the why in words."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import typer
from rich.table import Table
from sqlalchemy.orm import Session

from crmbot import queries, runs
from crmbot.cli import common
from crmbot.core.db import DatabaseUnavailable, read_session
from crmbot.core.models import Customer, CustomerScore, ModelRun
from crmbot.queries.scope import EVERYONE
from crmbot.reply.reasons import influence_reason

MAX_LISTED = 500


@dataclass(frozen=True)
class Influencer:
    customer: Customer
    score: CustomerScore
    community_hub: bool  # the most influential member of their community

    def reason(self) -> str:
        row = {
            name: getattr(self.score, name)
            for name in (
                "influence",
                "referred_customers",
                "referred_spend",
                "referred_active",
                "community_size",
            )
        }
        row["region"] = self.customer.region
        row["community_hub"] = self.community_hub
        return influence_reason(row)


def top_influencers(
    session: Session,
    *,
    run: ModelRun,
    limit: int = 10,
    segment: str | None = None,
    region: str | None = None,
) -> list[Influencer]:
    """The run's most influential customers (influence above zero), optionally of one
    segment and/or region (both matched without regard to case)."""
    rows = queries.influencers(
        session=session, run=run, scope=EVERYONE, limit=limit, segment=segment, region=region
    )
    communities = {row.score.community for row in rows if row.score.community is not None}
    strongest = queries.community_leaders(session=session, run=run, communities=communities)
    return [
        Influencer(
            customer=row.customer,
            score=row.score,
            community_hub=row.score.community is not None
            and row.score.influence is not None
            and row.score.influence >= strongest.get(row.score.community, float("inf")),
        )
        for row in rows
    ]


def _pick(name: str, given: str | None, known: Sequence[str]) -> None:
    if given and given.lower() not in {k.lower() for k in known}:
        choices = ", ".join(known) if known else "none yet"
        raise common.fail(f"there is no {name} '{given}'; known {name}s: {choices}")


def _render(influencers: list[Influencer], run: ModelRun, title: str) -> None:
    table = Table(title=title, title_justify="left", show_lines=False)
    table.add_column("#", justify="right")
    table.add_column("Customer")
    table.add_column("Segment")
    table.add_column("Influence", justify="right")
    table.add_column("Why", overflow="fold")
    for number, item in enumerate(influencers, start=1):
        name = item.customer.name or item.customer.customer_id
        table.add_row(
            str(item.score.influence_rank or number),
            f"{name} ({item.customer.customer_id})",
            item.score.segment or "—",
            f"{item.score.influence or 0.0:.2f}",
            item.reason(),
        )
    common.console.print(table)
    common.console.print(
        f"Model run {run.id}, data as of {run.as_of:%Y-%m-%d}. Influence 1.00 = what an "
        "average customer holds; it counts the PageRank that reaches a customer through the "
        "customers they referred (and who bought what they bought soon after them).",
        highlight=False,
    )


def influencers(
    count: int = typer.Argument(10, min=1, max=MAX_LISTED, help="How many to list."),
    segment: str = typer.Option(
        None, "--segment", help="Only this segment, e.g. Champions.", show_default=False
    ),
    region: str = typer.Option(
        None, "--region", help="Only this region, e.g. EMEA.", show_default=False
    ),
) -> None:
    """The customers whose referrals and purchases move others, and why."""
    engine = common.engine()
    try:
        with read_session(engine) as session:
            run = runs.active_run(session=session)
            if run is None:
                raise common.fail("no model is active yet; run `crmbot train` first")
            _pick("segment", segment, queries.segment_names(session=session, run=run))
            _pick("region", region, queries.region_names(session=session))
            found = top_influencers(session, run=run, limit=count, segment=segment, region=region)
    except DatabaseUnavailable as exc:
        raise common.fail(f"{DatabaseUnavailable.user_message}\n({exc})") from None
    except runs.RunUnreadable as unreadable:
        raise common.fail(str(unreadable)) from None
    if not found:
        graph_params = (runs.run_json(run, "params") or {}).get("graph")
        graph_params = graph_params if isinstance(graph_params, dict) else {}
        why = graph_params.get("skipped_because")
        scope = " in that segment/region" if segment or region else ""
        common.console.print(
            f"No customer{scope} has measurable influence in model run {run.id}"
            + (f": {why}." if why else "."),
            highlight=False,
        )
        return
    where = " ".join(p for p in (segment, region) if p)
    _render(found, run, f"Top {len(found)} influencers" + (f" — {where}" if where else ""))


def register(app: typer.Typer) -> None:
    app.command("influencers")(influencers)
