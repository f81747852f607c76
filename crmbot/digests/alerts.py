"""Alerts on change, as content: after a retrain goes live, which accounts changed enough
to tell someone, why, and the message each person gets.

An account is alerted when, between the run that was live before and the new one, its
churn risk rose by at least CRMBOT_ALERT_RISE_POINTS percentage points, reached
CRMBOT_ALERT_RISK_THRESHOLD from below, or it moved into one of CRMBOT_ALERT_SEGMENTS
("At risk", "Can't lose them"). Each person — the account's owner and its followers —
gets one message per run listing their accounts, most value at risk first, each with its
reasons and the buttons that act on it (`crmbot.reply.acting`).

Nothing here sends anything: `crmbot.digests.direct` decides who is told when (once, quiet
hours, the daily cap) and hands these replies to a `Poster`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from crmbot.core.models import ModelRun
from crmbot.queries import run_facts
from crmbot.queries.changes import RiskChange
from crmbot.reply import Button, Item, Reply, Section
from crmbot.reply.acting import account_buttons
from crmbot.reply.format import clip, day, percent, points
from crmbot.reply.rows import customer_label

if TYPE_CHECKING:
    from crmbot.core.config import Settings

REASON_CHARS = 120


@dataclass(frozen=True)
class AlertRules:
    """When an account's change is worth an alert (from settings)."""

    rise: float  # as a probability: 15 points = 0.15
    threshold: float
    segments: tuple[str, ...]

    @classmethod
    def from_settings(cls, settings: Settings) -> AlertRules:
        return cls(
            rise=settings.alert_rise_points / 100,
            threshold=settings.alert_risk_threshold,
            segments=tuple(settings.alert_segments),
        )


@dataclass(frozen=True)
class AccountAlert:
    """One account that changed, and why it is alerted, in words."""

    change: RiskChange
    why: tuple[str, ...]

    @property
    def customer_pk(self) -> int:
        assert self.change.customer.id is not None
        return self.change.customer.id

    @property
    def customer_id(self) -> str:
        return self.change.customer.customer_id

    @property
    def reason(self) -> str:
        """What the delivery record keeps (at most 200 characters)."""
        return clip("; ".join(self.why), 200)


def why_alerted(change: RiskChange, rules: AlertRules) -> tuple[str, ...]:
    """The rules `change` meets, in words: "churn risk ▲ 18 pts (27% → 45%)", "churn risk
    72%, at or over the 70% alert line", "moved into At risk (from Loyal)"."""
    why = []
    before = change.risk_before
    if rules.rise > 0 and before is not None and change.risk - before >= rules.rise - 1e-9:
        why.append(
            f"churn risk {points(before, change.risk)} ({percent(before)} → {percent(change.risk)})"
        )
    if change.risk >= rules.threshold and (before is None or before < rules.threshold):
        line = percent(rules.threshold)
        why.append(f"churn risk {percent(change.risk)}, at or over the {line} alert line")
    if change.segment in rules.segments and change.segment_before not in rules.segments:
        origin = f" (from {change.segment_before})" if change.segment_before else ""
        why.append(f"moved into {change.segment}{origin}")
    return tuple(why)


def account_alerts(changes: list[RiskChange], rules: AlertRules) -> list[AccountAlert]:
    """The changes that meet a rule, with their reasons, in the order given."""
    alerts = [AccountAlert(change, why_alerted(change, rules)) for change in changes]
    return [alert for alert in alerts if alert.why]


def previous_run_id(run: ModelRun) -> int | None:
    """The run that was live when `run` was trained (what it is compared with)."""
    params = run.params if isinstance(run.params, dict) else {}
    previous = (params.get("run") or {}).get("previous_run_id")
    return int(previous) if isinstance(previous, int) else None


def _line(alert: AccountAlert, typical: float | None) -> str:
    change = alert.change
    head = f"*{customer_label(change.customer)}* · churn {percent(change.risk)}"
    if change.segment:
        head += f" · {change.segment}"
    lines = [head, "Why now: " + "; ".join(alert.why) + "."]
    # Below the typical risk, the model's reasons say what keeps it low: not a "why".
    if change.reasons and (typical is None or round(change.risk, 4) >= round(typical, 4)):
        lines.append("Top reason: " + clip(change.reasons[0], REASON_CHARS))
    return "\n".join(lines)


def build_alert(
    alerts: list[AccountAlert],
    *,
    run: ModelRun,
    settings: Settings,
    more: int = 0,
    following: frozenset[int] = frozenset(),
    shared: bool = False,
) -> Reply:
    """The message about `alerts` for one person (or, `shared`, for a channel): the
    accounts one by one with their reasons and buttons, and "and N more" pointing to the
    list when the daily cap left some out."""
    prefix = settings.slash_command
    listed = len(alerts) + more
    # "3 of your accounts", "1 of your accounts"; in a channel "1 account", "3 accounts".
    noun = "account" if listed == 1 and shared else "accounts"
    typical = run_facts(run).typical_risk
    items = [
        Item(
            _line(alert, typical),
            Button("Why?", "crm_why", alert.customer_id),
            actions=()
            if shared
            else tuple(
                account_buttons(alert.customer_id, following=alert.customer_pk in following)
            ),
        )
        for alert in alerts
    ]
    text = (
        f"The model retrained on data as of {day(run.as_of)}: churn risk changed on "
        f"{listed} {'' if shared else 'of your '}{noun}."
    )
    if more:
        where = f"`{prefix} at-risk`" if shared else f"`{prefix} at-risk mine`"
        text += f"\n…and {more} more — see {where}."
    return Reply(
        title=f"Churn risk changed on {listed} {'' if shared else 'of your '}{noun}",
        text=text,
        sections=[Section("Accounts", items)] if items else [],
        private=not shared,
        customer_ids=[alert.customer_id for alert in alerts],
        footer=f"Model run {run.id}, compared with run {previous_run_id(run)}."
        + ("" if shared else " Snooze an account to hear nothing of it for 7 days."),
    )
