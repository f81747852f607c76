"""Direct messages that go out once: alerts on change and follow-up reminders.

Both are claimed in the database *before* they are posted, and the claim is given back
when the post fails, so the next round tries again:

* **Alerts** (`send_alerts`): for the live run, if it went live within `ALERT_WINDOW` and
  replaced another, every account `crmbot.digests.alerts` finds is told to its owner (a
  Slack user id, or an email the workspace knows: `Poster.user_for`) and to its
  followers, one message per person per run. Each (run, customer, person) is claimed
  as an `AlertDelivery` row first (`crmbot.actions.alerts.claim_alert`: exactly one
  claimer); a post that fails deletes the rows it claimed. A person's snoozed accounts
  are left out. In quiet hours (CRMBOT_ALERT_QUIET_HOURS) nothing is claimed: the alerts
  wait for the next round after them (the `notify` job). A person gets at most
  CRMBOT_ALERT_DAILY_CAP accounts detailed per day; the others are claimed as counted
  only ("and 12 more", reason starting with `more:`), so they are not sent again later.
  CRMBOT_ALERT_CHANNEL also gets each run's alerts, masked, once.
* **Follow-up reminders** (`send_follow_ups`): each follow-up due on or before today goes
  to its assignee once: `mark_sent` claims it (a conditional UPDATE one caller wins) and
  is committed, then the DM is posted; when Slack refuses it after the poster's retries,
  `release_sent` gives the claim back and the next round sends it.

Claim, then post — not post, then mark: a crash between the two loses that one message
(the claim stays, nothing was posted) instead of sending it twice after every crash or
every slow database write; a failure Slack reports is retried. The poster puts the
claim's key in the message's metadata and looks in the conversation before repeating a
post whose answer was lost (`crmbot.slack.delivery`), so its own retries never double it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlmodel import col

from crmbot import runs
from crmbot.actions.alerts import claim_alert, release_alerts
from crmbot.actions.follows import snoozed_customers
from crmbot.actions.followups import due_follow_ups, mark_sent, release_sent
from crmbot.core.clock import utc_now
from crmbot.core.config import Settings, is_quiet, quiet_hours
from crmbot.core.db import read_session, write_session
from crmbot.core.models import AlertDelivery, Customer, ModelRun
from crmbot.digests.alerts import (
    AccountAlert,
    AlertRules,
    account_alerts,
    build_alert,
    previous_run_id,
)
from crmbot.digests.base import Poster, local_day
from crmbot.digests.follow_ups import build_follow_up_reminder
from crmbot.queries.changes import followers_by_customer, risk_changes

log = logging.getLogger(__name__)

# Alerts go out for a run that went live at most this long ago (quiet hours included).
ALERT_WINDOW = timedelta(hours=36)
# The reason of an account only counted in "and N more" (beyond the daily cap).
MORE = "more: "

Clock = Callable[[], datetime]
# An account owner or assignee as stored -> the Slack user to DM, or None.
Resolve = Callable[[str], str | None]


@dataclass
class SendReport:
    """What one round sent: messages, the accounts or follow-ups in them, held, failed."""

    what: str
    messages: int = 0
    items: int = 0
    held: int = 0
    skipped: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed

    def describe(self) -> str:
        text = f"{self.what}: {self.messages} sent ({self.items} in them)"
        if self.held:
            text += f", {self.held} held for the end of quiet hours"
        if self.skipped:
            text += f"; skipped: {'; '.join(self.skipped[:5])}"
        if self.failed:
            text += f"; failed, retried next round: {'; '.join(self.failed[:5])}"
        return text + "."


def _quiet_now(settings: Settings, now: datetime) -> bool:
    hour = now.replace(tzinfo=UTC).astimezone(ZoneInfo(settings.timezone)).hour
    return is_quiet(hour, quiet_hours(settings.alert_quiet_hours))


def _local_day_bounds(day: date, timezone: str) -> tuple[datetime, datetime]:
    """The naive-UTC moments a local calendar day starts and ends."""
    zone = ZoneInfo(timezone)
    start = datetime.combine(day, time(), zone).astimezone(UTC).replace(tzinfo=None)
    end = datetime.combine(day + timedelta(days=1), time(), zone).astimezone(UTC)
    return start, end.replace(tzinfo=None)


# ---------------------------------------------------------------------------------------
# Alerts


def send_alerts(
    engine: Engine,
    settings: Settings,
    poster: Poster | None,
    *,
    clock: Clock = utc_now,
    resolve: Resolve | None = None,
    channel: str | None = None,
) -> SendReport:
    """Send the live run's alerts not sent yet (see the module docstring). `channel`
    replaces CRMBOT_ALERT_CHANNEL; `resolve` finds the Slack user an owner names (default:
    the poster's, which looks an email up)."""
    report = SendReport("Alerts")
    now = clock()
    today = local_day(now, settings.timezone)
    with read_session(engine) as session:
        run = runs.active_run(session=session)
        previous = previous_run_id(run) if run is not None else None
        if (
            run is None
            or previous is None
            or run.activated_at is None
            or now - run.activated_at > ALERT_WINDOW
        ):
            return report
        assert run.id is not None
        rules = AlertRules.from_settings(settings)
        alerts = account_alerts(
            risk_changes(
                session=session,
                run_id=run.id,
                previous_run_id=previous,
                rise=rules.rise,
                threshold=rules.threshold,
                segments=rules.segments,
            ),
            rules,
        )
        if not alerts:
            return report
        followed = followers_by_customer(
            session=session, customer_pks=[alert.customer_pk for alert in alerts]
        )
        followers = {alert.customer_pk: followed.get(alert.customer_pk, []) for alert in alerts}
        done = set(
            session.execute(
                select(col(AlertDelivery.customer_pk), col(AlertDelivery.recipient)).where(
                    col(AlertDelivery.run_id) == run.id
                )
            ).all()
        )
    if poster is None:
        report.skipped.append("no poster (SLACK_BOT_TOKEN is not set)")
        return report
    find = resolve or poster.user_for
    people: dict[str, list[AccountAlert]] = {}
    for alert in alerts:
        owner = find(alert.change.customer.owner or "") if alert.change.customer.owner else None
        for person in dict.fromkeys([*([owner] if owner else []), *followers[alert.customer_pk]]):
            people.setdefault(person, []).append(alert)
    quiet = _quiet_now(settings, now)
    for person, theirs in people.items():
        with read_session(engine) as session:
            snoozed = snoozed_customers(session=session, user_id=person, as_of=today)
        pending = [
            a
            for a in theirs
            if (a.customer_pk, person) not in done and a.customer_pk not in snoozed
        ]
        if not pending:
            continue
        if quiet:
            report.held += len(pending)
            continue
        room = max(settings.alert_daily_cap - _detailed_today(engine, settings, person, today), 0)
        following = frozenset(a.customer_pk for a in theirs if person in followers[a.customer_pk])
        _deliver(
            engine,
            settings,
            poster,
            run,
            person,
            pending[:room],
            pending[room:],
            shared=False,
            following=following,
            now=now,
            report=report,
        )
    target = settings.alert_channel if channel is None else channel
    if target:
        pending = [a for a in alerts if (a.customer_pk, target) not in done]
        if pending and quiet:
            report.held += len(pending)
        elif pending:
            size = settings.digest_size
            _deliver(
                engine,
                settings,
                poster,
                run,
                target,
                pending[:size],
                pending[size:],
                shared=True,
                following=frozenset(),
                now=now,
                report=report,
            )
    return report


def _detailed_today(engine: Engine, settings: Settings, person: str, today: date) -> int:
    """How many accounts `person` has had detailed in alerts today (the daily cap's count)."""
    start, end = _local_day_bounds(today, settings.timezone)
    with read_session(engine) as session:
        return int(
            session.execute(
                select(func.count())
                .select_from(AlertDelivery)
                .where(
                    col(AlertDelivery.recipient) == person,
                    col(AlertDelivery.sent_at) >= start,
                    col(AlertDelivery.sent_at) < end,
                    col(AlertDelivery.reason).not_like(f"{MORE}%"),
                )
            ).scalar_one()
        )


def _claim(
    engine: Engine, run_id: int, alert: AccountAlert, person: str, reason: str, now: datetime
) -> bool:
    with write_session(engine) as session:
        return claim_alert(
            session=session,
            run_id=run_id,
            customer_pk=alert.customer_pk,
            recipient=person,
            now=now,
            reason=reason,
        )


def _deliver(
    engine: Engine,
    settings: Settings,
    poster: Poster,
    run: ModelRun,
    person: str,
    detailed: list[AccountAlert],
    counted: list[AccountAlert],
    *,
    shared: bool,
    following: frozenset[int],
    now: datetime,
    report: SendReport,
) -> None:
    """Claim, post one message, give the claims back when the post fails."""
    assert run.id is not None
    mine = [a for a in detailed if _claim(engine, run.id, a, person, a.reason, now)]
    more = [a for a in counted if _claim(engine, run.id, a, person, MORE + a.reason, now)]
    if not mine and not more:
        return  # another round claimed them first
    reply = build_alert(
        mine, run=run, settings=settings, more=len(more), following=following, shared=shared
    )
    try:
        poster.post_message(person, reply, key=f"alert|{run.id}|{person}", shared=shared)
    except Exception as exc:
        log.warning("alert for %s (run %s) not delivered: %s", person, run.id, exc)
        with write_session(engine) as session:
            release_alerts(
                session=session,
                run_id=run.id,
                recipient=person,
                customer_pks=[a.customer_pk for a in mine + more],
            )
        report.failed.append(f"{person}: {exc}"[:200])
        return
    report.messages += 1
    report.items += len(mine) + len(more)
    log.info(
        "alert for run %s sent to %s: %d accounts, %d more", run.id, person, len(mine), len(more)
    )


# ---------------------------------------------------------------------------------------
# Follow-up reminders


def send_follow_ups(
    engine: Engine,
    settings: Settings,
    poster: Poster | None,
    *,
    clock: Clock = utc_now,
    resolve: Resolve | None = None,
) -> SendReport:
    """DM each follow-up due on or before today to its assignee, once (see the module
    docstring); `resolve` as for `send_alerts`."""
    report = SendReport("Follow-up reminders")
    now = clock()
    today = local_day(now, settings.timezone)
    with read_session(engine) as session:
        due = due_follow_ups(session=session, as_of=today)
    if not due:
        return report
    if _quiet_now(settings, now):
        report.held = len(due)
        return report
    if poster is None:
        report.skipped.append("no poster (SLACK_BOT_TOKEN is not set)")
        return report
    # Whole seconds: MariaDB keeps no fraction, and the release compares the claim's time.
    claimed_at = now.replace(microsecond=0)
    find = resolve or poster.user_for
    for follow_up in due:
        assert follow_up.id is not None
        user = find(follow_up.assignee)
        if user is None:
            report.skipped.append(
                f"follow-up {follow_up.id}: '{follow_up.assignee}' is no Slack user"
            )
            continue
        with write_session(engine) as session:
            if not mark_sent(session=session, follow_up_id=follow_up.id, now=claimed_at):
                continue  # sent or claimed by another round
        with read_session(engine) as session:
            customer = session.get(Customer, follow_up.customer_pk)
        if customer is None or customer.erased_at is not None:
            continue
        reply = build_follow_up_reminder(follow_up, customer, today=today, settings=settings)
        try:
            poster.post_message(user, reply, key=f"follow-up|{follow_up.id}", shared=False)
        except Exception as exc:
            log.warning("follow-up %s not delivered to %s: %s", follow_up.id, user, exc)
            with write_session(engine) as session:
                release_sent(session=session, follow_up_id=follow_up.id, sent_at=claimed_at)
            report.failed.append(f"follow-up {follow_up.id}: {exc}"[:200])
            continue
        report.messages += 1
        report.items += 1
    return report
