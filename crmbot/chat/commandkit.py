"""What chat commands share: finding a customer from what was typed, whose customers a user
may see (`reader_scope`, decided here once for every command), the replies every command
gives the same way (no model yet, usage), and counts typed among other words. Numbers are
formatted by `crmbot.reply.format`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Literal, TypeVar

from sqlalchemy.orm import Session

from crmbot import queries
from crmbot.chat.registry import Request
from crmbot.core.clock import utc_now
from crmbot.core.db import read_session
from crmbot.core.models import Customer, ModelRun
from crmbot.queries.scope import Scope
from crmbot.reply import Reply
from crmbot.reply.export import MAX_EXPORT_ROWS, exported_text, write_csv
from crmbot.reply.format import clip

T = TypeVar("T")


def owner_identities(request: Request) -> list[str]:
    """Who the asker is as an account owner: their user id and, when known, their email
    and Slack handle."""
    return [i for i in (request.user_id, *request.user_aliases) if i]


def reader_scope(request: Request) -> Scope:
    """The customers `request`'s asker may see: everyone's, or only their own book.

    With CRMBOT_OWN_BOOK_ONLY, account managers (not admins) see only their own customers,
    in every list, count, lookup and answer; a customer outside their book is answered
    exactly like one that does not exist.
    """
    if request.settings.own_book_only and not request.is_admin:
        return Scope.book(owner_identities(request))
    return Scope.everyone()


def no_model_reply(request: Request) -> Reply:
    return Reply.error(
        "No model has been trained yet, so there are no scores to show. "
        f"An admin can train one with `{request.settings.slash_command} retrain` "
        "(or `crmbot train` on the server).",
        outcome="not_found",
    )


def usage_reply(request: Request, usage: str, problem: str = "") -> Reply:
    lead = f"{problem} " if problem else ""
    return Reply.usage(f"{lead}Usage: `{request.settings.slash_command} {usage}`")


@dataclass
class Resolved:
    customer: Customer
    how: str


def resolve_customer(
    session: Session, request: Request, query: str, *, usage: str, rest: str = ""
) -> Resolved | Reply:
    """The one customer `query` names, or a Reply: usage, candidates, or "did you mean".
    `rest` is what the asker typed after the customer, repeated in each candidate's command
    so that the command offered is whole (`/crm log 828 call left a message`)."""
    query = " ".join(query.split())
    if not query:
        return usage_reply(request, usage, "Which customer? Give an id, an email or a name.")
    if len(query) > 200:
        return usage_reply(request, usage, "That is too long for a customer id, email or name.")
    scope = reader_scope(request)
    lookup = queries.find_customer(session=session, query=query, owners=scope.owners)
    if lookup.customer is not None:
        return Resolved(lookup.customer, lookup.how)
    prefix = request.settings.slash_command
    command = request.command
    shown = clip(query, 60)
    if lookup.candidates:
        lines = [
            f"• {c.name or '(no name)'}{_details(c)} — "
            f"`{' '.join(filter(None, (prefix, command, c.customer_id, clip(rest, 60))))}`"
            for c in lookup.candidates
        ]
        return Reply(
            title="",
            text=f"'{shown}' matches more than one customer:\n" + "\n".join(lines),
            outcome="usage",
            customer_ids=[c.customer_id for c in lookup.candidates],
        )
    text = f"No customer '{shown}'"
    if lookup.suggestions:
        names = ", ".join(
            f"{c.name or c.customer_id} (`{c.customer_id}`)" for c in lookup.suggestions
        )
        text += f" — did you mean {names}?"
    else:
        text += ". Try the customer id, their email, or part of their name."
    return Reply(title="", text=text, outcome="not_found")


def customer_to_act_on(
    request: Request, query: str, *, usage: str, rest: str = ""
) -> tuple[Customer, int] | Reply:
    """The stored customer `query` names and its key (for the write that follows), or the
    Reply that says why there is none (see `resolve_customer`)."""
    with read_session(request.engine) as session:
        found = resolve_customer(session, request, query, usage=usage, rest=rest)
    if not isinstance(found, Resolved):
        return found
    assert found.customer.id is not None  # read from the database: it has its key
    return found.customer, found.customer.id


def _details(candidate: queries.Candidate) -> str:
    """What tells two same-named customers apart: company, region, owner."""
    parts = [p for p in (candidate.company, candidate.region, candidate.owner) if p]
    return f" ({', '.join(parts)})" if parts else ""


def count_arg(args: Iterable[str], *, default: int, maximum: int) -> tuple[int, list[str]]:
    """Split a leading/trailing count ("at-risk 20 EMEA") from the other words."""
    words = list(args)
    count = default
    rest = []
    for word in words:
        # isascii: str.isdigit also says yes to "¹" or "٣", which int() refuses or misreads.
        if word.isascii() and word.isdigit() and count == default and len(word) <= 6:
            count = max(1, min(int(word), maximum))
        else:
            rest.append(word)
    return count, rest


def first(items: list[T]) -> T | None:
    return items[0] if items else None


# --- What commands that act on an account share ---------------------------------------------

_QUOTES = {'"': '"', "'": "'", "“": "”", "‘": "’"}
_WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
_UNITS = {"day": 1, "days": 1, "d": 1, "week": 7, "weeks": 7, "w": 7}
# How far ahead a follow-up may be set.
MAX_DAYS_AHEAD = 3 * 365


def request_now(request: Request) -> datetime:
    """The moment a request is acted on (naive UTC), on the request's day: a test that
    injects `today` gets touches and follow-ups stamped on that day."""
    now = utc_now()
    return now if now.date() == request.today else datetime.combine(request.today, now.time())


def split_customer(text: str) -> tuple[str, str]:
    """The customer a line starts with and the rest: the first word (an id, an email, one
    name) or a quoted name ("Ada Lovelace" …)."""
    text = text.strip()
    if text[:1] in _QUOTES:
        end = text.find(_QUOTES[text[0]], 1)
        if end > 0:
            return text[1:end].strip(), text[end + 1 :].strip()
    word, _, rest = text.partition(" ")
    return word, rest.strip()


def parse_due(words: list[str], today: date) -> tuple[date, list[str]] | None:
    """The day the words start with and the words after it, or None: 2026-07-10, today,
    tomorrow, a weekday (the next one), "in 3 days", "in 2 weeks", "3d", "2w"."""
    if not words:
        return None
    head = words[0].lower().rstrip(",")
    match = re.fullmatch(r"(\d{1,4})\s*(d|w)", head)
    if head == "in" and len(words) >= 3 and words[1].isascii() and words[1].isdigit():
        unit = _UNITS.get(words[2].lower().rstrip(","))
        if unit is None:
            return None
        return _ahead(today, int(words[1]) * unit), words[3:]
    if match:
        return _ahead(today, int(match.group(1)) * _UNITS[match.group(2)]), words[1:]
    if head in ("today", "tomorrow"):
        return today + timedelta(days=1 if head == "tomorrow" else 0), words[1:]
    if head in _WEEKDAYS:
        ahead = (_WEEKDAYS.index(head) - today.weekday() - 1) % 7 + 1
        return today + timedelta(days=ahead), words[1:]
    try:
        return date.fromisoformat(head), words[1:]
    except ValueError:
        return None


def _ahead(today: date, days: int) -> date:
    return today + timedelta(days=min(days, MAX_DAYS_AHEAD))


def mentioned_user(word: str) -> str:
    """A user as typed: a Slack mention (<@U123|maria>) is its id; "@maria" is "maria"."""
    word = word.strip()
    found = re.fullmatch(r"<@([A-Z0-9]+)(?:\|[^>]*)?>", word)
    if found:
        return found.group(1)
    return word.lstrip("@")


def list_export_reply(
    request: Request,
    session: Session,
    run: ModelRun,
    scope: Scope,
    *,
    title: str,
    kind: Literal["at_risk", "top_value"],
    segment: str | None = None,
    region: str | None = None,
) -> Reply:
    """Every row of a customer list (`kind`, as `queries.list_export_rows` reads it) the
    asker may see, as a CSV file attached to the reply (masked when shared)."""
    found, rows = queries.list_export_rows(
        session=session,
        run=run,
        scope=scope,
        kind=kind,
        limit=MAX_EXPORT_ROWS,
        segment=segment,
        region=region,
    )
    attachment = write_csv(
        title=title,
        columns=queries.LIST_EXPORT_COLUMNS,
        rows=rows,
        shared=request.share,
        stamp=utc_now().strftime("%Y%m%d-%H%M%S-%f"),
    )
    return Reply(
        title=title,
        text=exported_text(attachment, found, shared=request.share),
        attachment=attachment,
        footer=f"Model run {run.id}, data as of {run.as_of:%Y-%m-%d}.",
    )
