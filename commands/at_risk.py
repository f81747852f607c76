"""`/crm at-risk [N] [segment | region | mine]`: the accounts most worth saving."""

from __future__ import annotations

from rapidfuzz import fuzz, process, utils
from sqlalchemy.orm import Session

from crmbot import queries, runs
from crmbot.chat.commandkit import (
    count_arg,
    list_export_reply,
    no_model_reply,
    owner_identities,
    reader_scope,
    usage_reply,
)
from crmbot.chat.registry import Request, command
from crmbot.core.db import read_session
from crmbot.core.models import ModelRun
from crmbot.queries.scope import Scope
from crmbot.reply import Button, Reply
from crmbot.reply.acting import act_on_rows
from crmbot.reply.export import export_button
from crmbot.reply.format import clip, money
from crmbot.reply.rows import AT_RISK_LIST, customer_label
from crmbot.reply.rows import table as rows_table

USAGE = "at-risk [N] [segment | region | mine]"
DEFAULT_COUNT = 10
MAX_COUNT = 50


@command("at-risk", usage=USAGE, aliases=("atrisk", "risk", "at_risk"))
def at_risk_command(request: Request) -> Reply:
    """The accounts most worth saving this week, by value at risk (CLV × churn risk).

    Narrow it to a segment (`at-risk 20 "Can't lose them"`), a region (`at-risk EMEA`)
    or your own book (`at-risk mine`). Each row carries the top reason for the risk.
    `--csv` (or the list's "Export all as CSV" button) sends every account at risk, with
    contact details, as a CSV file.
    """
    count, words = count_arg(request.args, default=DEFAULT_COUNT, maximum=MAX_COUNT)
    filter_text = " ".join(words)
    with read_session(request.engine) as session:
        run = runs.active_run(session=session)
        if run is None:
            return no_model_reply(request)
        scope = reader_scope(request)
        segment = region = None
        described = "everyone's accounts" if scope.is_everyone else "your accounts"
        if filter_text.lower() in ("mine", "my", "me", "own"):
            scope = Scope.book(owner_identities(request))
            described = "your accounts"
        elif filter_text:
            segment, region = _match_filter(session, run, filter_text)
            if segment is None and region is None:
                known = queries.segment_names(session=session, run=run) + queries.region_names(
                    session=session
                )
                hint = ", ".join(known[:14])
                return usage_reply(
                    request,
                    USAGE,
                    f"'{clip(filter_text, 40)}' is not a segment or region I know (known: {hint}).",
                )
            described = f"segment {segment}" if segment else f"region {region}"
        if request.export:
            return list_export_reply(
                request,
                session,
                run,
                scope,
                title=f"Accounts at risk — {described}",
                kind="at_risk",
                segment=segment,
                region=region,
            )
        rows = queries.at_risk(
            session=session, run=run, scope=scope, limit=count, segment=segment, region=region
        )
    if not rows:
        return Reply(
            title="Accounts at risk",
            text=f"No accounts at risk in {described} in the current model.",
            outcome="ok",
        )
    table = rows_table(rows, AT_RISK_LIST)
    total = sum(row.score.value_at_risk or 0.0 for row in rows)
    buttons = [
        Button(
            f"Why? {clip(row.customer.name or row.customer.customer_id, 20)}",
            "crm_why",
            row.customer.customer_id,
        )
        for row in rows[:3]
    ]
    if len(rows) == count:  # a full list: more may be at risk than a message shows
        buttons.append(export_button("crm_at_risk", filter_text))
    return Reply(
        title=f"Top {len(rows)} accounts at risk — {described}",
        text=f"Value at risk in this list: *{money(total)}* (CLV × churn risk).",
        table=table,
        buttons=buttons,
        # The first rows' "Log a touch", "Follow-up", "Follow", "Snooze 7 days".
        sections=act_on_rows([(r.customer.customer_id, customer_label(r.customer)) for r in rows]),
        customer_ids=[row.customer.customer_id for row in rows],
        footer=f"Model run {run.id}, data as of {run.as_of:%Y-%m-%d}.",
    )


def _match_filter(session: Session, run: ModelRun, text: str) -> tuple[str | None, str | None]:
    """A segment or region name from loosely typed text ("cant lose", "emea")."""
    segments = queries.segment_names(session=session, run=run)
    lowered = text.lower()
    for name in segments:
        if name.lower() == lowered:
            return name, None
    # Only now: the regions are read from the database, the segments from the run's record.
    regions = queries.region_names(session=session)
    for name in regions:
        if name.lower() == lowered:
            return None, name
    best_segment = process.extractOne(
        text, segments, scorer=fuzz.WRatio, processor=utils.default_process, score_cutoff=80
    )
    best_region = process.extractOne(
        text, regions, scorer=fuzz.WRatio, processor=utils.default_process, score_cutoff=85
    )
    if best_segment and (not best_region or best_segment[1] >= best_region[1]):
        return str(best_segment[0]), None
    if best_region:
        return None, str(best_region[0])
    return None, None
